// The zod schema of a stack's plain (non-secret) config. Secrets are declared in secrets.ts.
import { z } from "zod";
import { publicKeyProblem } from "../ssh/public-key";

/** `local`: a systemd-nspawn machine on the machine running Pulumi (tools/local-cloud), for tests and rehearsals. */
export const PROVIDERS = ["hcloud", "digitalocean", "local"] as const;
export type Provider = (typeof PROVIDERS)[number];

export const ROLES = ["mastodon", "hometown", "matrix", "spare"] as const;
export type Role = (typeof ROLES)[number];

export const STACK_ROLES = ["prod", "alpha", "town"] as const;
export type StackRole = (typeof STACK_ROLES)[number];

/** Where each provider can put a server; a typo here would otherwise fail only at `pulumi up`. */
export const LOCATIONS: Record<Provider, readonly string[]> = {
  hcloud: ["fsn1", "nbg1", "hel1", "ash", "hil", "sin"],
  digitalocean: ["ams3", "blr1", "fra1", "lon1", "nyc1", "nyc3", "sfo2", "sfo3", "sgp1", "syd1", "tor1", "atl1"],
  local: ["local"],
};

/** Size slugs as the providers spell them (hcloud `cpx31`, DigitalOcean `s-2vcpu-4gb`). */
export const SIZE_PATTERNS: Record<Provider, RegExp> = {
  hcloud: /^(cx|cpx|cax|ccx)\d{2,3}$/,
  digitalocean: /^[a-z0-9]+(-[a-z0-9]+)+$/,
  local: /^local$/,
};

/** A size each provider accepts, for the fix line of an error. */
export const SIZE_EXAMPLES: Record<Provider, string> = { hcloud: "cpx31", digitalocean: "s-2vcpu-4gb", local: "local" };

const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
const UNIX_USER = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * Accounts that already exist on the hosts (Debian 12's base system, and the services this program
 * installs): cloud-init would hand one of them sudo and the operators' keys, or, for root, nobody
 * could log in at all (cloud-init's `disable_root` and sshd's `PermitRootLogin no`).
 */
export const RESERVED_USERS: Readonly<Record<string, string>> = {
  root: "root cannot log in: cloud-init disables root SSH login (disable_root) and sshd has PermitRootLogin no, so nobody could log in",
  ...Object.fromEntries(
    ["daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data", "backup", "list", "irc", "gnats", "nobody", "_apt", "messagebus", "sshd", "systemd-network", "systemd-timesync", "_chrony"].map(
      (u) => [u, `"${u}" is a Debian system account on every host, not a login of its own`],
    ),
  ),
  ...Object.fromEntries(
    [
      ["postgres", "PostgreSQL"],
      ["redis", "Redis"],
      ["mastodon", "the Mastodon app"],
      ["matrix-synapse", "Synapse"],
      ["coop-backup", "the backup repository"],
    ].map(([u, what]) => [u, `"${u}" is the account of ${what} on the hosts, not a login of its own`]),
  ),
};

function refuse(check: (v: string) => string | undefined) {
  return (v: string, ctx: z.RefinementCtx<string>) => {
    const bad = check(v);
    if (bad) ctx.addIssue({ code: "custom", message: bad, input: v });
  };
}
const MASTODON_TAG = /^v\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$/;
const HOMETOWN_TAG = /^v\d+\.\d+\.\d+\+hometown-\d+\.\d+\.\d+$/;

export const hostSchema = z.strictObject({
  provider: z.enum(PROVIDERS),
  location: z.string().min(1),
  size: z.string().min(1),
  volumeGb: z.number().int().min(10).max(10_000),
  roles: z.array(z.enum(ROLES)).min(1),
});
export type HostConfig = z.infer<typeof hostSchema>;

