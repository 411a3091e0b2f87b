// Database: PostgreSQL and Redis on the app host, in the one layout every script uses (DESIGN 16).
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { HostConnection } from "./host";
import { HostScripts, scriptEnvironment, scriptsHash, sudoScript } from "./lib/script";

/** pgBackRest's pg1-path and the upgrade's stable link: a symlink to the live cluster's data directory. */
export const PG_DATA_LINK = "/srv/postgresql/main";

export interface DatabaseArgs {
  /** The app host (secret connection). */
  readonly connection: pulumi.Input<HostConnection>;
  /** The scripts as the Host uploaded them. */
  readonly scripts: HostScripts;
  /** PostgreSQL major version. */
  readonly pgVersion: number;
}

export class Database extends pulumi.ComponentResource {
  /** PostgreSQL and Redis are installed and running; backups and the app depend on it. */
  public readonly installed: command.remote.Command;

  constructor(name: string, args: DatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("socialcoop:app:Database", name, {}, opts);
    const environment = scriptEnvironment({ scriptsFrom: args.scripts.path, pgVersion: String(args.pgVersion) });
    this.installed = new command.remote.Command(
      `${name}-install`,
      {
        connection: args.connection,
        create: sudoScript("install-database.sh", environment),
        environment,
        // The script logs paths, steps and settings; it handles no secret.
        logging: "stdoutAndStderr",
        addPreviousOutputInEnv: false,
        // A new major is the upgrade chain's job (upgrade-postgres.sh), not a re-install: only the script
        // and the settings it renders re-run this.
        triggers: [scriptsHash(["install-database.sh"])],
      },
      { parent: this, dependsOn: [args.scripts.upload], ignoreChanges: ["environment.COOP_PG_VERSION"] },
    );
    this.registerOutputs({ installed: this.installed });
  }
}
