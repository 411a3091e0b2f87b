// Backup: pgBackRest (WAL archiving, full + differential backups) and restic on the database host, the
// repositories on the repository host, the timers, and the restore drill as the hook of `pulumi up`.
import { createHash } from "node:crypto";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { BackupConfig } from "../src/config/schema";
import type { HostConnection } from "./host";
import { HostScripts, REMOTE_SCRIPTS_DIR, ScriptParams, scriptEnvironment, scriptsHash, sudoScript, uploadedOrInstalled } from "./lib/script";

export interface BackupHost {
  /** How commands reach the host (secret: holds the deploy key). */
  readonly connection: pulumi.Input<HostConnection>;
  /** The address the other host reaches it at for backup traffic (SSH). */
  readonly address: pulumi.Input<string>;
  /** The scripts as the Host uploaded them. */
  readonly scripts: HostScripts;
}

export interface BackupArgs {
  /** The host running PostgreSQL, Redis and the media: it archives WAL and runs backup.sh. */
  readonly db: BackupHost;
  /** The host holding the pgBackRest and restic repositories: it runs drill.sh. */
  readonly repo: BackupHost;
  /** PostgreSQL major version on the database host. */
  readonly pgVersion: number;
  /** The stack's `backup` config. */
  readonly backup: BackupConfig;
  /** restic repository passphrase (secret). */
  readonly resticPassword?: pulumi.Input<string>;
  /** pgBackRest repository passphrase (secret). */
  readonly pgbackrestCipherPass?: pulumi.Input<string>;
  /** Secret key of the S3 repository (secret); required with `backup.s3`. */
  readonly s3SecretAccessKey?: pulumi.Input<string>;
  /** The database host's data directory (pgBackRest's pg1-path). */
  readonly pgData: string;
  /** What must be installed first on the database host (the Database component). */
  readonly after?: pulumi.Input<pulumi.Resource>[];
  /**
   * A restore onto a new primary (components/restore.ts): the first backup waits for the restored
   * instance's deploy and is a full one (a new timeline starts a new chain), and the drill runs again.
   */
  readonly restoring?: { readonly key: string; readonly after: pulumi.Input<pulumi.Resource>[] };
}

/** The problems of a BackupArgs, each naming the fields involved; empty when it is usable. */
export function backupArgsProblems(args: BackupArgs): string[] {
  const out: string[] = [];
  if (args.resticPassword === undefined) out.push("resticPassword: missing; the restic repositories cannot be opened without it");
  if (args.pgbackrestCipherPass === undefined) out.push("pgbackrestCipherPass: missing; the pgBackRest repositories are encrypted with it");
  if (args.backup.s3 && args.s3SecretAccessKey === undefined) out.push("s3SecretAccessKey: missing while backup.s3 is set");
  return out;
}

/** The two lines install-backup.sh prints on stdout: this host's backup user key and SSH host key. */
export interface PeerKeys {
  readonly publicKey: string;
  readonly hostKey: string;
}

/**
 * Reads install-backup.sh's stdout. Undefined stdout (an offline run under mocks, which has no command
 * output) yields empty keys, which the script treats as "not known yet"; real output without the keys
 * is an error, since going on would leave backups unable to connect.
 */
export function parsePeerKeys(stdout: string | undefined): PeerKeys {
  if (stdout === undefined) return { publicKey: "", hostKey: "" };
  const publicKey = /^backup-user-key (ssh-ed25519 [A-Za-z0-9+/=]+)$/m.exec(stdout)?.[1];
  const hostKey = /^host-key (\S+ [A-Za-z0-9+/=]+)$/m.exec(stdout)?.[1];
  if (!publicKey || !hostKey) throw new Error("install-backup.sh printed no backup-user-key/host-key lines; see its output");
  return { publicKey, hostKey };
}

/** Where install-backup.sh (repository side) keeps the two repositories on the secondary. */
const PGBACKREST_REPO_PATH = "/srv/backup/pgbackrest";
const RESTIC_REPO_PATH = "/srv/backup/restic";

