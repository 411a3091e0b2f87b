// social.coop: stack config → hosts → DNS → backups → upgrades → stack outputs.
import { loadStackConfig } from "./config";
import { Backup } from "./components/backup";
import { Dns } from "./components/dns";
import { Providers } from "./components/providers";
import { declareHosts } from "./components/stack-hosts";
import { Upgrade } from "./components/upgrade";
import { readCatalog } from "./src/upgrade/catalog";
import { upgradeHops } from "./src/upgrade/path";

const cfg = loadStackConfig();
// The upgrade path is checked before anything is declared, like the rest of the config.
const flavor = cfg.hosts.primary.roles.includes("hometown") || cfg.hosts.secondary?.roles.includes("hometown") ? "hometown" : "mastodon";
const hops = upgradeHops(flavor, cfg.versions[flavor] as string, readCatalog(flavor));
const providers = new Providers(cfg);
const { hosts, roleHosts } = declareHosts(cfg, providers);
const primary = hosts.get("primary");
const secondary = hosts.get("secondary");
const appHost = hosts.get(cfg.hosts.secondary?.roles.includes(flavor) ? "secondary" : "primary");

const dns = new Dns(
  `${cfg.stackName}-dns`,
  { zoneId: cfg.cloudflareZoneId, domain: cfg.domain, stackRole: cfg.stackRole, roleHosts },
  { providers: [providers.cloudflare] },
);

// The backup repository lives on the secondary, so only stacks with one back up (and drill) here.
const backup =
  primary && secondary
    ? new Backup(`${cfg.stackName}-backup`, {
        db: { connection: primary.connection, address: primary.ipv4 },
        repo: { connection: secondary.connection, address: secondary.ipv4 },
        adminUser: cfg.adminUser,
        pgVersion: cfg.versions.postgres,
        backup: cfg.backup,
        resticPassword: cfg.secrets.resticPassword,
        pgbackrestCipherPass: cfg.secrets.pgbackrestCipherPass,
        s3SecretAccessKey: cfg.secrets.s3SecretAccessKey,
      })
    : undefined;

const upgrade = new Upgrade(`${cfg.stackName}-upgrade`, {
  app: (appHost ?? (primary as NonNullable<typeof primary>)).connection,
  repo: secondary?.connection,
  adminUser: cfg.adminUser,
  flavor,
  hops,
  pgMajor: cfg.versions.postgres,
  domain: dns.names[0],
  after: backup ? [...backup.installs, backup.drill] : [],
});

export const primaryIpv4 = primary?.ipv4;
export const primaryIpv6 = primary?.ipv6;
export const secondaryIpv4 = secondary?.ipv4;
export const secondaryIpv6 = secondary?.ipv6;
export const names = dns.names;
export const backupRepositories = backup?.repositories;
export const upgradePath = upgrade.path;
