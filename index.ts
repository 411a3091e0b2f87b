// social.coop: stack config → hosts → DNS → backups → stack outputs.
import { loadStackConfig } from "./config";
import { Backup } from "./components/backup";
import { Dns } from "./components/dns";
import { Providers } from "./components/providers";
import { declareHosts } from "./components/stack-hosts";

const cfg = loadStackConfig();
const providers = new Providers(cfg);
const { hosts, roleHosts } = declareHosts(cfg, providers);
const primary = hosts.get("primary");
const secondary = hosts.get("secondary");

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

export const primaryIpv4 = primary?.ipv4;
export const primaryIpv6 = primary?.ipv6;
export const secondaryIpv4 = secondary?.ipv4;
export const secondaryIpv6 = secondary?.ipv6;
export const names = dns.names;
export const backupRepositories = backup?.repositories;