export const versionsSchema = z.strictObject({
  mastodon: z.string().regex(MASTODON_TAG, { error: "expected a release tag like v4.3.8" }).optional(),
  hometown: z.string().regex(HOMETOWN_TAG, { error: "expected a Hometown tag like v4.5.11+hometown-1.2.1" }).optional(),
  synapse: z.string().regex(MASTODON_TAG, { error: "expected a Synapse tag like v1.120.0" }).optional(),
  /** Local stacks: the fixture app's release the upgrade chain moves to (the first deploy is v1.2.0). */
  fixture: z.string().regex(/^v\d+\.\d+\.\d+(\+hometown-1\.0\.0)?$/, { error: "expected a fixture app tag like v2.0.0 (v2.0.0+hometown-1.0.0 on a Hometown stack)" }).optional(),
  postgres: z.number().int().min(13).max(18),
});
export type Versions = z.infer<typeof versionsSchema>;

const TIME_OF_DAY = /^([01][0-9]|2[0-3]):[0-5][0-9]$/;

/** pgBackRest + restic backups, their schedule (UTC) and the restore drill; see components/backup.ts. */
export const backupSchema = z.strictObject({
  s3: z
    .strictObject({
      endpoint: z
        .url({ protocol: /^https$/, error: "expected an https:// URL of the S3 endpoint" })
        .regex(/^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?\/?$/, { error: 'expected the endpoint alone, "https://host" or "https://host:port" (the bucket is backup.s3.bucket)' }),
      bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: "expected an S3 bucket name (3-63 of a-z 0-9 . -)" }),
      region: z.string().min(1),
      accessKeyId: z.string().min(1),
      /**
       * An endpoint whose certificate a private CA signed (a self-hosted MinIO): that CA, which the hosts
       * then trust for S3 (pgBackRest that CA alone). Providers with a public CA need none.
       */
      caCert: z
        .string()
        .regex(/^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?$/, { error: "expected one PEM certificate" })
        .optional(),
    })
    .optional(),
  fullEveryDays: z.number().int().min(1).max(31).default(7),
  retentionFull: z.number().int().min(1).max(52).default(4),
  drillMaxAgeHours: z.number().int().min(1).max(24 * 14).default(26),
  dailyAt: z.string().regex(TIME_OF_DAY, { error: 'expected a UTC time of day as "HH:MM", like "03:15"' }).default("03:15"),
  drillAt: z.string().regex(TIME_OF_DAY, { error: 'expected a UTC time of day as "HH:MM", like "05:30"' }).default("05:30"),
  /**
   * Stacks that may read (never change) this stack's backups, through a credential of their own on the
   * repository host (scripts/grant-repo-reader.sh): alpha restores prod's. The grant is the stack output
   * `backupReaders` (secret).
   */
  readers: z.array(z.enum(STACK_ROLES)).default([]),
  /**
   * Where prometheus-node-exporter serves each backup host's metrics and the backup's and drill's
   * (scripts/lib/node-exporter.sh): a loopback address, reached through SSH. Both hosts get the same
   * setting and share no private address, so nothing else is accepted.
   */
  metricsListen: z
    .string()
    .regex(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d{1,5}$/, { error: 'expected a loopback address and a port, like "127.0.0.1:9100": the metrics are not for the public' })
    .refine((v) => v.split(/[.:]/).slice(0, 4).every((o) => Number(o) <= 255) && Number(v.split(":")[1]) >= 1 && Number(v.split(":")[1]) <= 65535, {
      error: 'expected a loopback address and a port from 1 to 65535, like "127.0.0.1:9100"',
    })
    .default("127.0.0.1:9100"),
});
export type BackupConfig = z.infer<typeof backupSchema>;

