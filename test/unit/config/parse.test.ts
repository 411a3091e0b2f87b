import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { parseConfigKey, parseStackConfig } from "../../../src/config/parse";
import { ConfigError } from "../../../src/config/problems";
import { SECRET_VALUES, TestConfig, alphaConfig, prodConfig, toRaw } from "../../support/stack-config";

function problemsOf(run: () => unknown): ConfigError["problems"] {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error("expected a ConfigError, but the config parsed");
}

type Mutate = (c: TestConfig) => void;
const hosts = (c: TestConfig) => c.hosts as Record<string, Record<string, unknown>>;
const versions = (c: TestConfig) => c.versions as Record<string, unknown>;

interface BadCase {
  name: string;
  mutate?: Mutate;
  raw?: Parameters<typeof toRaw>[1];
  base?: () => TestConfig;
  path: string;
  message: RegExp;
  fix: RegExp;
}

const CASES: BadCase[] = [
  { name: "wrong provider", mutate: (c) => (hosts(c).secondary.provider = "aws"), path: "hosts.secondary.provider", message: /expected one of "hcloud", "digitalocean", "local", found "aws"/, fix: /--path 'hosts.secondary.provider' hcloud/ },
  { name: "missing zone", mutate: (c) => delete c.cloudflareZoneId, path: "cloudflareZoneId", message: /is missing/, fix: /pulumi config set cloudflareZoneId [0-9a-f]{32}/ },
  { name: "zone ID not hex", mutate: (c) => (c.cloudflareZoneId = "social.coop"), path: "cloudflareZoneId", message: /32 hex digit zone ID.*found "social.coop"/, fix: /config set cloudflareZoneId/ },
  { name: "domain with a scheme", mutate: (c) => (c.domain = "https://social.coop"), path: "domain", message: /lower-case domain name.*found "https:\/\/social.coop"/, fix: /config set domain social.coop/ },
  { name: "domain in upper case", mutate: (c) => (c.domain = "Social.Coop"), path: "domain", message: /lower-case domain/, fix: /config set domain/ },
  { name: "domain with trailing dot", mutate: (c) => (c.domain = "social.coop."), path: "domain", message: /no trailing dot/, fix: /config set domain/ },
  { name: "volume 0", mutate: (c) => (hosts(c).primary.volumeGb = 0), path: "hosts.primary.volumeGb", message: /at least 10, found 0/, fix: /--path 'hosts.primary.volumeGb' 100/ },
  { name: "volume not a whole number", mutate: (c) => (hosts(c).primary.volumeGb = 12.5), path: "hosts.primary.volumeGb", message: /integer.*12.5|12.5/, fix: /hosts.primary.volumeGb/ },
  { name: "volume as a string", mutate: (c) => (hosts(c).primary.volumeGb = "100"), path: "hosts.primary.volumeGb", message: /expected number, found "100"/, fix: /hosts.primary.volumeGb/ },
  { name: "unknown role", mutate: (c) => (hosts(c).primary.roles = ["mastodon", "pleroma"]), path: "hosts.primary.roles[1]", message: /expected one of "mastodon", "hometown", "matrix", "spare", found "pleroma"/, fix: /hosts.primary.roles\[1\]' mastodon/ },
  { name: "duplicate role across hosts", mutate: (c) => (hosts(c).secondary.roles = ["matrix"]), path: "hosts.secondary.roles[0]", message: /"matrix" is already on hosts.primary/, fix: /config rm --path 'hosts.secondary.roles\[0\]'/ },
  { name: "duplicate role on one host", mutate: (c) => (hosts(c).primary.roles = ["mastodon", "mastodon"]), path: "hosts.primary.roles[1]", message: /listed twice/, fix: /config rm --path 'hosts.primary.roles\[1\]'/ },
  { name: "no roles", mutate: (c) => (hosts(c).primary.roles = []), path: "hosts.primary.roles", message: /at least 1 item/, fix: /hosts.primary.roles/ },
  { name: "spare sharing a host", mutate: (c) => (hosts(c).secondary.roles = ["spare", "hometown"]), base: () => ({ ...prodConfig(), hosts: { ...prodConfig().hosts, primary: { provider: "hcloud", location: "fsn1", size: "cpx41", volumeGb: 200, roles: ["matrix"] } } }), path: "hosts.secondary.roles", message: /"spare" cannot share a host with hometown/, fix: /\["spare"\]/ },
  { name: "spare on the primary", mutate: (c) => { hosts(c).primary.roles = ["spare"]; hosts(c).secondary.roles = ["mastodon"]; }, path: "hosts.primary.roles", message: /belongs on hosts.secondary/, fix: /move "spare"/ },
  { name: "mastodon and hometown in one stack", mutate: (c) => (hosts(c).secondary.roles = ["hometown"]), path: "hosts", message: /both "mastodon" and "hometown"/, fix: /keep one/ },
  { name: "no app role", mutate: (c) => (hosts(c).primary.roles = ["matrix"]), path: "hosts.primary.roles", message: /no host serves the instance/, fix: /hosts.primary.roles/ },
  { name: "hcloud location on DigitalOcean", mutate: (c) => (hosts(c).secondary.location = "fsn1"), path: "hosts.secondary.location", message: /"fsn1" is not a digitalocean location/, fix: /--path 'hosts.secondary.location' ams3/ },
  { name: "DigitalOcean size on hcloud", mutate: (c) => (hosts(c).primary.size = "s-2vcpu-4gb"), path: "hosts.primary.size", message: /not a hcloud size slug/, fix: /hosts.primary.size' cpx31/ },
  { name: "unknown key in a host", mutate: (c) => (hosts(c).primary.volumeGB = 100), path: "hosts.primary.volumeGB", message: /unknown key/, fix: /config rm --path 'hosts.primary.volumeGB'/ },
  { name: "unknown host name", mutate: (c) => (hosts(c).tertiary = { ...hosts(c).secondary }), path: "hosts.tertiary", message: /unknown key/, fix: /config rm --path 'hosts.tertiary'/ },
  { name: "unknown top-level key", mutate: (c) => (c.hostz = "x"), path: "hostz", message: /unknown key \(known keys: stackRole/, fix: /pulumi config rm hostz/ },
  { name: "key not an SSH public key", mutate: (c) => (c.sshKeys = ["AAAAC3NzaC1lZDI1NTE5AAAA me@laptop"]), path: "sshKeys[0]", message: /SSH public key line/, fix: /--path 'sshKeys\[0\]'/ },
  { name: "private key pasted as a public key", mutate: (c) => (c.sshKeys = ["-----BEGIN OPENSSH PRIVATE KEY-----"]), path: "sshKeys[0]", message: /SSH public key/, fix: /sshKeys\[0\]/ },
  { name: "no SSH keys", mutate: (c) => (c.sshKeys = []), path: "sshKeys", message: /at least 1 item/, fix: /config set --path|config set sshKeys/ },
  { name: "sshKeys not a list", mutate: (c) => (c.sshKeys = "ssh-ed25519 AAAA x"), path: "sshKeys", message: /structured value|expected array/, fix: /sshKeys/ },
  { name: "bad e-mail", mutate: (c) => (c.adminEmail = "ops-at-social.coop"), path: "adminEmail", message: /e-mail address.*ops-at-social.coop/, fix: /config set adminEmail/ },
  { name: "unknown stack role", mutate: (c) => (c.stackRole = "staging"), path: "stackRole", message: /expected one of "prod", "alpha", "town", found "staging"/, fix: /config set stackRole prod/ },
  { name: "stack role does not match the stack name", raw: { stackName: "alpha" }, path: "stackRole", message: /found "prod" but this stack is named "alpha"/, fix: /config set stackRole alpha/ },
  { name: "prod without a secondary", mutate: (c) => delete hosts(c).secondary, path: "hosts.secondary", message: /prod keeps its backup repository/, fix: /hosts.secondary/ },
  { name: "mastodon role without a version", mutate: (c) => delete versions(c).mastodon, path: "versions.mastodon", message: /is missing: hosts.primary has role "mastodon"/, fix: /versions.mastodon' v4.3.8/ },
  { name: "Hometown tag in the mastodon version", mutate: (c) => (versions(c).mastodon = "v4.5.11+hometown-1.2.1"), path: "versions.mastodon", message: /release tag like v4.3.8/, fix: /versions.mastodon/ },
  { name: "mastodon version without the v", base: alphaConfig, mutate: (c) => (versions(c).hometown = "4.5.11+hometown-1.2.1"), path: "versions.hometown", message: /Hometown tag like/, fix: /versions.hometown' v4.5.11\+hometown-1.2.1/ },
  { name: "unsupported PostgreSQL major", mutate: (c) => (versions(c).postgres = 11), path: "versions.postgres", message: /at least 13, found 11/, fix: /versions.postgres' 15/ },
  { name: "matrix on alpha", base: alphaConfig, mutate: (c) => (hosts(c).primary.roles = ["hometown", "matrix"]), path: "hosts.primary.roles", message: /"matrix" is served only by the prod stack/, fix: /remove "matrix"/ },
  { name: "S3 endpoint over http", mutate: (c) => (c.backup = { s3: { endpoint: "http://s3.example.org", bucket: "b-ups", region: "x", accessKeyId: "k" } }), path: "backup.s3.endpoint", message: /https:\/\/ URL/, fix: /backup.s3.endpoint/ },
  { name: "hcloud token in plain text", raw: { plainSecrets: ["hcloudToken"] }, path: "hcloudToken", message: /set in plain text.*must be a secret/, fix: /pulumi config set --secret hcloudToken/ },
  { name: "restic passphrase in plain text", raw: { plainSecrets: ["resticPassword"] }, path: "resticPassword", message: /plain text/, fix: /--secret resticPassword/ },
  { name: "missing DigitalOcean token with a DigitalOcean host", raw: { secrets: { ...SECRET_VALUES, digitaloceanToken: "" } }, path: "digitaloceanToken", message: /is missing \(DigitalOcean API token\)/, fix: /--secret digitaloceanToken/ },
  { name: "deploy key that is not a private key", raw: { secrets: { ...SECRET_VALUES, sshPrivateKey: "ssh-ed25519 AAAA pub" } }, path: "sshPrivateKey", message: /not an OpenSSH private key/, fix: /--secret sshPrivateKey/ },
  { name: "S3 configured without its secret key", mutate: (c) => (c.backup = { s3: { endpoint: "https://s3.example.org", bucket: "coop-backups", region: "eu", accessKeyId: "AKIA" } }), raw: { secrets: { ...SECRET_VALUES, s3SecretAccessKey: "" } }, path: "s3SecretAccessKey", message: /is missing \(secret key of the S3/, fix: /--secret s3SecretAccessKey/ },
  { name: "short passphrase", raw: { secrets: { ...SECRET_VALUES, pgbackrestCipherPass: "short" } }, path: "pgbackrestCipherPass", message: /shorter than 20 characters.*value not shown/, fix: /--secret pgbackrestCipherPass/ },
];

describe("stack config: bad input is refused with the key path and the fix", () => {
  it("has at least 25 distinct bad-config cases", () => {
    expect(new Set(CASES.map((c) => c.name)).size).toBeGreaterThanOrEqual(25);
  });

  for (const c of CASES) {
    it(`${c.name}: names ${c.path} and how to fix it`, () => {
      const cfg = (c.base ?? prodConfig)();
      c.mutate?.(cfg);
      const problems = problemsOf(() => parseStackConfig(toRaw(cfg, c.raw)));
      const hit = problems.find((p) => p.path === c.path);
      expect(hit, `no problem for ${c.path}; got ${JSON.stringify(problems)}`).toBeDefined();
      expect(hit?.message).toMatch(c.message);
      expect(hit?.fix).toMatch(c.fix);
    });
  }

  it("reports every problem at once, not the first one", () => {
    const cfg = prodConfig();
    hosts(cfg).secondary.provider = "aws";
    hosts(cfg).primary.volumeGb = 0;
    cfg.domain = "not a domain";
    const problems = problemsOf(() => parseStackConfig(toRaw(cfg, { plainSecrets: ["cloudflareApiToken"] })));
    expect(problems.map((p) => p.path).sort()).toEqual(
      ["cloudflareApiToken", "domain", "hosts.primary.volumeGb", "hosts.secondary.provider"].sort(),
    );
  });

  it("the error text names each key with its namespace and never contains a secret value", () => {
    const raw = toRaw(prodConfig(), { plainSecrets: ["hcloudToken"], secrets: { ...SECRET_VALUES, pgbackrestCipherPass: "tiny-secret" } });
    let text = "";
    try {
      parseStackConfig(raw);
    } catch (e) {
      text = (e as Error).message;
    }
    expect(text).toContain("socialcoop:hcloudToken: is set in plain text");
    expect(text).toContain("socialcoop:pgbackrestCipherPass:");
    expect(text).toContain("nothing was changed");
    for (const v of [...Object.values(SECRET_VALUES), "tiny-secret"]) expect(text).not.toContain(v);
  });
});

describe("stack config: valid input", () => {
  it("parses prod with defaults filled in", () => {
    const cfg = parseStackConfig(toRaw(prodConfig()));
    expect(cfg.adminUser).toBe("coop");
    expect(cfg.backup.fullEveryDays).toBe(7);
    expect(cfg.hosts.secondary?.provider).toBe("digitalocean");
  });

  it("keeps every secret a secret Output holding the configured value", async () => {
    const cfg = parseStackConfig(toRaw(prodConfig()));
    for (const [key, value] of Object.entries(SECRET_VALUES)) {
      const out = cfg.secrets[key as keyof typeof SECRET_VALUES] as pulumi.Output<string>;
      expect(await pulumi.isSecret(out), key).toBe(true);
      const seen = await new Promise((resolve) => out.apply(resolve));
      expect(seen).toBe(value);
    }
  });

  it("does not require the DigitalOcean token when no host uses DigitalOcean", () => {
    const cfg = prodConfig();
    hosts(cfg).secondary.provider = "hcloud";
    hosts(cfg).secondary.location = "hel1";
    hosts(cfg).secondary.size = "cpx31";
    const { digitaloceanToken: _unused, ...rest } = SECRET_VALUES;
    expect(() => parseStackConfig(toRaw(cfg, { secrets: rest }))).not.toThrow();
  });
});

describe("one key on its own (the reports)", () => {
  it("parses a section with the same rules and wording as the whole config", () => {
    expect(parseConfigKey("versions", '{"mastodon": "v4.3.8", "postgres": 15}')).toEqual({ mastodon: "v4.3.8", postgres: 15 });
    const problems = problemsOf(() => parseConfigKey("versions", '{"mastodon": "4.3.8", "postgres": 9}'));
    expect(problems.map((p) => p.path).sort()).toEqual(["versions.mastodon", "versions.postgres"]);
    expect(problems.find((p) => p.path === "versions.postgres")?.fix).toMatch(/--path 'versions.postgres' 15/);
    expect(problemsOf(() => parseConfigKey("hosts", undefined))[0]).toMatchObject({ path: "hosts", message: "is missing" });
  });
});
