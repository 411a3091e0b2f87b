import * as pulumi from "@pulumi/pulumi";
import { generateKeyPairSync } from "crypto";
import { describe, expect, it } from "vitest";
import { ParseOptions, parseConfigKey, parseStackConfig } from "../../../src/config/parse";
import { ConfigError, setFix } from "../../../src/config/problems";
import { SECRET_KEYS, SECRET_SPECS, secretFix } from "../../../src/config/secrets";
import { UpgradePathError } from "../../../src/upgrade/path";
import { sshString } from "../../../src/ssh/wire";
import { DEPLOY_KEY, OPERATOR_KEY, SECRET_VALUES, TestConfig, alphaConfig, prodConfig, toRaw } from "../../support/stack-config";
import { ED_A, ED_B, armor, blobOf, bodyLines, ecdsaBlob, ecdsaKey, editKey, line, privateSectionOffset, rsaBlob, rsaKey } from "./ssh-test-keys";

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
type SecretName = keyof typeof SECRET_VALUES;

const RSA_2048 = rsaKey(2048);
const RSA_1024 = rsaKey(1024);
const P256 = ecdsaKey("nistp256");
const P384 = ecdsaKey("nistp384");
const PEM_RSA = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ type: "pkcs1", format: "pem" }) as string;
const OPERATOR_BODY = OPERATOR_KEY.split(" ")[1];
const S3 = { endpoint: "https://s3.example.org", bucket: "coop-backups", region: "eu", accessKeyId: "AKIA" };

/** A public key is copied from its file, so the fix reads it from there. */
const KEY_FIX = (i: number) => new RegExp(`^pulumi config set --path 'sshKeys\\[${i}\\]' "\\$\\(cat ~/\\.ssh/id_ed25519\\.pub\\)"$`);
/** A deploy key is read from its file: never pasted onto the command line. */
const DEPLOY_FIX = /^pulumi config set --secret sshPrivateKey < deploy_key$/;

/** The key with some body lines left out (negative: from the end). */
function dropLines(pem: string, ...which: number[]): string {
  const lines = bodyLines(pem);
  const drop = new Set(which.map((i) => (i < 0 ? lines.length + i : i)));
  return armor(lines.filter((_, i) => !drop.has(i)));
}

function withoutSecret(key: SecretName): Partial<Record<SecretName, string>> {
  const out: Partial<Record<SecretName, string>> = { ...SECRET_VALUES };
  delete out[key];
  return out;
}

const townConfig = (): TestConfig => ({ ...alphaConfig(), stackRole: "town" });

/** Pulumi.local.yaml's shape: both hosts machines on this computer. */
function localConfig(): TestConfig {
  const host = (roles: string[]) => ({ provider: "local", location: "local", size: "local", volumeGb: 10, roles });
  return {
    ...prodConfig(),
    domain: "social.coop.test",
    hosts: { primary: host(["mastodon"]), secondary: host(["spare"]) },
    versions: { mastodon: "v4.3.8", postgres: 15 },
    localCloud: { network: "coop-local", subnet4: "10.231.7.0/24", subnet6: "fd42:231:7::/64" },
  };
}
const hosts = (c: TestConfig) => c.hosts as Record<string, Record<string, unknown>>;
const versions = (c: TestConfig) => c.versions as Record<string, unknown>;