/** Where `provider: local` hosts live: a bridge on this machine and the addresses on it. */
export const localCloudSchema = z.strictObject({
  network: z.string().regex(/^[a-z][a-z0-9-]{1,10}$/, { error: "expected a short name (2-11 of a-z 0-9 -), used for the bridge" }).default("coop-local"),
  subnet4: z.string().regex(/^10\.\d{1,3}\.\d{1,3}\.0\/24$/, { error: 'expected a private IPv4 /24 like "10.231.7.0/24"' }).default("10.231.7.0/24"),
  subnet6: z.string().regex(/^fd[0-9a-f]{2}(:[0-9a-f]{1,4}){2}::\/64$/, { error: 'expected a ULA /64 like "fd42:231:7::/64"' }).default("fd42:231:7::/64"),
  /**
   * The network belongs to another local stack (alpha joins prod's, as on the clouds both reach each
   * other's public addresses): this stack attaches to it and never creates or deletes it.
   */
  joinNetwork: z.boolean().default(false),
  /** The primary's last address byte (the secondary's is the next): stacks sharing a network differ here. */
  firstHost: z.number().int().min(2).max(250).default(11),
});
export type LocalCloudConfig = z.infer<typeof localCloudSchema>;

/** Let's Encrypt's production directory: every real stack's certificates come from there. */
export const LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory";

/**
 * The instance's certificate (scripts/lib/tls.sh): DNS-01 through Cloudflare on real stacks. The last three
 * keys point a local stack at the test ACME server the runner starts (tools/acme-server.ts).
 */
export const tlsSchema = z.strictObject({
  acmeServer: z.url({ protocol: /^https$/, error: "expected the https:// URL of an ACME directory" }).default(LETS_ENCRYPT),
  acmeCa: z
    .string()
    .regex(/^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?$/, { error: "expected one PEM certificate" })
    .optional(),
  acmeRootsUrl: z.url({ protocol: /^https$/, error: "expected the https:// URL where the ACME server publishes its root" }).optional(),
  dnsApi: z.url({ protocol: /^http$/, error: "expected the http:// URL of pebble-challtestsrv's management API" }).optional(),
});
export type TlsConfig = z.infer<typeof tlsSchema>;

/**
 * Bring the instance back from its backups onto a new primary (docs/runbooks/restore.md): set while the
 * primary is replaced, removed once it serves. `from` is the repository to read, `target` how far to replay.
 */
export const restoreSchema = z.strictObject({
  /**
   * "secondary": the repository host; "s3": when the secondary is gone too; "prod": prod's backups, read
   * through the read-only grant prod's stack output `backupReaders` holds for this stack (alpha).
   */
  from: z.enum(["secondary", "s3", "prod"]),
  /** With from "prod": the stack to reference, as `pulumi stack ls` names it (default "prod"). */
  stack: z
    .string()
    .regex(/^([A-Za-z0-9_.-]+\/){0,2}[A-Za-z0-9_.-]+$/, { error: 'expected a stack name like "prod" or "my-org/socialcoop/prod"' })
    .optional(),
  target: z
    .string()
    .regex(/^(latest|time:\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\+00|name:[A-Za-z0-9_.:-]+)$/, {
      error: 'expected "latest", "time:YYYY-MM-DD HH:MM:SS+00" or "name:<restore point>"',
    })
    .default("latest"),
});
export type RestoreConfig = z.infer<typeof restoreSchema>;

/** The SMTP URL form alerts and the instance's own mail share: smtps:// (TLS at once) or smtp:// (STARTTLS). */
const SMTP_URL = z
  .string()
  .regex(/^smtps?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/, { error: 'expected "smtps://host:465" or "smtp://host:587" (STARTTLS)' });

/**
 * Where the hosts send their alerts (scripts/alert.sh, installed by components/alerts.ts): e-mail through
 * an SMTP server and/or a webhook (the secret alertWebhookUrl). The SMTP password is the secret
 * alertSmtpPassword, needed with smtpLogin.
 */
