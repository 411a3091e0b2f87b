// Restore: with `restore.from` set, a new primary is filled from the backups before the app's first
// deploy (scripts/restore-instance.sh), so that `pulumi up --replace` of a lost primary brings the
// instance back instead of a new, empty one. docs/runbooks/restore.md is the procedure around it.
// With `restore.from: prod` (alpha), the backups are prod's, read through the read-only grant in prod's
// stack output (install-reader.sh), and the copy is made safe (sanitize-alpha.sh) before the app deploys:
// docs/runbooks/alpha.md. alpha follows prod: every preview and up reads, through the grant, which backup
// prod's last passing drill verified, and a newer one than alpha's copy is a new restore (a refresh).
import * as path from "path";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { RestoreConfig, StackRole } from "../src/config/schema";
import type { ReaderGrant } from "./backup";
import type { HostConnection } from "./host";
import { HostScripts, ScriptParams, scriptEnvironment, scriptsHash, sudoScript } from "./lib/script";

export interface RestoreArgs {
  /** The new primary (secret connection) and the scripts it was given. */
  readonly connection: pulumi.Input<HostConnection>;
  readonly scripts: HostScripts;
  readonly restore: RestoreConfig;
  readonly pgVersion: number;
  /** The layout's stable link to the cluster (components/database.ts). */
  readonly pgDataLink: string;
  /** The database installed and the host's backup configs written (it reads the repositories). */
  readonly after: pulumi.Resource[];
  /**
   * With from "prod": prod's grant to this stack (secret), the domain the copy is made to serve, the app's
   * units the copy's guard holds back until it is safe, and the stack referenced (for messages).
   */
  readonly reader?: { readonly grant: pulumi.Output<ReaderGrant>; readonly domain: string; readonly appUnits: string; readonly stack: string };
}

/** Runs on the operator's machine: prod's backup sets and its last verified one, through the grant. */
const READ_PROD_BACKUPS = path.join(__dirname, "lib", "read-prod-backups.sh");

/** What read-prod-backups.sh prints: pgBackRest's `--output=json info` and drill.sh's last-verified.json. */
interface ProdBackups {
  readonly info?: { readonly name?: string; readonly backup?: { readonly label?: string }[] }[];
  readonly verified?: { readonly stanza?: string; readonly backupLabel?: string; readonly restorePoint?: string } | null;
}

/** The backup prod's last passing drill verified: its pgBackRest set and the restore point it reached. */
export interface VerifiedBackup {
  readonly label: string;
  readonly restorePoint: string;
}

/**
 * The backup alpha follows: the one prod's last passing drill verified, as long as prod's repository
 * still holds its set (`where` names the source in messages). A backup made since, not yet drilled, waits.
 */
export function verifiedBackup(report: string, stanza: string, where: string): VerifiedBackup {
  let parsed: ProdBackups;
  try {
    parsed = JSON.parse(report) as ProdBackups;
  } catch {
    throw new Error(`${where}: what its backups report is not JSON: ${report.slice(0, 200)}`);
  }
  const entry = Array.isArray(parsed.info) ? parsed.info.find((s) => s?.name === stanza) : undefined;
  if (!entry) throw new Error(`${where} has no stanza "${stanza}" (pgBackRest info lists none by that name)`);
  const labels = (entry.backup ?? []).map((b) => b.label);
  const verified = parsed.verified;
  if (!verified?.backupLabel || !verified.restorePoint) {
    throw new Error(
      `${where}: no backup of stanza "${stanza}" has passed a restore drill yet, and alpha restores only a verified one: ` +
        `run the drill there (sudo systemctl start coop-drill.service on that stack's secondary), then this again`,
    );
  }
  if (verified.stanza !== undefined && verified.stanza !== stanza) throw new Error(`${where}: its last verified backup is of stanza "${verified.stanza}", not "${stanza}"`);
  if (!labels.includes(verified.backupLabel)) {
    throw new Error(
      `${where}: the backup its last passing drill verified (${verified.backupLabel}) is no longer in its repository: ` +
        `every drill since has failed; fix that stack's drill first (docs/runbooks/alerts.md, "A restore drill failed")`,
    );
  }
  if (!/^[A-Za-z0-9_.:-]+$/.test(verified.restorePoint)) throw new Error(`${where}: its last verified restore point "${verified.restorePoint}" is not a restore point name`);
  return { label: verified.backupLabel, restorePoint: verified.restorePoint };
}

/**
 * The backup prod's last passing drill verified, read on every preview and up (a function, not a
 * resource) through the grant's forced command. Labels and names hold no secret, so they leave the
 * secret wrapper the key put around the result, and the diff shows that a refresh is coming and to what.
 */
export function prodVerifiedBackup(grant: pulumi.Output<ReaderGrant>, reference: string): pulumi.Output<VerifiedBackup> {
  const report = command.local.runOutput({
    command: `bash ${JSON.stringify(READ_PROD_BACKUPS)}`,
    environment: {
      COOP_READER_HOST: grant.host, COOP_READER_PORT: grant.port.apply(String), COOP_READER_USER: grant.user,
      COOP_READER_KEY: grant.privateKey, COOP_READER_HOST_KEY: grant.hostKey, COOP_STANZA: grant.stanza,
    },
    logging: "none",
  });
  return pulumi.unsecret(
    pulumi.all([report.stdout, grant.stanza]).apply(([out, stanza]) => verifiedBackup(out, stanza, `stack ${reference}'s repository host`)),
  );
}