/** What a reading stack needs to reach this stack's repositories read-only (grant-repo-reader.sh's stdout). */
export interface ReaderGrant {
  /** The repository host's address and SSH port. */
  readonly host: string;
  readonly port: number;
  /** The reader's user there (coop-read-<stack>). */
  readonly user: string;
  /** The reader's private key, base64 of its OpenSSH file. */
  readonly privateKey: string;
  /** The repository host's SSH host key (`type base64`), for the reader's known_hosts. */
  readonly hostKey: string;
  readonly pgbackrestPath: string;
  readonly resticPath: string;
  readonly stanza: string;
  /** restic decrypts on the reading side, so the reader holds the restic passphrase. */
  readonly resticPassword: string;
}

/** Reads grant-repo-reader.sh's stdout; undefined (offline, under mocks) yields empty fields. */
export function parseReaderGrant(stdout: string | undefined): Pick<ReaderGrant, "user" | "privateKey" | "hostKey"> {
  if (stdout === undefined) return { user: "", privateKey: "", hostKey: "" };
  const user = /^reader-user (coop-read-[a-z0-9-]+)$/m.exec(stdout)?.[1];
  const privateKey = /^reader-key ([A-Za-z0-9+/=]+)$/m.exec(stdout)?.[1];
  const hostKey = /^host-key (\S+ [A-Za-z0-9+/=]+)$/m.exec(stdout)?.[1];
  if (!user || !privateKey || !hostKey) throw new Error("grant-repo-reader.sh printed no reader-user/reader-key/host-key lines; see its log");
  return { user, privateKey, hostKey };
}

/** The drill runs through its systemd unit (same environment as the daily timer) and shows that run's log. */
export const DRILL_COMMAND = [
  "rc=0",
  "sudo systemctl start coop-drill.service || rc=$?",
  'sudo journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID="$(systemctl show -p InvocationID --value coop-drill.service)"',
  'exit "$rc"',
].join("; ");

/** Prints the repository host's last drill result (counts, timings, labels: nothing secret). */
export const DRILL_RESULT_COMMAND = "sudo cat /var/lib/coop/drills/last.json";

/** A first backup, so that the first drill has something to restore; later ones come from the timers. */
export const INITIAL_BACKUP_COMMAND = DRILL_COMMAND.replace(/coop-drill/g, "coop-backup");

/** After a restore: a full backup through the weekly full backup's unit. */
export const FULL_BACKUP_COMMAND = DRILL_COMMAND.replace(/coop-drill/g, "coop-backup-full");

/**
 * The delete command of an install: `install-backup.sh --uninstall` from the installed scripts (the
 * uploaded folder of an old content hash may be gone). It stops, disables and removes the timers and
 * units, keeps repositories and configs; a host with no install left has nothing to remove.
 */
export function uninstallCommand(environment: Readonly<Record<string, unknown>>): string {
  const run = `${sudoScript("install-backup.sh", environment, '"$COOP_SCRIPTS_DIR"')} --uninstall`;
  return `if [ -f "$COOP_SCRIPTS_DIR/install-backup.sh" ]; then ${run}; else echo "no backup install on this host: nothing to remove"; fi`;
}

/**
 * The delete of a reader's grant: `grant-repo-reader.sh --revoke` from the uploaded scripts, or from the
 * installed ones when that upload's folder is gone (a later content hash replaced it).
 */
export function revokeCommand(): string {
  return uploadedOrInstalled("grant-repo-reader.sh", "--revoke", "no grant-repo-reader.sh on this host: nothing to revoke", { COOP_READER_NAME: "" });
}

/**
 * Names one install by its triggers: a replacement (new triggers) creates the new install before it
 * deletes the old, and the old one's uninstall sees a newer ID recorded on the host and leaves it alone.
 */
export function installId(triggers: readonly string[]): string {
  return createHash("sha256").update(JSON.stringify(triggers)).digest("hex").slice(0, 16);
}

/** Sorted-key JSON, so a trigger never churns on key order. */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