export const alertsSchema = z.strictObject({
  email: z.array(z.email({ error: "expected an e-mail address" })).default([]),
  from: z.email({ error: "expected the sender's e-mail address" }).optional(),
  smtpUrl: SMTP_URL.optional(),
  smtpLogin: z.string().min(1).optional(),
  /** false only for a relay without TLS that takes no login (a local stack's test listener). */
  smtpStartTls: z.boolean().default(true),
  /** The hosts' daily check (scripts/check.sh), UTC, after the drill; its thresholds are coopctl status's. */
  checkAt: z.string().regex(TIME_OF_DAY, { error: 'expected a UTC time of day as "HH:MM", like "07:00"' }).default("07:00"),
  backupMaxAgeHours: z.number().int().min(1).max(24 * 14).default(26),
  walMaxLagSeconds: z.number().int().min(10).max(86_400).default(300),
  diskMaxPercent: z.number().int().min(1).max(99).default(85),
  certMinDays: z.number().int().min(1).max(60).default(14),
  /** A security release of the app's upstream still missed this long after it was published is told (coopctl behind's 72 hours). */
  securityGraceHours: z.number().int().min(0).max(24 * 30).default(72),
});
export type AlertsConfig = z.infer<typeof alertsSchema>;

/**
 * The instance's own mail (sign-ups, password resets, notifications): SMTP_* in .env.production's managed
 * block (scripts/lib/app-site.sh). The password is the secret mailSmtpPassword, needed with smtpLogin.
 * Not on alpha, which never mails (sanitize-alpha.sh).
 */
