// Upgrade: the monthly loop as a chain of commands, each waiting for the one before:
// restore drill → PostgreSQL major upgrade (when the configured major changes) → one app upgrade per
// minor series up to the target (each with its own restore point, rolled back by the script itself
// on failure) → a final health check. Triggers are the targets and the scripts' hashes, so an
// unchanged stack runs nothing and `pulumi preview` lists the hops an update would run.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { Flavor, Hop } from "../src/upgrade/path";
import { DRILL_COMMAND, DRILL_RESULT_COMMAND } from "./backup";
import type { HostConnection } from "./host";
import { HostScripts, scriptEnvironment, scriptsHash, sudoScript } from "./lib/script";

export interface UpgradeArgs {
  /** The host running the app and PostgreSQL (secret connection). */
  readonly app: pulumi.Input<HostConnection>;
  /** The backup repository host, where the drill runs; none on stacks without a secondary. */
  readonly repo?: pulumi.Input<HostConnection>;
  /** The scripts as the app Host uploaded them. */
  readonly appScripts: HostScripts;
  /** Mastodon or Hometown. */
  readonly flavor: Flavor;
  /** One upgrade per minor series up to the configured target (src/upgrade/path.ts `upgradeHops`). */
  readonly hops: readonly Hop[];
  /** The configured PostgreSQL major. */
  readonly pgMajor: number;
  /** The name the instance serves, for the final health check. */
  readonly domain: string;
  /** The instance has a certificate (false only on a local stack without the test ACME server). */
  readonly https: boolean;
  /** The handed-over drill must be at most this old (backup.drillMaxAgeHours). */
  readonly drillMaxAgeHours: number;
  /** Extra parameters of upgrade-app.sh: on local stacks, where the fixture app's adapter and repository are. */
  readonly appParams?: Readonly<Record<string, string>>;
  /** Resources that must finish first (the Backup component's install and drill). */
  readonly after?: pulumi.Input<pulumi.Resource>[];
}


/**
 * The final check: the instance answers /health through nginx on the host itself, with its TLS name
 * (verified against the host's trust store); plain HTTP only on a stack without a certificate.
 */
export function healthCommand(domain: string, https = true): string {
  if (!/^[a-z0-9.-]+$/.test(domain)) throw new Error(`upgrade: domain "${domain}" is not a host name`);
  const retry = "curl -fsS --max-time 10 --retry 12 --retry-delay 5 --retry-all-errors";
  return https ? `${retry} --resolve ${domain}:443:127.0.0.1 https://${domain}/health` : `${retry} -H 'Host: ${domain}' http://127.0.0.1/health`;
}

export class Upgrade extends pulumi.ComponentResource {
  /** The hops this stack's target implies, in order, e.g. `v4.3.9 → v4.4.5 → v4.5.2`. */
  public readonly path: string;
  /** The last command of the chain; later changes on the app host depend on it. */
  public readonly done: command.remote.Command;
  /** The result of the chain's drill (the newest one on the repository host), when there is a repository. */
  public readonly lastDrill?: pulumi.Output<string>;

  constructor(name: string, args: UpgradeArgs, opts?: pulumi.ComponentResourceOptions) {
    super("socialcoop:upgrade:Upgrade", name, {}, opts);
    const hops = args.hops;
    if (hops.length === 0) throw new Error("upgrade: no release to deploy (hops is empty)");
    const remotePath = args.appScripts.path;
    const scripts = args.appScripts.upload;
    const targets = [String(args.pgMajor), ...hops.map((h) => h.tag)];
    const step = (role: string, create: string, triggers: unknown[], dependsOn: pulumi.Input<pulumi.Resource>[], environment?: Record<string, pulumi.Input<string>>, connection = args.app) =>
      new command.remote.Command(
        `${name}-${role}`,
        // The scripts log step names and timings only; parameters are versions and paths, never secrets.
        { connection, create, environment, triggers, logging: "stdoutAndStderr", addPreviousOutputInEnv: false },
        { parent: this, dependsOn },
      );

    // The drill again whenever a target changes: an upgrade starts only from a freshly proven backup.
    // Its result lives on the repository host; the app host's preflight gets it handed over.
    let previous: pulumi.Resource = scripts;
    let drillResult: pulumi.Input<string> | undefined;
    if (args.repo) {
      const drill = step("drill", DRILL_COMMAND, targets, [scripts, ...(args.after ?? [])], undefined, args.repo);
      const result = step("drill-result", DRILL_RESULT_COMMAND, targets, [drill], undefined, args.repo);
      drillResult = result.stdout;
      // The drill's JSON holds sizes, timings and table counts: nothing secret, so shown as it is.
      this.lastDrill = pulumi.unsecret(result.stdout);
      previous = result;
    }

    const pgEnv = scriptEnvironment({ scriptsFrom: remotePath, pgTargetMajor: String(args.pgMajor) });
    const pgHash = scriptsHash(["upgrade-postgres-chain.sh", "upgrade-postgres.sh", "maintenance.sh"]);
    // Without a repository host there is no drill to carry `after`: the first step waits for it itself
    // (alpha's and town's chain must not run before their database and app exist).
    const first = args.repo ? [previous] : [previous, ...(args.after ?? [])];
    previous = step("postgres", sudoScript("upgrade-postgres-chain.sh", pgEnv), [String(args.pgMajor), pgHash], first, pgEnv);

    const appHash = scriptsHash(["upgrade-app.sh"]);
    for (const hop of hops) {
      // skipOlder: a hop for a series the host has already left is done, not a refused downgrade.
      // Without a repository host (alpha, a restore of prod) there is no drill of this stack's own.
      const env = scriptEnvironment({
        scriptsFrom: remotePath,
        appFlavor: args.flavor,
        targetTag: hop.tag,
        skipOlder: "1",
        drillResultJson: drillResult,
        drillMaxAgeHours: String(args.drillMaxAgeHours),
        requireDrill: args.repo ? undefined : "0",
        ...args.appParams,
      });
      previous = step(`app-${hop.series}`, sudoScript("upgrade-app.sh", env), [hop.tag, appHash], [previous], env);
    }
    this.done = step("health", healthCommand(args.domain, args.https), targets, [previous]);
    this.path = hops.map((h) => h.tag).join(" → ");
    this.registerOutputs({ path: this.path, done: this.done });
  }
}
