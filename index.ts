// social.coop: stack config → hosts → DNS → backups → upgrades → stack outputs.
import * as pulumi from "@pulumi/pulumi";
import { loadStackConfig } from "./config";
import { Alerts, alertsThroughMail } from "./components/alerts";
import { Backup } from "./components/backup";
import { Database, PG_DATA_LINK } from "./components/database";
import { appUnitNames, FIXTURE_UPGRADE_PARAMS, MastodonApp, tlsArgs } from "./components/mastodon";
import { Providers } from "./components/providers";
import { readerGrantFrom, Restore, restoreKey } from "./components/restore";
import { declareHosts } from "./components/stack-hosts";
import { declareNames } from "./components/stack-names";
import { Upgrade } from "./components/upgrade";
import { alertsSchema, isLocalStack } from "./src/config/schema";

const cfg = loadStackConfig();
// The config parse has already checked the upgrade path, with the rest of the config.
const { flavor, hops } = cfg.upgrade;
const providers = new Providers(cfg);
const stackHosts = declareHosts(cfg, providers);
const { hosts } = stackHosts;
const primary = hosts.get("primary");
const secondary = hosts.get("secondary");
const appHost = hosts.get(cfg.hosts.secondary?.roles.includes(flavor) ? "secondary" : "primary");

const local = isLocalStack(cfg);
const names = declareNames(cfg, stackHosts, providers);
const app = appHost ?? (primary as NonNullable<typeof primary>);
const database = new Database(`${cfg.stackName}-database`, { connection: app.connection, scripts: app.scripts, pgVersion: cfg.versions.postgres });
const tls = tlsArgs(cfg);

// Backups install after the app's first deploy. With `restore` set, the primary is filled from the
// backups before that deploy instead: the backup configs go on first (they reach the repositories), and
// only the first backup waits for the deploy. The deploy is declared after Backup: a promise hands it over.
let deployedForBackup: (deployed: pulumi.Resource) => void = () => undefined;
const deployed = new Promise<pulumi.Resource>((resolve) => (deployedForBackup = resolve));
const restoring = cfg.restore ? { key: restoreKey(cfg.restore), after: [deployed] } : undefined;

// The backup repository lives on the secondary, so only stacks with one back up (and drill) here.
const backup =
  primary && secondary
    ? new Backup(`${cfg.stackName}-backup`, {
        db: { connection: primary.connection, address: primary.ipv4, scripts: primary.scripts },
        repo: { connection: secondary.connection, address: secondary.ipv4, scripts: secondary.scripts },
        pgVersion: cfg.versions.postgres,
        backup: cfg.backup,
        resticPassword: cfg.secrets.resticPassword,
        pgbackrestCipherPass: cfg.secrets.pgbackrestCipherPass,
        s3SecretAccessKey: cfg.secrets.s3SecretAccessKey,
        pgData: PG_DATA_LINK,
        after: restoring ? [database.installed] : [database.installed, deployed],
        restoring,
      })
    : undefined;

// alpha restores prod's backups through the read-only grant in prod's stack output.
const reader =
  cfg.restore?.from === "prod"
    ? { grant: readerGrantFrom(cfg.stackName, cfg.restore.stack ?? "prod", cfg.stackRole), domain: names[0], appUnits: appUnitNames(local), stack: cfg.restore.stack ?? "prod" }
    : undefined;
const restore =
  cfg.restore && primary
    ? new Restore(`${cfg.stackName}-restore`, {
        connection: primary.connection, scripts: primary.scripts, restore: cfg.restore, pgVersion: cfg.versions.postgres,
        pgDataLink: PG_DATA_LINK, after: [database.installed, ...(backup?.installs ?? [])], reader,
      })
    : undefined;

const instance = new MastodonApp(`${cfg.stackName}-app`, {
  flavor, tag: hops[hops.length - 1].tag, domain: names[0], connection: app.connection, scripts: app.scripts,
  adminEmail: cfg.adminEmail, fixture: local, tls, after: [database.installed, ...(restore ? [restore.done] : [])], registrations: cfg.registrations,
  mail: cfg.mail, mailPassword: cfg.secrets.mailSmtpPassword, redeployOn: restore?.done.id,
});
deployedForBackup(instance.deployed);

// Local stacks run the fixture app: one hop to versions.fixture (its releases are not Mastodon's series).
const upgrade = new Upgrade(`${cfg.stackName}-upgrade`, {
  app: app.connection,
  appScripts: app.scripts,
  repo: secondary?.connection,
  flavor,
  hops: local ? [{ series: "fixture", tag: cfg.versions.fixture ?? instance.firstRelease }] : hops,
  appParams: local ? FIXTURE_UPGRADE_PARAMS : undefined,
  drillMaxAgeHours: cfg.backup.drillMaxAgeHours,
  pgMajor: cfg.versions.postgres,
  domain: names[0],
  https: tls !== undefined,
  after: [instance.deployed, ...(backup ? [...backup.installs, backup.drill] : [])],
});

// Where the hosts send what needs a person; the backup and drill units name the alert unit. A webhook
// alone (the secret, no alerts section) needs no section: its defaults apply.
const alertsConfig = cfg.alerts ?? (cfg.secrets.alertWebhookUrl ? alertsSchema.parse({}) : undefined);
if (alertsConfig) {
  const { alerts, smtpPassword } = alertsThroughMail(alertsConfig, cfg.mail, { alerts: cfg.secrets.alertSmtpPassword, mail: cfg.secrets.mailSmtpPassword });
  new Alerts(`${cfg.stackName}-alerts`, {
    stack: cfg.stackName,
    alerts,
    drillMaxAgeHours: cfg.backup.drillMaxAgeHours,
    hosts: [...hosts].map(([name, h]) => ({ name, connection: h.connection, scripts: h.scripts, after: backup?.installs })),
    smtpPassword,
    webhookUrl: cfg.secrets.alertWebhookUrl,
    // Local stacks run the fixture app, which has no upstream to fall behind.
    appFlavor: local ? undefined : flavor,
  });
}

export const primaryIpv4 = primary?.ipv4;
export const primaryIpv6 = primary?.ipv6;
export const secondaryIpv4 = secondary?.ipv4;
export const secondaryIpv6 = secondary?.ipv6;
export const primaryHostKey = primary?.hostKey;
export const secondaryHostKey = secondary?.hostKey;
export { names };
export const backupRepositories = backup?.repositories;
// Read-only ways into this stack's backups for the stacks of `backup.readers` (alpha reads prod's).
export const backupReaders = backup?.readerGrants;
// The chain's drill runs after the backup's own, so it is the newest.
export const lastDrill = upgrade.lastDrill ?? backup?.lastDrill;
export const upgradePath = upgrade.path;
export const appRelease = instance.firstRelease;