export class Backup extends pulumi.ComponentResource {
  /** The restore drill on the repository host. Every later change on that host must `dependsOn` it. */
  public readonly drill: command.remote.Command;
  /** install-backup.sh on each host (the repository host runs it twice: the second pass trusts the db host's key). */
  public readonly installs: readonly command.remote.Command[];
  /** Where backups go (no credentials): the repository host's folders and the S3 bucket. */
  public readonly repositories: pulumi.Output<string[]>;
  /** The result drill.sh wrote for the drill of this `up` (JSON: ok, reason, ttrSeconds, verified). */
  public readonly lastDrill: pulumi.Output<string>;
  /** Per stack of `backup.readers`, its read-only way in (secret: it holds a key and the restic passphrase). */
  public readonly readerGrants: pulumi.Output<Record<string, ReaderGrant>>;

  constructor(name: string, args: BackupArgs, opts?: pulumi.ComponentResourceOptions) {
    super("socialcoop:backup:Backup", name, {}, opts);
    const problems = backupArgsProblems(args);
    if (problems.length > 0) throw new Error(`backup: ${problems.join("; ")}`);

    const b = args.backup;
    const common: ScriptParams = {
      // The same content hash, so the same folder on both hosts.
      scriptsFrom: args.db.scripts.path,
      scriptsDir: REMOTE_SCRIPTS_DIR,
      pgVersion: String(args.pgVersion),
      pgData: args.pgData,
      retentionFull: String(b.retentionFull),
      fullEveryDays: String(b.fullEveryDays),
      backupAt: b.dailyAt,
      drillAt: b.drillAt,
      metricsListen: b.metricsListen,
      s3Endpoint: b.s3?.endpoint,
      s3Bucket: b.s3?.bucket,
      s3Region: b.s3?.region,
      s3AccessKeyId: b.s3?.accessKeyId,
      // A PEM has newlines, which an environment value carried over SSH must not.
      s3CaCertB64: b.s3?.caCert === undefined ? undefined : Buffer.from(b.s3.caCert).toString("base64"),
      // Secrets: passed as the secret Outputs they are; they reach the host only in the environment.
      resticPassword: args.resticPassword,
      pgbackrestCipherPass: args.pgbackrestCipherPass,
      s3SecretAccessKey: b.s3 ? args.s3SecretAccessKey : undefined,
    };
    const installHash = scriptsHash(["install-backup.sh"]);
    // Readers are granted on their own (below): adding one must not re-install the backups.
    const { readers, ...installed } = b;
    const settings = stableJson({ pgVersion: args.pgVersion, backup: installed });
    const installTriggers = [installHash, settings];
    const install = (
      role: string,
      host: BackupHost,
      params: ScriptParams,
      dependsOn: pulumi.Input<pulumi.Resource>[],
    ): command.remote.Command => {
      const environment = scriptEnvironment({ ...common, ...params, installId: installId(installTriggers) });
      return new command.remote.Command(
        `${name}-${role}`,
        {
          connection: host.connection,
          create: sudoScript("install-backup.sh", environment),
          // Removing the component (or the stack) takes its timers and units off the host.
          delete: uninstallCommand(environment),
          environment,
          // install-backup.sh logs paths and steps and prints public keys; it never prints a secret.
          logging: "stdoutAndStderr",
          addPreviousOutputInEnv: false,
          triggers: installTriggers,
        },
        { parent: this, dependsOn },
      );
    };

    // Each side needs the other's public keys, which exist only once its install ran: repo, db, repo again.
    const repoInstall = install("repo-install", args.repo, { backupRole: "repo", peerHost: args.db.address }, [args.repo.scripts.upload]);
    const repoKeys = repoInstall.stdout.apply(parsePeerKeys);
    const dbInstall = install(
      "db-install",
      args.db,
      { backupRole: "db", peerHost: args.repo.address, peerPublicKey: repoKeys.publicKey, peerHostKey: repoKeys.hostKey },
      [args.db.scripts.upload, repoInstall, ...(args.after ?? [])],
    );
    const dbKeys = dbInstall.stdout.apply(parsePeerKeys);
    const repoTrust = install(
      "repo-trust",
      args.repo,
      { backupRole: "repo", peerHost: args.db.address, peerPublicKey: dbKeys.publicKey, peerHostKey: dbKeys.hostKey },
      [repoInstall, dbInstall],
    );

    const restoring = args.restoring;
    const initialBackup = new command.remote.Command(
      `${name}-initial-backup`,
      // No triggers but a restore's: it runs when first created (and on a new host); the timers take over from there.
      {
        connection: args.db.connection,
        create: restoring ? FULL_BACKUP_COMMAND : INITIAL_BACKUP_COMMAND,
        logging: "stdoutAndStderr",
        addPreviousOutputInEnv: false,
        ...(restoring ? { triggers: [restoring.key] } : {}),
      },
      { parent: this, dependsOn: [dbInstall, repoTrust, ...(restoring?.after ?? [])] },
    );

    const drillTriggers = [scriptsHash(["drill.sh", "backup.sh"]), installHash, settings, ...(restoring ? [restoring.key] : [])];
    this.drill = new command.remote.Command(
      `${name}-drill`,
      {
        connection: args.repo.connection,
        create: DRILL_COMMAND,
        // drill.sh writes only its log and result (counts, timings, labels); no secret.
        logging: "stdoutAndStderr",
        addPreviousOutputInEnv: false,
        triggers: drillTriggers,
      },
      { parent: this, dependsOn: [repoInstall, dbInstall, repoTrust, initialBackup] },
    );
    this.installs = [repoInstall, dbInstall, repoTrust];
    const drillResult = new command.remote.Command(
      `${name}-drill-result`,
      { connection: args.repo.connection, create: DRILL_RESULT_COMMAND, logging: "none", addPreviousOutputInEnv: false, triggers: drillTriggers },
      { parent: this, dependsOn: [this.drill] },
    );
    // The connection makes every output secret; the result holds no secret (drill.sh writes counts and timings).
    this.lastDrill = pulumi.unsecret(drillResult.stdout);

    const grants = readers.map((reader) => {
      const environment = scriptEnvironment({ readerName: reader, scriptsFrom: args.repo.scripts.path, pgbackrestCipherPass: args.pgbackrestCipherPass });
      const grant = new command.remote.Command(
        `${name}-reader-${reader}`,
        {
          connection: args.repo.connection,
          create: sudoScript("grant-repo-reader.sh", environment),
          delete: revokeCommand(),
          environment,
          // stdout holds the reader's private key: never logged, and a secret in the state.
          logging: "stderr",
          addPreviousOutputInEnv: false,
          triggers: [scriptsHash(["grant-repo-reader.sh"]), reader],
        },
        // After the first backup: restic makes its files only as readable as the repository's config file,
        // so the grant must find (and open to its group) a repository that exists.
        { parent: this, dependsOn: [repoTrust, initialBackup], additionalSecretOutputs: ["stdout"] },
      );
      return pulumi.all([grant.stdout, args.repo.address, args.resticPassword ?? ""]).apply(([stdout, host, resticPassword]): [string, ReaderGrant] => [
        reader,
        { host, port: 22, ...parseReaderGrant(stdout), pgbackrestPath: PGBACKREST_REPO_PATH, resticPath: RESTIC_REPO_PATH, stanza: "main", resticPassword },
      ]);
    });
    this.readerGrants = pulumi.secret(pulumi.all(grants).apply((entries) => Object.fromEntries(entries)));

    this.repositories = pulumi.all([args.repo.address]).apply(([repoAddress]) => {
      const repos = [`pgbackrest: ${repoAddress}:${PGBACKREST_REPO_PATH}`, `restic: sftp:${repoAddress}:${RESTIC_REPO_PATH}`];
      if (b.s3) repos.push(`pgbackrest: ${b.s3.endpoint}/${b.s3.bucket}/pgbackrest`, `restic: s3:${b.s3.endpoint}/${b.s3.bucket}/restic`);
      return repos;
    });
    this.registerOutputs({ drill: this.drill, installs: this.installs, repositories: this.repositories, lastDrill: this.lastDrill, readerGrants: this.readerGrants });
  }
}