interface BadCase {
  name: string;
  mutate?: Mutate;
  raw?: Parameters<typeof toRaw>[1];
  base?: () => TestConfig;
  catalog?: ParseOptions["catalog"];
  path: string;
  message: RegExp;
  fix: RegExp;
  /** No problem of the case may mention this (a hint naming a host the stack does not have). */
  absent?: RegExp;
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
  { name: "spare on the primary", mutate: (c) => { hosts(c).primary.roles = ["spare"]; hosts(c).secondary.roles = ["mastodon"]; }, path: "hosts.primary.roles", message: /belongs on hosts.secondary/, fix: /^pulumi config set --path 'hosts.primary.roles' '\["mastodon"\]' && pulumi config set --path 'hosts.secondary.roles' '\["spare"\]'$/ },
  { name: "mastodon and hometown in one stack", mutate: (c) => (hosts(c).secondary.roles = ["hometown"]), path: "hosts", message: /both "mastodon" and "hometown"/, fix: /keep one/ },
  { name: "no app role", mutate: (c) => (hosts(c).primary.roles = ["matrix"]), path: "hosts.primary.roles", message: /no host serves the instance/, fix: /hosts.primary.roles/ },
  { name: "hcloud location on DigitalOcean", mutate: (c) => (hosts(c).secondary.location = "fsn1"), path: "hosts.secondary.location", message: /"fsn1" is not a digitalocean location/, fix: /--path 'hosts.secondary.location' ams3/ },
  { name: "DigitalOcean size on hcloud", mutate: (c) => (hosts(c).primary.size = "s-2vcpu-4gb"), path: "hosts.primary.size", message: /not a hcloud size slug/, fix: /hosts.primary.size' cpx31/ },
  { name: "unknown key in a host", mutate: (c) => (hosts(c).primary.volumeGB = 100), path: "hosts.primary.volumeGB", message: /unknown key/, fix: /config rm --path 'hosts.primary.volumeGB'/ },
  { name: "unknown host name", mutate: (c) => (hosts(c).tertiary = { ...hosts(c).secondary }), path: "hosts.tertiary", message: /unknown key/, fix: /config rm --path 'hosts.tertiary'/ },
  { name: "unknown top-level key", mutate: (c) => (c.colour = "x"), path: "colour", message: /unknown key \(known keys: stackRole/, fix: /^pulumi config rm colour$/ },
  { name: "key not an SSH public key", mutate: (c) => (c.sshKeys = ["AAAAC3NzaC1lZDI1NTE5AAAA me@laptop"]), path: "sshKeys[0]", message: /SSH public key line/, fix: /--path 'sshKeys\[0\]'/ },
  { name: "private key pasted as a public key", mutate: (c) => (c.sshKeys = ["-----BEGIN OPENSSH PRIVATE KEY-----"]), path: "sshKeys[0]", message: /SSH public key/, fix: /sshKeys\[0\]/ },
  { name: "no SSH keys", mutate: (c) => (c.sshKeys = []), path: "sshKeys", message: /at least 1 item/, fix: /config set --path|config set sshKeys/ },
  { name: "sshKeys not a list", mutate: (c) => (c.sshKeys = "ssh-ed25519 AAAA x"), path: "sshKeys", message: /structured value|expected array/, fix: /sshKeys/ },
  { name: "bad e-mail", mutate: (c) => (c.adminEmail = "ops-at-social.coop"), path: "adminEmail", message: /e-mail address.*ops-at-social.coop/, fix: /config set adminEmail/ },
  { name: "unknown stack role", mutate: (c) => (c.stackRole = "staging"), path: "stackRole", message: /expected one of "prod", "alpha", "town", found "staging"/, fix: /config set stackRole prod/ },
  { name: "stack role does not match the stack name", raw: { stackName: "alpha" }, path: "stackRole", message: /found "prod" but this stack is named "alpha"/, fix: /config set stackRole alpha/ },
  { name: "prod without a secondary", mutate: (c) => delete hosts(c).secondary, path: "hosts.secondary", message: /prod keeps its backup repository/, fix: /^pulumi config set --path 'hosts.secondary' '\{"provider":"hcloud","location":"fsn1","size":"cpx41","volumeGb":200,"roles":\["spare"\]\}'$/ },
  { name: "mastodon role without a version", mutate: (c) => delete versions(c).mastodon, path: "versions.mastodon", message: /is missing: hosts.primary has role "mastodon"/, fix: /versions.mastodon' v4.3.8/ },
  { name: "Hometown tag in the mastodon version", mutate: (c) => (versions(c).mastodon = "v4.5.11+hometown-1.2.1"), path: "versions.mastodon", message: /release tag like v4.3.8/, fix: /versions.mastodon/ },
  { name: "mastodon version without the v", base: alphaConfig, mutate: (c) => (versions(c).hometown = "4.5.11+hometown-1.2.1"), path: "versions.hometown", message: /Hometown tag like/, fix: /versions.hometown' v4.5.11\+hometown-1.2.1/ },
  { name: "unsupported PostgreSQL major", mutate: (c) => (versions(c).postgres = 11), path: "versions.postgres", message: /at least 13, found 11/, fix: /versions.postgres' 15/ },
  { name: "matrix on alpha", base: alphaConfig, mutate: (c) => (hosts(c).primary.roles = ["hometown", "matrix"]), path: "hosts.primary.roles", message: /"matrix" is served only by the prod stack/, fix: /^pulumi config set --path 'hosts.primary.roles' '\["hometown"\]'$/ },
  { name: "S3 endpoint over http", mutate: (c) => (c.backup = { s3: { endpoint: "http://s3.example.org", bucket: "b-ups", region: "x", accessKeyId: "k" } }), path: "backup.s3.endpoint", message: /https:\/\/ URL/, fix: /backup.s3.endpoint/ },
  { name: "hcloud token in plain text", raw: { plainSecrets: ["hcloudToken"] }, path: "hcloudToken", message: /set in plain text.*must be a secret/, fix: /pulumi config set --secret hcloudToken/ },
  { name: "restic passphrase in plain text", raw: { plainSecrets: ["resticPassword"] }, path: "resticPassword", message: /plain text/, fix: /--secret resticPassword/ },
  { name: "missing DigitalOcean token with a DigitalOcean host", raw: { secrets: { ...SECRET_VALUES, digitaloceanToken: "" } }, path: "digitaloceanToken", message: /is missing \(DigitalOcean API token\)/, fix: /--secret digitaloceanToken/ },
  { name: "deploy key that is a public key", raw: { secrets: { ...SECRET_VALUES, sshPrivateKey: "ssh-ed25519 AAAA pub" } }, path: "sshPrivateKey", message: /is a public key; the deploy key is the private half/, fix: DEPLOY_FIX },
  { name: "deploy key that is no key at all", raw: { secrets: { ...SECRET_VALUES, sshPrivateKey: "hunter2-not-a-key" } }, path: "sshPrivateKey", message: /not an OpenSSH private key/, fix: DEPLOY_FIX },
  { name: "S3 configured without its secret key", mutate: (c) => (c.backup = { s3: { endpoint: "https://s3.example.org", bucket: "coop-backups", region: "eu", accessKeyId: "AKIA" } }), raw: { secrets: { ...SECRET_VALUES, s3SecretAccessKey: "" } }, path: "s3SecretAccessKey", message: /is missing \(secret key of the S3/, fix: /--secret s3SecretAccessKey/ },
  { name: "short passphrase", raw: { secrets: { ...SECRET_VALUES, pgbackrestCipherPass: "short" } }, path: "pgbackrestCipherPass", message: /shorter than 20 characters.*value not shown/, fix: /--secret pgbackrestCipherPass/ },
  // Alerts: where the hosts send them.
  { name: "alert e-mail without a sender", mutate: (c) => (c.alerts = { email: ["ops@social.coop"], smtpUrl: "smtps://smtp.example.org:465" }), path: "alerts.from", message: /is missing: alerts.email needs a sender address/, fix: /^pulumi config set --path 'alerts.from' alerts@social.coop$/ },
  { name: "alert e-mail without an SMTP server", mutate: (c) => (c.alerts = { email: ["ops@social.coop"], from: "alerts@social.coop" }), path: "alerts.smtpUrl", message: /needs the SMTP server/, fix: /^pulumi config set --path 'alerts.smtpUrl' smtps:\/\/smtp.example.org:465$/ },
  { name: "alert SMTP server as a bare host", mutate: (c) => (c.alerts = { email: ["ops@social.coop"], from: "alerts@social.coop", smtpUrl: "smtp.example.org" }), path: "alerts.smtpUrl", message: /expected "smtps:\/\/host:465" or "smtp:\/\/host:587"/, fix: /alerts.smtpUrl/ },
  { name: "alert address that is not one", mutate: (c) => (c.alerts = { email: ["ops-at-social.coop"], from: "alerts@social.coop", smtpUrl: "smtps://smtp.example.org:465" }), path: "alerts.email[0]", message: /e-mail address/, fix: /alerts.email\[0\]/ },
  { name: "alert SMTP login in clear", mutate: (c) => (c.alerts = { email: ["ops@social.coop"], from: "alerts@social.coop", smtpUrl: "smtp://smtp.example.org:25", smtpLogin: "alerts", smtpStartTls: false }), path: "alerts.smtpStartTls", message: /password would travel in clear/, fix: /alerts.smtpStartTls' true/ },
  { name: "alert SMTP login without its password", mutate: (c) => (c.alerts = { email: ["ops@social.coop"], from: "alerts@social.coop", smtpUrl: "smtps://smtp.example.org:465", smtpLogin: "alerts" }), raw: { secrets: { ...SECRET_VALUES, alertSmtpPassword: "" } }, path: "alertSmtpPassword", message: /is missing \(password of alerts.smtpLogin/, fix: /^pulumi config set --secret alertSmtpPassword$/ },
  { name: "alert webhook over http", raw: { secrets: { ...SECRET_VALUES, alertWebhookUrl: "http://hooks.example.org/t" } }, path: "alertWebhookUrl", message: /is not an https:\/\/ URL.*value not shown/, fix: /--secret alertWebhookUrl/ },
  { name: "alerts that tell nobody", mutate: (c) => (c.alerts = { diskMaxPercent: 90 }), raw: { secrets: { ...SECRET_VALUES, alertWebhookUrl: "" } }, path: "alerts.email", message: /is empty and no alertWebhookUrl is set: the hosts' alerts would tell nobody/, fix: /^pulumi config set --path 'alerts.email' '\["ops@social.coop"\]'$/ },
  { name: "alert webhook to a name that only starts like a private address", raw: { secrets: { ...SECRET_VALUES, alertWebhookUrl: "http://10.hooks.example.org/t" } }, path: "alertWebhookUrl", message: /is not an https:\/\/ URL/, fix: /--secret alertWebhookUrl/ },
  { name: "a security grace period in days", mutate: (c) => (c.alerts = { email: ["ops@social.coop"], from: "alerts@social.coop", smtpUrl: "smtps://smtp.example.org:465", securityGraceHours: 24 * 31 }), path: "alerts.securityGraceHours", message: /744|720/, fix: /alerts.securityGraceHours/ },
  { name: "unknown key under alerts", mutate: (c) => (c.alerts = { emails: ["ops@social.coop"] }), path: "alerts.emails", message: /unknown key/, fix: /^rename alerts.emails to alerts.email$/ },
  // SSH public keys: the body is decoded and checked against its prefix, not just matched as text.
  { name: "public key with a fake body", mutate: (c) => (c.sshKeys = ["ssh-ed25519 AAAA"]), path: "sshKeys[0]", message: /is cut short/, fix: KEY_FIX(0) },
  { name: "public key with only its type in the body", mutate: (c) => (c.sshKeys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 me@laptop"]), path: "sshKeys[0]", message: /is cut short/, fix: KEY_FIX(0) },
  { name: "public key cut inside its base64", mutate: (c) => (c.sshKeys = [`ssh-ed25519 ${OPERATOR_BODY.slice(0, -2)} me@laptop`]), path: "sshKeys[0]", message: /not whole base64/, fix: KEY_FIX(0) },
  { name: "public key cut at a whole quad", mutate: (c) => (c.sshKeys = [`ssh-ed25519 ${OPERATOR_BODY.slice(0, 64)} me@laptop`]), path: "sshKeys[0]", message: /is cut short/, fix: KEY_FIX(0) },
  { name: "ed25519 key of 31 bytes", mutate: (c) => (c.sshKeys = [line("ssh-ed25519", Buffer.concat([sshString("ssh-ed25519"), sshString(Buffer.alloc(31, 9))]))]), path: "sshKeys[0]", message: /its key is 31 bytes, not 32/, fix: KEY_FIX(0) },
  { name: "ed25519 prefix on an RSA body", mutate: (c) => (c.sshKeys = [line("ssh-ed25519", RSA_2048.blob)]), path: "sshKeys[0]", message: /says ssh-ed25519 but its body is a ssh-rsa key/, fix: KEY_FIX(0) },
  { name: "RSA prefix on an ed25519 body", mutate: (c) => (c.sshKeys = [line("ssh-rsa", blobOf(OPERATOR_KEY))]), path: "sshKeys[0]", message: /says ssh-rsa but its body is a ssh-ed25519 key/, fix: KEY_FIX(0) },
  { name: "nistp256 prefix on a nistp384 body", mutate: (c) => (c.sshKeys = [line("ecdsa-sha2-nistp256", P384.blob)]), path: "sshKeys[0]", message: /says ecdsa-sha2-nistp256 but its body is a ecdsa-sha2-nistp384 key/, fix: KEY_FIX(0) },
  { name: "ECDSA key naming another curve inside", mutate: (c) => (c.sshKeys = [line("ecdsa-sha2-nistp256", ecdsaBlob("ecdsa-sha2-nistp256", "nistp384", P256.point))]), path: "sshKeys[0]", message: /body holds a key on curve nistp384/, fix: KEY_FIX(0) },
  { name: "ECDSA point off its curve", mutate: (c) => (c.sshKeys = [line("ecdsa-sha2-nistp256", ecdsaBlob("ecdsa-sha2-nistp256", "nistp256", Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)])))]), path: "sshKeys[0]", message: /point is not on the nistp256 curve/, fix: KEY_FIX(0) },
  { name: "ECDSA point of the wrong length", mutate: (c) => (c.sshKeys = [line("ecdsa-sha2-nistp384", ecdsaBlob("ecdsa-sha2-nistp384", "nistp384", P384.point.subarray(0, 65)))]), path: "sshKeys[0]", message: /point is 65 bytes, not 97/, fix: KEY_FIX(0) },
  { name: "RSA key of 1024 bits", mutate: (c) => (c.sshKeys = [line("ssh-rsa", RSA_1024.blob)]), path: "sshKeys[0]", message: /RSA key of 1024 bits; use at least 2048/, fix: KEY_FIX(0) },
  { name: "RSA key with an even exponent", mutate: (c) => (c.sshKeys = [line("ssh-rsa", rsaBlob(65536n, RSA_2048.n))]), path: "sshKeys[0]", message: /public exponent/, fix: KEY_FIX(0) },
  { name: "RSA key without its modulus", mutate: (c) => (c.sshKeys = ["ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB me@laptop"]), path: "sshKeys[0]", message: /is cut short/, fix: KEY_FIX(0) },
  { name: "two keys pasted into one body", mutate: (c) => (c.sshKeys = [line("ssh-ed25519", Buffer.concat([blobOf(OPERATOR_KEY), blobOf(OPERATOR_KEY)]))]), path: "sshKeys[0]", message: /51 bytes after the key/, fix: KEY_FIX(0) },
  { name: "body that is not a key", mutate: (c) => (c.sshKeys = [`ssh-ed25519 ${Buffer.from("hello, this is not a key at all!").toString("base64")} x`]), path: "sshKeys[0]", message: /not an SSH key/, fix: KEY_FIX(0) },
  { name: "DSA key", mutate: (c) => (c.sshKeys = ["ssh-dss AAAAB3NzaC1kc3MAAACBAP me@laptop"]), path: "sshKeys[0]", message: /key type "ssh-dss" is not accepted/, fix: KEY_FIX(0) },
  { name: "bad second key", mutate: (c) => (c.sshKeys = [OPERATOR_KEY, "ssh-ed25519 AAAA"]), path: "sshKeys[1]", message: /is cut short/, fix: KEY_FIX(1) },
  { name: "the same key twice", mutate: (c) => (c.sshKeys = [OPERATOR_KEY, OPERATOR_KEY.replace("operator@test", "again@laptop")]), path: "sshKeys[1]", message: /same key as sshKeys\[0\]/, fix: /^pulumi config rm --path 'sshKeys\[1\]'$/ },
  { name: "the deploy key listed as an operator key", mutate: (c) => (c.sshKeys = [OPERATOR_KEY, DEPLOY_KEY.publicKey]), path: "sshKeys[1]", message: /deploy key's public half/, fix: /^pulumi config rm --path 'sshKeys\[1\]'$/ },

  // The deploy key: the whole openssh-key-v1 container is parsed, so lines missing are found here.
  { name: "deploy key missing its last line", raw: { secrets: { ...SECRET_VALUES, sshPrivateKey: dropLines(DEPLOY_KEY.privateKey, -1) } }, path: "sshPrivateKey", message: /cut short|not whole base64/, fix: DEPLOY_FIX },
  { name: "deploy key missing a middle line", raw: { secrets: { ...SECRET_VALUES, sshPrivateKey: dropLines(DEPLOY_KEY.privateKey, 2) } }, path: "sshPrivateKey", message: /line missing/, fix: DEPLOY_FIX },
  { name: "deploy key missing its first line", raw: { secrets: { ...SECRET_VALUES, sshPrivateKey: dropLines(DEPLOY_KEY.privateKey, 0) } }, path: "sshPrivateKey", message: /damaged|bad header/, fix: DEPLOY_FIX },
  { name: "deploy key missing two lines (still whole base64)", raw: { secrets: { ...SECRET_VALUES, sshPrivateKey: dropLines(DEPLOY_KEY.privateKey, 1, 2) } }, path: "sshPrivateKey", message: /damaged|cut short/, fix: DEPLOY_FIX },
  { name: "deploy key without its END line", raw: { secrets: { ...SECRET_VALUES, sshPrivateKey: DEPLOY_KEY.privateKey.replace("-----END OPENSSH PRIVATE KEY-----", "") } }, path: "sshPrivateKey", message: /ends before -----END OPENSSH PRIVATE KEY-----/, fix: DEPLOY_FIX },
  { name: "deploy key with a changed check number", raw: { secrets: { ...SECRET_VALUES, sshPrivateKey: editKey(DEPLOY_KEY.privateKey, (b) => ((b[privateSectionOffset(DEPLOY_KEY.privateKey)] ^= 1), b)) } }, path: "sshPrivateKey", message: /two check numbers differ/, fix: DEPLOY_FIX },
  { name: "deploy key whose public part is another key's", raw: { secrets: { ...SECRET_VALUES, sshPrivateKey: editKey(ED_A.privateKey, (b) => (blobOf(ED_B.publicKey).copy(b, 43), b)) } }, path: "sshPrivateKey", message: /does not belong to its public key/, fix: DEPLOY_FIX },
  { name: "deploy key with a changed seed", raw: { secrets: { ...SECRET_VALUES, sshPrivateKey: editKey(ED_A.privateKey, (b) => ((b[privateSectionOffset(ED_A.privateKey) + 8 + 15 + 36 + 4] ^= 1), b)) } }, path: "sshPrivateKey", message: /does not belong to its public key/, fix: DEPLOY_FIX },
  { name: "deploy key behind a passphrase", raw: { secrets: { ...SECRET_VALUES, sshPrivateKey: editKey(ED_A.privateKey, (b) => (b.write("aes!", 19, "latin1"), b)) } }, path: "sshPrivateKey", message: /protected by a passphrase/, fix: DEPLOY_FIX },
  { name: "deploy key file claiming two keys", raw: { secrets: { ...SECRET_VALUES, sshPrivateKey: editKey(ED_A.privateKey, (b) => (b.writeUInt32BE(2, 35), b)) } }, path: "sshPrivateKey", message: /exactly one key/, fix: DEPLOY_FIX },
  { name: "deploy key in the old PEM format", raw: { secrets: { ...SECRET_VALUES, sshPrivateKey: PEM_RSA } }, path: "sshPrivateKey", message: /PEM private key, not OpenSSH's format/, fix: DEPLOY_FIX },
  { name: "deploy key of 1024-bit RSA", raw: { secrets: { ...SECRET_VALUES, sshPrivateKey: RSA_1024.privateKey } }, path: "sshPrivateKey", message: /RSA key of 1024 bits/, fix: DEPLOY_FIX },
  { name: "missing deploy key", raw: { secrets: { ...SECRET_VALUES, sshPrivateKey: "" } }, path: "sshPrivateKey", message: /is missing \(the deploy key/, fix: DEPLOY_FIX },

  // adminUser: cloud-init makes it the one login; root and the hosts' own accounts cannot be it.
  { name: "adminUser root", mutate: (c) => (c.adminUser = "root"), path: "adminUser", message: /disables root SSH login.*nobody could log in/, fix: /^pulumi config set adminUser coop$/ },
  { name: "adminUser postgres", mutate: (c) => (c.adminUser = "postgres"), path: "adminUser", message: /account of PostgreSQL/, fix: /^pulumi config set adminUser coop$/ },
  { name: "adminUser www-data", mutate: (c) => (c.adminUser = "www-data"), path: "adminUser", message: /Debian system account/, fix: /^pulumi config set adminUser coop$/ },
  { name: "adminUser mastodon", mutate: (c) => (c.adminUser = "mastodon"), path: "adminUser", message: /the Mastodon app/, fix: /^pulumi config set adminUser coop$/ },
  { name: "adminUser in upper case", mutate: (c) => (c.adminUser = "Coop"), path: "adminUser", message: /unix user name/, fix: /^pulumi config set adminUser coop$/ },

  // Keys the program would never read.
  { name: "misspelled namespace", mutate: (c) => { c["socialcop:domain"] = c.domain; delete (c as Record<string, unknown>).domain; }, path: "socialcop:domain", message: /never read.*did you mean socialcoop:domain\?/, fix: /^rename socialcop:domain to socialcoop:domain in Pulumi.prod.yaml$/ },
  { name: "namespace with a dash", mutate: (c) => { c["social-coop:hosts"] = c.hosts; delete (c as Record<string, unknown>).hosts; }, path: "social-coop:hosts", message: /"social-coop" is not "socialcoop"/, fix: /^rename social-coop:hosts to socialcoop:hosts in Pulumi.prod.yaml$/ },
  { name: "misspelled namespace and key", mutate: (c) => (c["socialcop:adminuser"] = "ops"), path: "socialcop:adminuser", message: /did you mean socialcoop:adminUser\?/, fix: /^rename socialcop:adminuser to socialcoop:adminUser in Pulumi.prod.yaml$/ },
  { name: "misspelled namespace, key also set rightly", mutate: (c) => (c["socialcoop_:domain"] = "social.coop"), path: "socialcoop_:domain", message: /socialcoop:domain is set as well/, fix: /^pulumi config rm socialcoop_:domain$/ },
  { name: "misspelled namespace on a secret", raw: { secrets: withoutSecret("hcloudToken"), extraSecrets: { "socialcop:hcloudToken": SECRET_VALUES.hcloudToken } }, path: "socialcop:hcloudToken", message: /did you mean socialcoop:hcloudToken\?/, fix: /^pulumi config rm socialcop:hcloudToken && pulumi config set --secret hcloudToken$/ },
  { name: "misspelled namespace, unknown key", mutate: (c) => (c["socialcop:flavour"] = "x"), path: "socialcop:flavour", message: /socialcoop has no key "flavour"/, fix: /^pulumi config rm socialcop:flavour$/ },
  { name: "another app's namespace", mutate: (c) => (c["mastodon:domain"] = "social.coop"), path: "mastodon:domain", message: /reads only socialcoop: keys; did you mean socialcoop:domain\?/, fix: /^pulumi config rm mastodon:domain$/ },
  { name: "unrelated namespace", mutate: (c) => (c["aws:region"] = "eu-central-1"), path: "aws:region", message: /never read: this program reads only socialcoop: keys$/, fix: /^pulumi config rm aws:region$/ },
  { name: "hcloud:token beside hcloudToken", raw: { extraSecrets: { "hcloud:token": SECRET_VALUES.hcloudToken } }, path: "hcloud:token", message: /own hcloud provider from the secret socialcoop:hcloudToken/, fix: /^pulumi config rm hcloud:token$/ },
  { name: "digitalocean:token instead of digitaloceanToken", raw: { secrets: withoutSecret("digitaloceanToken"), extraSecrets: { "digitalocean:token": SECRET_VALUES.digitaloceanToken } }, path: "digitalocean:token", message: /own digitalocean provider/, fix: /^pulumi config rm digitalocean:token && pulumi config set --secret digitaloceanToken$/ },
  { name: "cloudflare:apiToken in plain text", mutate: (c) => (c["cloudflare:apiToken"] = "CF-PLAIN-TOKEN-0123456789abcdef0123456789"), path: "cloudflare:apiToken", message: /stored in plain text: rotate it/, fix: /^pulumi config rm cloudflare:apiToken$/ },
  { name: "a provider setting that is not a token", mutate: (c) => (c["hcloud:endpoint"] = "https://api.hetzner.cloud/v1"), path: "hcloud:endpoint", message: /do not reach it$/, fix: /^pulumi config rm hcloud:endpoint$/ },
  { name: "command provider setting", mutate: (c) => (c["command:timeout"] = "10m"), path: "command:timeout", message: /command provider takes no settings/, fix: /^pulumi config rm command:timeout$/ },
  { name: "misspelled top-level key", mutate: (c) => (c.hostz = c.hosts), path: "hostz", message: /did you mean hosts\?/, fix: /^pulumi config rm hostz$/ },
  { name: "top-level key in the wrong case", mutate: (c) => (c.adminuser = "ops"), path: "adminuser", message: /did you mean adminUser\?/, fix: /^rename socialcoop:adminuser to socialcoop:adminUser in Pulumi.prod.yaml$/ },
  { name: "misspelled secret key in plain text", mutate: (c) => (c.hcloudtoken = "HCLOUD-PLAIN-0123456789abcdef0123456789"), raw: { secrets: withoutSecret("hcloudToken") }, path: "hcloudtoken", message: /did you mean the secret hcloudToken\?; its value is stored in plain text: rotate it/, fix: /^pulumi config rm hcloudtoken && pulumi config set --secret hcloudToken$/ },
  { name: "misspelled key in a host", mutate: (c) => (hosts(c).primary.volume_gb = 200), path: "hosts.primary.volume_gb", message: /did you mean hosts.primary.volumeGb\?/, fix: /^pulumi config rm --path 'hosts.primary.volume_gb' && pulumi config set --path 'hosts.primary.volumeGb' 200$/ },
  { name: "misspelled key in versions", mutate: (c) => { versions(c).postgresql = 15; delete versions(c).postgres; }, path: "versions.postgresql", message: /did you mean versions.postgres\?/, fix: /^pulumi config rm --path 'versions.postgresql' && pulumi config set --path 'versions.postgres' 15$/ },
  { name: "misspelled key in backup", mutate: (c) => (c.backup = { dailyat: "04:00" }), path: "backup.dailyat", message: /did you mean backup.dailyAt\?/, fix: /^pulumi config rm --path 'backup.dailyat' && pulumi config set --path 'backup.dailyAt' 04:00$/ },
  { name: "S3 secret key inside backup.s3", mutate: (c) => (c.backup = { s3: { ...S3, secretAccessKey: "S3-PLAIN-SECRET-wJalrXUtnFEMI" } }), path: "backup.s3.secretAccessKey", message: /value not shown.*did you mean s3SecretAccessKey\?; its value is stored in plain text: rotate it/, fix: /^pulumi config rm --path 'backup.s3.secretAccessKey' && pulumi config set --secret s3SecretAccessKey$/ },
  { name: "unknown key in localCloud", base: localConfig, mutate: (c) => ((c.localCloud as Record<string, unknown>).bridge = "br0"), path: "localCloud.bridge", message: /known here: network, subnet4, subnet6/, fix: /^pulumi config rm --path 'localCloud.bridge'$/ },

  // Roles: a fix never drops a role the stack serves.
  { name: "spare beside mastodon on the secondary", mutate: (c) => { hosts(c).primary.roles = ["matrix"]; hosts(c).secondary.roles = ["spare", "mastodon"]; }, path: "hosts.secondary.roles", message: /"spare" cannot share a host with mastodon.*move mastodon to hosts.primary/, fix: /^pulumi config set --path 'hosts.primary.roles' '\["matrix","mastodon"\]' && pulumi config set --path 'hosts.secondary.roles' '\["spare"\]'$/ },
  { name: "spare beside mastodon on the primary", mutate: (c) => { hosts(c).primary.roles = ["mastodon", "spare"]; hosts(c).secondary.roles = ["matrix"]; }, path: "hosts.primary.roles", message: /belongs on hosts.secondary/, fix: /^pulumi config set --path 'hosts.primary.roles' '\["mastodon","matrix"\]' && pulumi config set --path 'hosts.secondary.roles' '\["spare"\]'$/ },
  { name: "spare on a stack without a secondary", base: townConfig, mutate: (c) => (hosts(c).primary.roles = ["hometown", "spare"]), path: "hosts.primary.roles", message: /needs a hosts.secondary to run on/, fix: /^pulumi config set --path 'hosts.primary.roles' '\["hometown"\]'$/ },
  { name: "spare on alpha's only host", base: alphaConfig, mutate: (c) => (hosts(c).primary.roles = ["hometown", "spare"]), path: "hosts.primary.roles", message: /alpha is a throwaway restore of prod and has no hot spare/, fix: /^pulumi config set --path 'hosts.primary.roles' '\["hometown"\]'$/, absent: /hosts\.secondary/ },
  { name: "spare on alpha's secondary", base: alphaConfig, mutate: (c) => (hosts(c).secondary = { provider: "hcloud", location: "nbg1", size: "cpx21", volumeGb: 50, roles: ["spare"] }), path: "hosts.secondary.roles", message: /has no hot spare/, fix: /^pulumi config rm --path 'hosts.secondary'$/ },
  { name: "spare and matrix on alpha: one fix for both", base: alphaConfig, mutate: (c) => (hosts(c).primary.roles = ["hometown", "matrix", "spare"]), path: "hosts.primary.roles", message: /has no hot spare/, fix: /^pulumi config set --path 'hosts.primary.roles' '\["hometown"\]'$/ },
  { name: "matrix and spare on alpha: one fix for both", base: alphaConfig, mutate: (c) => (hosts(c).primary.roles = ["hometown", "matrix", "spare"]), path: "hosts.primary.roles", message: /"matrix" is served only by the prod stack/, fix: /^pulumi config set --path 'hosts.primary.roles' '\["hometown"\]'$/ },
  { name: "no app role keeps matrix", mutate: (c) => (hosts(c).primary.roles = ["matrix"]), path: "hosts.primary.roles", message: /no host serves the instance/, fix: /^pulumi config set --path 'hosts.primary.roles' '\["matrix","mastodon"\]'$/ },
  { name: "mail on alpha", base: alphaConfig, mutate: (c) => (c.mail = { smtpUrl: "smtps://smtp.example.org:465", from: "n@social.coop" }), path: "mail", message: /is set on alpha, which never mails/, fix: /^pulumi config rm mail$/ },
  { name: "mail without a sender", mutate: (c) => (c.mail = { smtpUrl: "smtps://smtp.example.org:465" }), path: "mail.from", message: /is missing/, fix: /--path 'mail.from' notifications@social.coop/ },
  { name: "mail through a bare host", mutate: (c) => (c.mail = { smtpUrl: "smtp.example.org", from: "n@social.coop" }), path: "mail.smtpUrl", message: /expected "smtps:\/\/host:465" or "smtp:\/\/host:587"/, fix: /--path 'mail.smtpUrl' smtp:\/\/smtp.example.org:587/ },
  { name: "mail login in clear", mutate: (c) => (c.mail = { smtpUrl: "smtp://smtp.example.org:25", from: "n@social.coop", smtpLogin: "n", smtpStartTls: false }), path: "mail.smtpStartTls", message: /the SMTP password would travel in clear/, fix: /--path 'mail.smtpStartTls' true/ },
  { name: "mail login without its password", mutate: (c) => (c.mail = { smtpUrl: "smtps://smtp.example.org:465", from: "n@social.coop", smtpLogin: "n" }), raw: { secrets: withoutSecret("mailSmtpPassword") }, path: "mailSmtpPassword", message: /is missing \(password of mail.smtpLogin/, fix: /^pulumi config set --secret mailSmtpPassword$/ },
  { name: "mail password .env.production cannot hold", mutate: (c) => (c.mail = { smtpUrl: "smtps://smtp.example.org:465", from: "n@social.coop", smtpLogin: "n" }), raw: { secrets: { ...SECRET_VALUES, mailSmtpPassword: "it's-a-secret" } }, path: "mailSmtpPassword", message: /single quote or a line break/, fix: /^pulumi config set --secret mailSmtpPassword$/ },
  { name: "mail login with a space", mutate: (c) => (c.mail = { smtpUrl: "smtps://smtp.example.org:465", from: "n@social.coop", smtpLogin: "no tifications" }), path: "mail.smtpLogin", message: /without spaces or quotes/, fix: /--path 'mail.smtpLogin'/ },
  { name: "sign-ups set on alpha", base: alphaConfig, mutate: (c) => (c.registrations = "open"), path: "registrations", message: /is set on alpha, a copy of prod that nobody signs up to/, fix: /^pulumi config rm registrations$/ },
  { name: "sign-ups by a word Mastodon's tootctl uses", base: townConfig, mutate: (c) => (c.registrations = "close"), path: "registrations", message: /expected one of "open", "approved", "closed", found "close"/, fix: /config set registrations open/ },
  { name: "town without an app role", base: townConfig, mutate: (c) => (hosts(c).primary.roles = ["matrix"]), path: "hosts.primary.roles", message: /no host serves the instance/, fix: /^pulumi config set --path 'hosts.primary.roles' '\["hometown"\]'$/ },

  // The upgrade path, checked with the rest of the config.
  { name: "version not in the release catalog", mutate: (c) => (versions(c).mastodon = "v4.4.0"), catalog: () => ["v4.3.0", "v4.3.8"], path: "versions.mastodon", message: /v4.4.0 is not in releases\/mastodon.json/, fix: /^add "v4.4.0" to releases\/mastodon.json \(with every release before it\), or keep a listed release: pulumi config set --path 'versions.mastodon' v4.3.8$/ },
  { name: "version off the repository's catalog", mutate: (c) => (versions(c).mastodon = "v9.9.9"), path: "versions.mastodon", message: /v9.9.9 is not in releases\/mastodon.json/, fix: /add "v9.9.9" to releases\/mastodon.json/ },
  { name: "Hometown version off the catalog", base: alphaConfig, mutate: (c) => (versions(c).hometown = "v4.5.12+hometown-1.2.2"), path: "versions.hometown", message: /not in releases\/hometown.json/, fix: /keep a listed release: pulumi config set --path 'versions.hometown' 'v4.5.11\+hometown-1.2.1'|keep a listed release: pulumi config set --path 'versions.hometown' v4.5.11\+hometown-1.2.1/ },
  { name: "a pre-release as the target", mutate: (c) => (versions(c).mastodon = "v4.4.0-rc.1"), catalog: () => ["v4.3.8", "v4.4.0-rc.1"], path: "versions.mastodon", message: /not a final mastodon release tag/, fix: /^pulumi config set --path 'versions.mastodon' v4.3.8$/ },
  { name: "an unreadable release catalog", catalog: () => { throw new UpgradePathError("releases/mastodon.json: Unexpected token ] in JSON; it must be a JSON list of release tags"); }, path: "versions.mastodon", message: /cannot be checked: releases\/mastodon.json/, fix: /^repair releases\/mastodon.json/ },

  // Local machines: all hosts or none, with local's own location and size.
  { name: "local host beside a cloud host", mutate: (c) => Object.assign(hosts(c).secondary, { provider: "local", location: "local", size: "local" }), path: "hosts", message: /local hosts cannot be mixed with cloud hosts/, fix: /every hosts.\*.provider to local/ },
  { name: "local host with a cloud location", base: localConfig, mutate: (c) => (hosts(c).primary.location = "fsn1"), path: "hosts.primary.location", message: /not a local location/, fix: /--path 'hosts.primary.location' local$/ },
  { name: "local host with a cloud size", base: localConfig, mutate: (c) => (hosts(c).secondary.size = "cpx31"), path: "hosts.secondary.size", message: /not a local size slug/, fix: /--path 'hosts.secondary.size' local$/ },
  { name: "local network name too long", base: localConfig, mutate: (c) => ((c.localCloud as Record<string, unknown>).network = "socialcoop-local-net"), path: "localCloud.network", message: /short name/, fix: /--path 'localCloud.network' coop-local$/ },

  // The certificate: the test ACME server's settings and the fixture app belong to local stacks only.
  { name: "test ACME server's DNS API on a real stack", mutate: (c) => (c.tls = { dnsApi: "http://10.231.7.1:8055" }), path: "tls.dnsApi", message: /local stacks only/, fix: /^pulumi config rm --path 'tls.dnsApi'$/ },
  { name: "test ACME server's CA on a real stack", mutate: (c) => (c.tls = { acmeCa: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" }), path: "tls.acmeCa", message: /local stacks only/, fix: /^pulumi config rm --path 'tls.acmeCa'$/ },
  { name: "test ACME server's roots URL on a real stack", mutate: (c) => (c.tls = { acmeRootsUrl: "https://10.231.7.1:15000/roots/0" }), path: "tls.acmeRootsUrl", message: /local stacks only/, fix: /^pulumi config rm --path 'tls.acmeRootsUrl'$/ },
  { name: "ACME directory over plain http", mutate: (c) => (c.tls = { acmeServer: "http://acme.example.org/dir" }), path: "tls.acmeServer", message: /https:\/\/ URL of an ACME directory/, fix: /--path 'tls.acmeServer' https:\/\/acme-v02.api.letsencrypt.org\/directory$/ },
  { name: "ACME CA that is not a PEM certificate", base: localConfig, mutate: (c) => (c.tls = { acmeCa: "not a certificate" }), path: "tls.acmeCa", message: /one PEM certificate/, fix: /tls.acmeCa/ },
  { name: "unknown key in tls", base: localConfig, mutate: (c) => (c.tls = { server: "https://x" }), path: "tls.server", message: /known here: acmeServer, acmeCa, acmeRootsUrl, dnsApi/, fix: /^pulumi config rm --path 'tls.server'$/ },
  { name: "fixture app version on a real stack", mutate: (c) => (versions(c).fixture = "v2.0.0"), path: "versions.fixture", message: /local stacks' test app/, fix: /^pulumi config rm --path 'versions.fixture'$/ },
  { name: "fixture app version that is not a tag", base: localConfig, mutate: (c) => (versions(c).fixture = "2.0"), path: "versions.fixture", message: /fixture app tag like v2.0.0/, fix: /--path 'versions.fixture' v2.0.0$/ },

  { name: "restore from an unknown repository", mutate: (c) => (c.restore = { from: "backup" }), path: "restore.from", message: /expected one of "secondary", "s3", "prod", found "backup"/, fix: /--path 'restore.from' secondary/ },
  { name: "restore to a time without its zone", mutate: (c) => (c.restore = { from: "secondary", target: "time:2026-11-25 09:14:00" }), path: "restore.target", message: /"time:YYYY-MM-DD HH:MM:SS\+00"/, fix: /--path 'restore.target' latest/ },
  { name: "restore from S3 without backup.s3", mutate: (c) => (c.restore = { from: "s3" }), path: "restore.from", message: /backup.s3 is not set/, fix: /--path 'restore.from' secondary/ },
  { name: "restore from a secondary the stack lacks", base: townConfig, mutate: (c) => (c.restore = { from: "secondary" }), path: "restore.from", message: /no hosts.secondary, and without one it keeps no backups/, fix: /^pulumi config rm --path 'restore'$/ },
  { name: "restore from S3 on a stack without a secondary", base: townConfig, mutate: (c) => { c.restore = { from: "s3" }; c.backup = { s3: S3 }; }, path: "restore.from", message: /is "s3" but this stack has no hosts.secondary/, fix: /^pulumi config rm --path 'restore'$/ },
  { name: "restore on prod with its secondary removed", mutate: (c) => { c.restore = { from: "s3" }; c.backup = { s3: S3 }; delete hosts(c).secondary; }, path: "hosts.secondary", message: /prod keeps its backup repository and hot spare on a secondary host/, fix: /"roles":\["spare"\]/ },
  { name: "S3 endpoint with the bucket in its path", mutate: (c) => (c.backup = { s3: { ...S3, endpoint: "https://s3.example.org/coop-backups" } }), path: "backup.s3.endpoint", message: /the endpoint alone, "https:\/\/host" or "https:\/\/host:port"/, fix: /backup.s3.endpoint/ },
  { name: "metrics on every address", mutate: (c) => (c.backup = { metricsListen: "0.0.0.0:9100" }), path: "backup.metricsListen", message: /a loopback address and a port/, fix: /--path 'backup.metricsListen' 127.0.0.1:9100$/ },
  { name: "metrics on a private address (both hosts would need it)", mutate: (c) => (c.backup = { metricsListen: "10.0.0.5:9100" }), path: "backup.metricsListen", message: /a loopback address and a port/, fix: /--path 'backup.metricsListen' 127.0.0.1:9100$/ },
  { name: "metrics on a port out of range", mutate: (c) => (c.backup = { metricsListen: "127.0.0.1:99999" }), path: "backup.metricsListen", message: /a port from 1 to 65535/, fix: /--path 'backup.metricsListen' 127.0.0.1:9100$/ },
  { name: "S3 CA that is not a PEM certificate", mutate: (c) => (c.backup = { s3: { ...S3, caCert: "not a certificate" } }), path: "backup.s3.caCert", message: /one PEM certificate/, fix: /backup.s3.caCert/ },
  { name: "restore from prod on the prod stack", mutate: (c) => (c.restore = { from: "prod" }), path: "restore.from", message: /prod restores from its own repositories/, fix: /--path 'restore.from' secondary/ },
  { name: "a stack to read without a restore from prod", mutate: (c) => (c.restore = { from: "secondary", stack: "prod" }), path: "restore.stack", message: /only a restore from prod reads another stack/, fix: /config rm --path 'restore.stack'/ },
  { name: "restore from prod on town", base: townConfig, mutate: (c) => (c.restore = { from: "prod" }), path: "restore.from", message: /only alpha is a copy of prod/, fix: /config rm --path 'restore'/ },
  { name: "restore from a stack name with a space", mutate: (c) => (c.restore = { from: "prod", stack: "my prod" }), path: "restore.stack", message: /expected a stack name like "prod"/, fix: /--path 'restore.stack' prod/ },
  { name: "unknown key in restore", mutate: (c) => (c.restore = { from: "secondary", snapshot: "latest" }), path: "restore.snapshot", message: /unknown key/, fix: /config rm --path 'restore.snapshot'/ },
  // Secrets: set from the prompt or a file, never on the command line.
  { name: "missing restic passphrase", raw: { secrets: withoutSecret("resticPassword") }, path: "resticPassword", message: /is missing \(restic repository passphrase/, fix: /^pulumi config set --secret resticPassword$/ },
  { name: "Cloudflare token in plain text", raw: { plainSecrets: ["cloudflareApiToken"] }, path: "cloudflareApiToken", message: /plain text/, fix: /^pulumi config set --secret cloudflareApiToken$/ },
  { name: "short Hetzner token", raw: { secrets: { ...SECRET_VALUES, hcloudToken: "short-token" } }, path: "hcloudToken", message: /shorter than 32 characters/, fix: /^pulumi config set --secret hcloudToken$/ },
];

describe("stack config: bad input is refused with the key path and the fix", () => {
  it("has at least 100 distinct bad-config cases", () => {
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
    expect(CASES.length).toBeGreaterThanOrEqual(100);
  });

  for (const c of CASES) {
    it(`${c.name}: names ${c.path} and how to fix it`, () => {
      const cfg = (c.base ?? prodConfig)();
      c.mutate?.(cfg);
      const problems = problemsOf(() => parseStackConfig(toRaw(cfg, c.raw), { catalog: c.catalog }));
      const atPath = problems.filter((p) => p.path === c.path);
      expect(atPath, `no problem for ${c.path}; got ${JSON.stringify(problems)}`).not.toHaveLength(0);
      const hit = atPath.find((p) => c.message.test(p.message)) ?? atPath[0];
      expect(hit.message).toMatch(c.message);
      expect(hit.fix).toMatch(c.fix);
      if (c.absent) for (const p of problems) expect(`${p.path}: ${p.message} | ${p.fix}`).not.toMatch(c.absent);
      for (const p of problems) {
        for (const v of Object.values(SECRET_VALUES)) expect(`${p.message} ${p.fix}`).not.toContain(v);
        expect(p.fix, `${p.path}: a secret's value on the command line`).not.toMatch(/--secret \S+ [^<\s&]/);
      }
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

describe("stack config: problems across keys come with everything else", () => {
  it("reports an upgrade path off the catalog together with the other problems, at versions.mastodon", () => {
    const cfg = prodConfig();
    cfg.domain = "Social.Coop";
    cfg.adminUser = "root";
    versions(cfg).mastodon = "v4.9.0";
    const problems = problemsOf(() => parseStackConfig(toRaw(cfg, { plainSecrets: ["resticPassword"] })));
    expect(problems.map((p) => p.path).sort()).toEqual(["adminUser", "domain", "resticPassword", "versions.mastodon"]);
    expect(problems.find((p) => p.path === "versions.mastodon")?.message).toMatch(/v4.9.0 is not in releases\/mastodon.json/);
  });

  it("reports a wrong role placement while another section is broken", () => {
    const cfg = prodConfig();
    cfg.sshKeys = ["ssh-ed25519 AAAA"];
    hosts(cfg).secondary.roles = ["spare", "matrix"];
    const paths = problemsOf(() => parseStackConfig(toRaw(cfg))).map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(["sshKeys[0]", "hosts.secondary.roles[1]", "hosts.secondary.roles"]));
  });

  it("names a key of another namespace in full in the error text", () => {
    const cfg = prodConfig();
    cfg["socialcop:adminUser"] = "ops";
    let text = "";
    try {
      parseStackConfig(toRaw(cfg));
    } catch (e) {
      text = (e as Error).message;
    }
    expect(text).toContain("  - socialcop:adminUser: is never read");
    expect(text).not.toContain("socialcoop:socialcop");
  });

  it("never shows the value of a key it does not know, nor a pasted private key", () => {
    const cfg = prodConfig();
    cfg["socialcop:hcloudToken"] = "SHOULD-NOT-APPEAR-1";
    cfg.hcloudtoken = "SHOULD-NOT-APPEAR-2";
    cfg["hcloud:token"] = "SHOULD-NOT-APPEAR-3";
    cfg.backup = { s3: { ...S3, secretAccessKey: "SHOULD-NOT-APPEAR-4" } };
    cfg.sshKeys = [DEPLOY_KEY.privateKey];
    const problems = problemsOf(() => parseStackConfig(toRaw(cfg)));
    const text = JSON.stringify(problems);
    expect(text).not.toMatch(/SHOULD-NOT-APPEAR/);
    expect(text).not.toContain(bodyLines(DEPLOY_KEY.privateKey)[1]);
    expect(problems.find((p) => p.path === "sshKeys[0]")?.message).toMatch(/a private key \(not shown\)/);
  });
});

describe("stack config: no fix puts a secret on the command line", () => {
  const SECRET_FIX = (key: string) => new RegExp(`(^|&& )pulumi config set --secret ${key}( < \\S+)?$`);

  /** Every way a secret key can be wrong, each with the problems it gives. */
  function scenarios(key: SecretName, checked: boolean): [string, ConfigError["problems"]][] {
    const needsAll = () => ({ ...prodConfig(), backup: { s3: S3 }, alerts: { email: ["ops@social.coop"], from: "alerts@social.coop", smtpUrl: "smtps://smtp.example.org:465", smtpLogin: "alerts" },
      mail: { smtpUrl: "smtp://smtp.example.org:587", from: "notifications@social.coop", smtpLogin: "notifications" } });
    // A secret no config requires (the webhook is optional) has no "missing" or "empty" problem.
    const optional = key === "alertWebhookUrl";
    const run = (cfg: TestConfig, opts: Parameters<typeof toRaw>[1]) => problemsOf(() => parseStackConfig(toRaw(cfg, opts)));
    return [
      ...(optional
        ? []
        : ([
            ["missing", run(needsAll(), { secrets: withoutSecret(key) })],
            ["empty", run(needsAll(), { secrets: { ...SECRET_VALUES, [key]: "" } })],
          ] as [string, ConfigError["problems"]][])),
      ["plain text", run(needsAll(), { plainSecrets: [key] })],
      ...(checked ? [["badly shaped", run(needsAll(), { secrets: { ...SECRET_VALUES, [key]: "x" } })] as [string, ConfigError["problems"]]] : []),
      ["misspelled namespace", run(needsAll(), { secrets: withoutSecret(key), extraSecrets: { [`socialcop:${key}`]: SECRET_VALUES[key] } })],
      ["misspelled key", run(needsAll(), { secrets: withoutSecret(key), extraSecrets: { [key.toLowerCase()]: SECRET_VALUES[key] } })],
      ["misspelled key in plain text", run({ ...needsAll(), [key.toLowerCase()]: SECRET_VALUES[key] }, { secrets: withoutSecret(key) })],
    ];
  }

  for (const spec of SECRET_SPECS) {
    it(`${spec.key}: every fix reads it from the prompt or a file`, () => {
      let fixes = 0;
      for (const [what, problems] of scenarios(spec.key, spec.check !== undefined)) {
        const about = problems.filter((p) => p.path === spec.key || p.fix.includes(`--secret ${spec.key}`));
        expect(about.length, `${what}: no problem about ${spec.key}`).toBeGreaterThan(0);
        for (const p of problems) {
          expect(`${p.message} ${p.fix}`, `${what}: ${p.path}`).not.toContain(SECRET_VALUES[spec.key]);
          expect(p.fix, `${what}: ${p.path}`).not.toMatch(/<value>/);
        }
        for (const p of about) {
          expect(p.fix, `${what}: ${p.path}`).toMatch(SECRET_FIX(spec.key));
          fixes++;
        }
      }
      expect(fixes).toBeGreaterThanOrEqual(5);
    });
  }

  it("secretFix and setFix never take a value for a secret key", () => {
    for (const key of SECRET_KEYS) {
      expect(secretFix(key)).toMatch(SECRET_FIX(key));
      expect(setFix([key])).toBe(secretFix(key));
    }
    expect(secretFix("sshPrivateKey")).toBe("pulumi config set --secret sshPrivateKey < deploy_key");
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

  it("accepts a restore from S3 alone, from an endpoint on its own port with a private CA", () => {
    const cfg = prodConfig();
    const caCert = "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2g\n-----END CERTIFICATE-----\n";
    cfg.backup = { s3: { ...S3, endpoint: "https://10.231.11.1:9443", caCert } };
    cfg.restore = { from: "s3" };
    const parsed = parseStackConfig(toRaw(cfg));
    expect(parsed.restore).toEqual({ from: "s3", target: "latest" });
    expect(parsed.backup.s3).toMatchObject({ endpoint: "https://10.231.11.1:9443", caCert });
  });

  it("accepts alert e-mail with neither sender nor server when the instance's mail is set (they go through it), and sign-ups for town", () => {
    const cfg = { ...prodConfig(), mail: { smtpUrl: "smtps://smtp.example.org:465", from: "notifications@social.coop" }, alerts: { email: ["ops@social.coop"] } };
    const parsed = parseStackConfig(toRaw(cfg));
    expect(parsed.mail).toEqual({ smtpUrl: "smtps://smtp.example.org:465", from: "notifications@social.coop", smtpStartTls: true });
    expect(parsed.alerts?.smtpUrl).toBeUndefined();
    // The grace period of a missed security release: coopctl behind's 72 hours unless set.
    expect(parsed.alerts?.securityGraceHours).toBe(72);
    expect(parseStackConfig(toRaw({ ...cfg, alerts: { email: ["ops@social.coop"], securityGraceHours: 24 } })).alerts?.securityGraceHours).toBe(24);
    expect(parseStackConfig(toRaw({ ...townConfig(), registrations: "approved" })).registrations).toBe("approved");
  });

  it("hands back the upgrade path it checked", () => {
    const cfg = parseStackConfig(toRaw(prodConfig()), { catalog: () => ["v4.2.9", "v4.3.0", "v4.3.8"] });
    expect(cfg.upgrade).toEqual({ flavor: "mastodon", hops: [{ series: "4.2", tag: "v4.2.9" }, { series: "4.3", tag: "v4.3.8" }] });
    expect(parseStackConfig(toRaw(alphaConfig())).upgrade.flavor).toBe("hometown");
  });

  it("accepts RSA and ECDSA keys, for operators and as the deploy key", () => {
    const cfg = prodConfig();
    cfg.sshKeys = [line("ssh-rsa", RSA_2048.blob), line("ecdsa-sha2-nistp256", P256.blob), line("ecdsa-sha2-nistp384", P384.blob), OPERATOR_KEY];
    for (const deploy of [rsaKey(3072).privateKey, ecdsaKey("nistp256").privateKey, ecdsaKey("nistp384").privateKey, ecdsaKey("nistp521").privateKey]) {
      expect(() => parseStackConfig(toRaw(cfg, { secrets: { ...SECRET_VALUES, sshPrivateKey: deploy } }))).not.toThrow();
    }
  });

  it("leaves Pulumi's own settings (pulumi:) to the engine", () => {
    const cfg = prodConfig();
    cfg["pulumi:disable-default-providers"] = '["*"]';
    cfg["pulumi:tags"] = '{"team": "ops"}';
    expect(() => parseStackConfig(toRaw(cfg))).not.toThrow();
  });

  it("parses the local stack's shape", () => {
    const { cloudflareApiToken: _cf, hcloudToken: _h, digitaloceanToken: _d, ...rest } = SECRET_VALUES;
    expect(parseStackConfig(toRaw(localConfig(), { secrets: rest })).localCloud.network).toBe("coop-local");
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