/** What names one restore: a different source or target is a different restore. */
export function restoreKey(r: RestoreConfig): string {
  return r.from === "prod" ? `prod(${r.stack ?? "prod"}):${r.target}` : `${r.from}:${r.target}`;
}

/**
 * prod's read-only grant to this stack, from prod's stack output `backupReaders` (secret throughout).
 * A prod stack that grants this stack nothing fails the `up` with the fix, before any host is touched.
 */
export function readerGrantFrom(stackName: string, reference: string, role: StackRole): pulumi.Output<ReaderGrant> {
  const ref = new pulumi.StackReference(`${stackName}-${role}-reads`, { name: reference });
  return pulumi.secret(
    ref.getOutput("backupReaders").apply((readers: Record<string, ReaderGrant> | undefined) => {
      const grant = readers?.[role];
      if (!grant?.privateKey) {
        throw new Error(
          `restore.from is "prod" but stack "${reference}" grants ${role} no read access to its backups: ` +
            `add "${role}" to that stack's backup.readers (with no other reader: pulumi config set --stack ${reference} --path 'backup.readers' '["${role}"]') and run pulumi up there first`,
        );
      }
      return grant;
    }),
  );
}

/** One host script of the restore, run as root on the new primary with its parameters as COOP_*. */
interface HostScriptRun {
  readonly script: string;
  readonly params: ScriptParams;
  readonly logging: "stderr" | "stdoutAndStderr";
  readonly triggers: pulumi.Input<string>[];
  readonly dependsOn: pulumi.Resource[];
}

export class Restore extends pulumi.ComponentResource {
  /** The instance's data is back on this host (and, from prod, made safe); the app deploys after it. */
  public readonly done: command.remote.Command;

  constructor(name: string, args: RestoreArgs, opts?: pulumi.ComponentResourceOptions) {
    super("socialcoop:backup:Restore", name, {}, opts);
    const run = (suffix: string, r: HostScriptRun) => {
      const environment = scriptEnvironment({ scriptsFrom: args.scripts.path, ...r.params });
      return new command.remote.Command(
        `${name}-${suffix}`,
        { connection: args.connection, create: sudoScript(r.script, environment), environment, logging: r.logging, addPreviousOutputInEnv: false, triggers: r.triggers },
        { parent: this, dependsOn: r.dependsOn },
      );
    };
    const reader = args.reader;
    const grant = reader?.grant;
    // The grant's key, pinned host key and read-only configs on this host. install-reader.sh logs paths
    // and the repository host's user, never the key or the passphrase.
    const readerAccess =
      grant &&
      run("reader", {
        script: "install-reader.sh",
        params: {
          readerHost: grant.host, readerPort: grant.port.apply(String), readerUser: grant.user, readerKey: grant.privateKey,
          readerHostKey: grant.hostKey, readerResticPath: grant.resticPath, resticPassword: grant.resticPassword, stanza: grant.stanza,
          pgVersion: String(args.pgVersion), pgData: args.pgDataLink,
        },
        logging: "stderr",
        triggers: [scriptsHash(["install-reader.sh"])],
        dependsOn: [...args.after, args.scripts.upload],
      });
    // "latest" from prod is the backup prod's last passing drill verified, to the very point the drill
    // reached: a newer verified one than this copy's is a new restore.
    const verified = grant && args.restore.target === "latest" ? prodVerifiedBackup(grant, reader.stack) : undefined;
    const generation = verified?.label;
    const restored = run("restore", {
      script: "restore-instance.sh",
      params: {
        restoreFrom: reader ? "reader" : args.restore.from,
        restoreTarget: verified ? pulumi.interpolate`name:${verified.restorePoint}` : args.restore.target,
        restoreGeneration: generation,
        pgVersion: String(args.pgVersion), pgDataLink: args.pgDataLink,
      },
      // restore-instance.sh and restore.sh log steps, labels and counts; the passphrases stay in the
      // host's 0600 files.
      logging: "stdoutAndStderr",
      // A host already restored with this key, or holding an instance, changes nothing (the script
      // records its key, and refuses a database with tables).
      triggers: [scriptsHash(["restore-instance.sh", "restore.sh"]), restoreKey(args.restore), ...(generation ? [generation] : [])],
      dependsOn: [...args.after, args.scripts.upload, ...(readerAccess ? [readerAccess] : [])],
    });
    // Nothing of a copy of prod may act as prod before an app process starts. A new restore is a new
    // copy: it is made safe again (and the app's units refuse a copy that lacks the script's record).
    this.done = reader
      ? run("sanitize", {
          script: "sanitize-alpha.sh",
          params: { alphaDomain: reader.domain, appUnits: reader.appUnits },
          logging: "stdoutAndStderr",
          triggers: [scriptsHash(["sanitize-alpha.sh"]), restored.id],
          dependsOn: [restored],
        })
      : restored;
    this.registerOutputs({ done: this.done });
  }
}