export const mailSchema = z.strictObject({
  smtpUrl: SMTP_URL,
  from: z.email({ error: "expected the sender's e-mail address, like notifications@social.coop" }).regex(/^[^'"]+$/, { error: "expected an address without quotes (.env.production holds it in single quotes)" }),
  smtpLogin: z.string().regex(/^[^\s'"\\]+$/, { error: "expected the SMTP user name, without spaces or quotes" }).optional(),
  /** false only for a relay without TLS that takes no login (a local stack's test listener). */
  smtpStartTls: z.boolean().default(true),
});
export type MailConfig = z.infer<typeof mailSchema>;

export const plainConfigSchema = z.strictObject({
  stackRole: z.enum(STACK_ROLES),
  domain: z.string().regex(DOMAIN, { error: "expected a lower-case domain name like social.coop (no scheme, no trailing dot)" }),
  cloudflareZoneId: z.string().regex(/^[0-9a-f]{32}$/, { error: "expected the 32 hex digit zone ID from the Cloudflare dashboard (Overview, API)" }),
  adminEmail: z.email({ error: "expected an e-mail address" }),
  adminUser: z
    .string()
    .regex(UNIX_USER, { error: "expected a unix user name (lower case, starts with a letter)" })
    .superRefine(refuse((u) => RESERVED_USERS[u]))
    .default("coop"),
  sshKeys: z.array(z.string().superRefine(refuse(publicKeyProblem))).min(1),
  hosts: z.strictObject({ primary: hostSchema, secondary: hostSchema.optional() }),
  versions: versionsSchema,
  backup: backupSchema.default({ fullEveryDays: 7, retentionFull: 4, drillMaxAgeHours: 26, dailyAt: "03:15", drillAt: "05:30", readers: [], metricsListen: "127.0.0.1:9100" }),
  localCloud: localCloudSchema.default({ network: "coop-local", subnet4: "10.231.7.0/24", subnet6: "fd42:231:7::/64", joinNetwork: false, firstHost: 11 }),
  tls: tlsSchema.default({ acmeServer: LETS_ENCRYPT }),
  restore: restoreSchema.optional(),
  alerts: alertsSchema.optional(),
  mail: mailSchema.optional(),
  /**
   * Who may sign up (Mastodon's registrations_mode; approved: a moderator approves each sign-up), set after the first deploy and again whenever this
   * changes (scripts/set-registrations.sh); unset, the admins decide in the admin settings. Not on alpha.
   */
  registrations: z.enum(["open", "approved", "closed"]).optional(),
});
export type PlainConfig = z.infer<typeof plainConfigSchema>;

/** Keys whose value Pulumi hands over as a JSON document (set with `--path` or as YAML maps). */
export const OBJECT_KEYS: ReadonlySet<string> = new Set(["sshKeys", "hosts", "versions", "backup", "localCloud", "tls", "restore", "alerts", "mail"]);

/**
 * An example value per key path, used to write the fix into every error message.
 * `*` stands for any one path segment.
 */
export const EXAMPLES: Record<string, string> = {
  stackRole: "prod",
  domain: "social.coop",
  cloudflareZoneId: "0123456789abcdef0123456789abcdef",
  adminEmail: "ops@social.coop",
  adminUser: "coop",
  sshKeys: '["ssh-ed25519 AAAAC3Nza... you@laptop"]',
  "sshKeys.*": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA... you@laptop",
  hosts: '{"primary": {...}}',
  "hosts.*": '{"provider": "hcloud", "location": "fsn1", "size": "cpx31", "volumeGb": 100, "roles": ["mastodon"]}',
  "hosts.*.provider": "hcloud",
  "hosts.*.location": "fsn1",
  "hosts.*.size": "cpx31",
  "hosts.*.volumeGb": "100",
  "hosts.*.roles": '["mastodon"]',
  "hosts.*.roles.*": "mastodon",
  versions: '{"mastodon": "v4.3.8", "postgres": 15}',
  "versions.mastodon": "v4.3.8",
  "versions.hometown": "v4.5.11+hometown-1.2.1",
  "versions.synapse": "v1.120.0",
  "versions.fixture": "v2.0.0",
  "versions.postgres": "15",
  "backup.metricsListen": "127.0.0.1:9100",
  "backup.s3.endpoint": "https://s3.eu-central-003.backblazeb2.com",
  "backup.s3.bucket": "socialcoop-backups",
  "backup.s3.region": "eu-central-003",
  "backup.s3.accessKeyId": "003abc...",
  "backup.fullEveryDays": "7",
  "backup.retentionFull": "4",
  "backup.drillMaxAgeHours": "26",
  "backup.dailyAt": "03:15",
  "backup.drillAt": "05:30",
  "backup.readers": '["alpha"]',
  "backup.readers.*": "alpha",
  "localCloud.network": "coop-local",
  "localCloud.subnet4": "10.231.7.0/24",
  "localCloud.subnet6": "fd42:231:7::/64",
  "localCloud.joinNetwork": "true",
  "localCloud.firstHost": "21",
  "tls.acmeServer": LETS_ENCRYPT,
  restore: '{"from": "secondary"}',
  "restore.from": "secondary",
  "restore.target": "latest",
  "restore.stack": "prod",
  alerts: '{"email": ["ops@social.coop"], "from": "alerts@social.coop", "smtpUrl": "smtps://smtp.example.org:465"}',
  "alerts.email": '["ops@social.coop"]',
  "alerts.email.*": "ops@social.coop",
  "alerts.from": "alerts@social.coop",
  "alerts.smtpUrl": "smtps://smtp.example.org:465",
  "alerts.smtpLogin": "alerts@social.coop",
  "alerts.smtpStartTls": "true",
  "alerts.checkAt": "07:00",
  "alerts.backupMaxAgeHours": "26",
  "alerts.walMaxLagSeconds": "300",
  "alerts.diskMaxPercent": "85",
  "alerts.certMinDays": "14",
  registrations: "open",
  mail: '{"smtpUrl": "smtp://smtp.example.org:587", "from": "notifications@social.coop", "smtpLogin": "notifications@social.coop"}',
  "mail.smtpUrl": "smtp://smtp.example.org:587",
  "mail.from": "notifications@social.coop",
  "mail.smtpLogin": "notifications@social.coop",
  "mail.smtpStartTls": "true",
};

/**
 * Values written into a fix as shell words, where a literal example would not help: a public key is
 * copied from its file rather than typed.
 */
export const SHELL_VALUES: Record<string, string> = {
  "sshKeys.*": '"$(cat ~/.ssh/id_ed25519.pub)"',
};

/** True when every host of the stack is a local machine (no cloud account, no Cloudflare). */
export function isLocalStack(cfg: Pick<PlainConfig, "hosts">): boolean {
  return cfg.hosts.primary.provider === "local" && (cfg.hosts.secondary?.provider ?? "local") === "local";
}
