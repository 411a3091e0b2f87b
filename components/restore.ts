// Restore: with `restore.from` set, a new primary is filled from the backups before the app's first
// deploy (scripts/restore-instance.sh), so that `pulumi up --replace` of a lost primary brings the
// instance back instead of a new, empty one. docs/runbooks/restore.md is the procedure around it.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { RestoreConfig } from "../src/config/schema";
import type { HostConnection } from "./host";
import { HostScripts, scriptEnvironment, scriptsHash, sudoScript } from "./lib/script";

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
}

/** What names one restore: a different source or target is a different restore. */
export function restoreKey(r: RestoreConfig): string {
  return `${r.from}:${r.target}`;
}

export class Restore extends pulumi.ComponentResource {
  /** The instance's data is back on this host and PostgreSQL archives again; the app deploys after it. */
  public readonly done: command.remote.Command;

  constructor(name: string, args: RestoreArgs, opts?: pulumi.ComponentResourceOptions) {
    super("socialcoop:backup:Restore", name, {}, opts);
    const environment = scriptEnvironment({
      scriptsFrom: args.scripts.path,
      restoreFrom: args.restore.from,
      restoreTarget: args.restore.target,
      pgVersion: String(args.pgVersion),
      pgDataLink: args.pgDataLink,
    });
    this.done = new command.remote.Command(
      `${name}-restore`,
      {
        connection: args.connection,
        create: sudoScript("restore-instance.sh", environment),
        environment,
        // restore-instance.sh and restore.sh log steps, labels and counts; the passphrases stay in the
        // host's 0600 files.
        logging: "stdoutAndStderr",
        addPreviousOutputInEnv: false,
        // A host already restored with this key, or holding an instance, changes nothing (the script
        // records its key, and refuses a database with tables).
        triggers: [scriptsHash(["restore-instance.sh", "restore.sh"]), restoreKey(args.restore)],
      },
      { parent: this, dependsOn: [...args.after, args.scripts.upload] },
    );
    this.registerOutputs({ done: this.done });
  }
}
