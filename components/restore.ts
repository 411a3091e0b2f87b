// Restore: with `restore.from` set, a new primary is filled from the backups before the app's first
// deploy (scripts/restore-instance.sh), so that `pulumi up --replace` of a lost primary brings the
// instance back instead of a new, empty one. docs/runbooks/restore.md is the procedure around it.
// With `restore.from: prod` (alpha), the backups are prod's, read through the read-only grant in prod's
// stack output (install-reader.sh), and the copy is made safe (sanitize-alpha.sh) before the app deploys:
// docs/runbooks/alpha.md. alpha follows prod: every preview and up reads prod's newest backup set through
// the grant, and a newer one than alpha's copy is a new restore (a refresh) that replaces it.
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

/** Runs on the operator's machine: pgBackRest's JSON info of prod's repository, through the grant. */
const READ_PROD_BACKUPS = path.join(__dirname, "lib", "read-prod-backups.sh");

/** pgBackRest's `--output=json info`, as far as this program reads it. */
interface BackupInfo {
  readonly name?: string;
  readonly backup?: readonly { readonly label?: string; readonly timestamp?: { readonly stop?: number } }[];
}

/** The label of the newest backup set of one stanza in pgBackRest's JSON info (`where` names the source). */
export function newestBackupLabel(info: string, stanza: string, where: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(info);
  } catch {
    throw new Error(`${where}: pgBackRest's info is not JSON: ${info.slice(0, 200)}`);
  }
  const entry = Array.isArray(parsed) ? (parsed as BackupInfo[]).find((s) => s?.name === stanza) : undefined;
  if (!entry) throw new Error(`${where} has no stanza "${stanza}" (pgBackRest info lists none by that name)`);
  const sets = [...(entry.backup ?? [])].filter((b) => typeof b.label === "string");
  if (sets.length === 0) throw new Error(`${where} holds no backup of stanza "${stanza}" yet: run that stack's backup (coop-backup.service) first`);
  sets.sort((a, b) => (a.timestamp?.stop ?? 0) - (b.timestamp?.stop ?? 0));
  return String(sets[sets.length - 1].label);
}

/**
 * prod's newest backup set, read on every preview and up (a function, not a resource) through the grant's
 * forced command, which allows pgBackRest's info. The label names no secret, so it leaves the secret
 * wrapper the key put around the result and shows in the diff that a refresh is coming.
 */
export function prodNewestBackup(grant: pulumi.Output<ReaderGrant>, reference: string): pulumi.Output<string> {
  const info = command.local.runOutput({
    command: `bash ${JSON.stringify(READ_PROD_BACKUPS)}`,
    environment: {
      COOP_READER_HOST: grant.host, COOP_READER_PORT: grant.port.apply(String), COOP_READER_USER: grant.user,
      COOP_READER_KEY: grant.privateKey, COOP_READER_HOST_KEY: grant.hostKey, COOP_STANZA: grant.stanza,
    },
    logging: "none",
  });
  return pulumi.unsecret(
    pulumi.all([info.stdout, grant.stanza]).apply(([out, stanza]) => newestBackupLabel(out, stanza, `stack ${reference}'s repository host`)),
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
    // Following prod's newest backup: a newer set than the one this copy came from is a new restore.
    const generation = grant && args.restore.target === "latest" ? prodNewestBackup(grant, reader.stack) : undefined;
    const restored = run("restore", {
      script: "restore-instance.sh",
      params: {
        restoreFrom: reader ? "reader" : args.restore.from, restoreTarget: args.restore.target, restoreGeneration: generation,
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
