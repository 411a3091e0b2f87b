// The secret keys of a stack, when each is required, and how each is checked without revealing it.
import { publicKeyFromPrivateKey } from "../ssh/openssh-key";
import { PlainConfig, isLocalStack } from "./schema";

export interface SecretSpec {
  /** Config key under the `socialcoop:` namespace. */
  readonly key: SecretKey;
  /** What it is for, shown in errors. */
  readonly purpose: string;
  /** Whether this stack needs it; undefined means always. */
  readonly requiredWhen?: (cfg: PlainConfig) => boolean;
  /** A shape check that never echoes the value; returns the problem or undefined. */
  readonly check?: (value: string) => string | undefined;
  /** A multi-line secret is read from this file (`< file`) rather than typed at the prompt. */
  readonly fromFile?: string;
  /** Never required: absent, what it enables is off (an offline plan then stands in nothing for it). */
  readonly optional?: boolean;
}

export const SECRET_KEYS = [
  "hcloudToken",
  "digitaloceanToken",
  "cloudflareApiToken",
  "sshPrivateKey",
  "resticPassword",
  "pgbackrestCipherPass",
  "s3SecretAccessKey",
  "alertSmtpPassword",
  "alertWebhookUrl",
  "mailSmtpPassword",
] as const;
export type SecretKey = (typeof SECRET_KEYS)[number];

const usesProvider = (p: string) => (cfg: PlainConfig) =>
  cfg.hosts.primary.provider === p || cfg.hosts.secondary?.provider === p;

const minLength = (n: number) => (v: string) =>
  v.length >= n ? undefined : `is shorter than ${n} characters`;

const PRIVATE_HTTP = /^http:\/\/(127(\.\d{1,3}){3}|10(\.\d{1,3}){3}|172\.(1[6-9]|2\d|3[01])(\.\d{1,3}){2}|192\.168(\.\d{1,3}){2})(:\d{1,5})?(\/\S*)?$/;

export const SECRET_SPECS: readonly SecretSpec[] = [
  { key: "hcloudToken", purpose: "Hetzner Cloud API token", requiredWhen: usesProvider("hcloud"), check: minLength(32) },
  {
    key: "digitaloceanToken",
    purpose: "DigitalOcean API token",
    requiredWhen: usesProvider("digitalocean"),
    check: minLength(32),
  },
  {
    key: "cloudflareApiToken",
    purpose: "Cloudflare API token with DNS edit on the zone",
    // Local stacks never call Cloudflare: their hosts resolve the stack's names themselves.
    requiredWhen: (cfg) => !isLocalStack(cfg),
    check: minLength(32),
  },
  {
    key: "sshPrivateKey",
    purpose: "the deploy key that `pulumi up` uses to run commands on the hosts",
    fromFile: "deploy_key",
    check: (v) => {
      try {
        publicKeyFromPrivateKey(v);
        return undefined;
      } catch (e) {
        return (e as Error).message;
      }
    },
  },
  // Only a stack with its own repository (on its secondary) holds them: alpha reads prod's through the
  // grant in prod's stack output, which carries the restic passphrase (pgBackRest's stays on prod's side).
  { key: "resticPassword", purpose: "restic repository passphrase of this stack's backups", requiredWhen: (cfg) => cfg.hosts.secondary !== undefined, check: minLength(20) },
  { key: "pgbackrestCipherPass", purpose: "pgBackRest repository passphrase of this stack's backups", requiredWhen: (cfg) => cfg.hosts.secondary !== undefined, check: minLength(20) },
  {
    key: "s3SecretAccessKey",
    purpose: "secret key of the S3 backup repository",
    requiredWhen: (cfg) => cfg.backup.s3 !== undefined,
  },
  {
    key: "mailSmtpPassword",
    purpose: "password of mail.smtpLogin on the SMTP server the instance mails through",
    requiredWhen: (cfg) => cfg.mail?.smtpLogin !== undefined,
    // .env.production holds it in single quotes (both dotenv readers take those literally).
    check: (v) => (/['\n\r]/.test(v) ? "holds a single quote or a line break, which .env.production cannot keep: choose another password" : minLength(8)(v)),
  },
  { key: "alertSmtpPassword", purpose: "password of alerts.smtpLogin on the SMTP server alerts go through", requiredWhen: (cfg) => cfg.alerts?.smtpLogin !== undefined },
  {
    key: "alertWebhookUrl",
    purpose: "the webhook alerts are posted to (its URL holds a token); optional",
    requiredWhen: () => false,
    optional: true,
    // http:// only to a numeric loopback or private IPv4 address (a local stack's listener on its bridge);
    // the same rule as scripts/install-alerts.sh's.
    check: (v) => (/^https:\/\/\S+$/.test(v) || PRIVATE_HTTP.test(v) ? undefined : "is not an https:// URL (http:// only to a loopback or private IPv4 address)"),
  },
];

export function isSecretKey(key: string): key is SecretKey {
  return (SECRET_KEYS as readonly string[]).includes(key);
}

/**
 * How to set a secret: Pulumi asks for the value at its prompt, or reads a multi-line one from a
 * file. Never on the command line, where it would stay in the shell history and the process list.
 */
export function secretFix(key: SecretKey): string {
  const file = SECRET_SPECS.find((s) => s.key === key)?.fromFile;
  return file ? `pulumi config set --secret ${key} < ${file}` : `pulumi config set --secret ${key}`;
}
