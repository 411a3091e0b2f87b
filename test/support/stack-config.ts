// A valid raw stack config for tests, with distinctive secret values that tests grep for.
import { generateEd25519 } from "../../src/ssh/openssh-key";
import type { RawStackConfig } from "../../src/config/parse";

export const DEPLOY_KEY = generateEd25519("deploy@test", Buffer.alloc(32, 3));
export const OPERATOR_KEY = generateEd25519("operator@test", Buffer.alloc(32, 4)).publicKey;

/** Secret values no real config would contain, so finding one in plain text is unambiguous. */
export const SECRET_VALUES = {
  hcloudToken: "HCLOUD-TOKEN-0123456789abcdef0123456789abcdef-SECRET",
  digitaloceanToken: "DO-TOKEN-0123456789abcdef0123456789abcdef-SECRET",
  cloudflareApiToken: "CF-TOKEN-0123456789abcdef0123456789abcdef-SECRET",
  sshPrivateKey: DEPLOY_KEY.privateKey,
  resticPassword: "RESTIC-PASSPHRASE-correct-horse-battery",
  pgbackrestCipherPass: "PGBACKREST-PASSPHRASE-staple-battery-horse",
  s3SecretAccessKey: "S3-SECRET-KEY-wJalrXUtnFEMI-K7MDENG",
  alertSmtpPassword: "ALERT-SMTP-PASSWORD-b8d1e4",
  alertWebhookUrl: "https://hooks.example.org/ALERT-WEBHOOK-TOKEN-93fa",
  mailSmtpPassword: "MAIL-SMTP-PASSWORD-5c7a90",
} as const;

export interface TestConfig {
  stackRole: string;
  domain: string;
  cloudflareZoneId?: string;
  adminEmail: string;
  sshKeys: unknown;
  hosts: Record<string, unknown>;
  versions: Record<string, unknown>;
  backup?: Record<string, unknown>;
  [key: string]: unknown;
}

export function prodConfig(): TestConfig {
  return {
    stackRole: "prod",
    domain: "social.coop",
    cloudflareZoneId: "0123456789abcdef0123456789abcdef",
    adminEmail: "ops@social.coop",
    sshKeys: [OPERATOR_KEY],
    hosts: {
      primary: { provider: "hcloud", location: "fsn1", size: "cpx41", volumeGb: 200, roles: ["mastodon", "matrix"] },
      secondary: { provider: "digitalocean", location: "ams3", size: "s-4vcpu-8gb", volumeGb: 250, roles: ["spare"] },
    },
    versions: { mastodon: "v4.3.8", synapse: "v1.120.0", postgres: 15 },
  };
}

export function alphaConfig(): TestConfig {
  return {
    stackRole: "alpha",
    domain: "social.coop",
    cloudflareZoneId: "0123456789abcdef0123456789abcdef",
    adminEmail: "ops@social.coop",
    sshKeys: [OPERATOR_KEY],
    hosts: { primary: { provider: "digitalocean", location: "fra1", size: "s-2vcpu-4gb", volumeGb: 50, roles: ["hometown"] } },
    versions: { hometown: "v4.5.11+hometown-1.2.1", postgres: 15 },
  };
}

/** Encodes a test config the way Pulumi hands config to a program: strings, objects as JSON. */
export function toRaw(
  cfg: TestConfig,
  opts: {
    stackName?: string;
    secrets?: Partial<Record<keyof typeof SECRET_VALUES, string>>;
    plainSecrets?: string[];
    /** More keys Pulumi holds encrypted, of any name or namespace (`socialcop:hcloudToken`). */
    extraSecrets?: Record<string, string>;
  } = {},
): RawStackConfig {
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(cfg)) {
    if (v === undefined) continue;
    values[k] = typeof v === "string" ? v : JSON.stringify(v);
  }
  const secrets = opts.secrets ?? SECRET_VALUES;
  const secretKeys = new Set<string>();
  for (const [k, v] of Object.entries(secrets)) {
    values[k] = v;
    if (!(opts.plainSecrets ?? []).includes(k)) secretKeys.add(k);
  }
  for (const [k, v] of Object.entries(opts.extraSecrets ?? {})) {
    values[k] = v;
    secretKeys.add(k);
  }
  return { stackName: opts.stackName ?? cfg.stackRole, values, secretKeys };
}
