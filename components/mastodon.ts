// MastodonApp: the instance on its host (Mastodon or Hometown): the release layout, the instance's own
// secrets, the first release, the nginx site with the maintenance switch, the processes, /health.
// Later releases are the Upgrade chain's. On local stacks the app is the fixture app (DESIGN 9, 15),
// through the same adapter interface, its source handed over on stdin (the machines have no route out).
import * as command from "@pulumi/command";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { Flavor } from "../src/upgrade/path";
import type { HostConnection } from "./host";
import { HostScripts, scriptEnvironment, scriptsHash, sudoScript } from "./lib/script";

/** The fixture release a local stack deploys (tools/fixture-app-source.ts builds the repository). */
export const FIXTURE_FIRST_TAG = "v1.2.0";
const FIXTURE_SOURCE_TOOL = path.join(__dirname, "..", "tools", "fixture-app-source.ts");
const FIXTURE_FILES = [
  FIXTURE_SOURCE_TOOL,
  path.join(__dirname, "..", "test", "fixtures", "app", "make-repo.ts"),
  path.join(__dirname, "..", "test", "fixtures", "app", "adapter.sh"),
  path.join(__dirname, "..", "test", "fixtures", "app", "server.js"),
];

/** sha256 over the fixture's sources, so a change to the fixture app rebuilds what the host gets. */
function fixtureHash(): string {
  const h = createHash("sha256");
  for (const f of FIXTURE_FILES) h.update(`${path.basename(f)}\0`).update(fs.readFileSync(f));
  return h.digest("hex");
}

export interface MastodonAppArgs {
  readonly flavor: Flavor;
  /** The release deployed first: the configured target (a new instance needs no intermediate hops). */
  readonly tag: string;
  /** The name the instance serves. */
  readonly domain: string;
  /** The app host (secret connection) and the scripts it was given. */
  readonly connection: pulumi.Input<HostConnection>;
  readonly scripts: HostScripts;
  /** Deploy the fixture app instead (local stacks). */
  readonly fixture?: boolean;
  /** What must be installed first (the Database). */
  readonly after: pulumi.Resource[];
}

export class MastodonApp extends pulumi.ComponentResource {
  /** The first deploy is done and the instance answers /health; backups and upgrades depend on it. */
  public readonly deployed: command.remote.Command;
  /** The release the first deploy installed. */
  public readonly firstRelease: string;

  constructor(name: string, args: MastodonAppArgs, opts?: pulumi.ComponentResourceOptions) {
    super("socialcoop:app:MastodonApp", name, {}, opts);
    this.firstRelease = args.fixture ? FIXTURE_FIRST_TAG : args.tag;
    let stdin: pulumi.Output<string> | undefined;
    const after = [...args.after, args.scripts.upload];
    if (args.fixture) {
      const source = new command.local.Command(
        `${name}-fixture-source`,
        {
          create: `node --import tsx ${JSON.stringify(FIXTURE_SOURCE_TOOL)}`,
          // tsx resolves from here (the repository's node_modules).
          dir: path.dirname(FIXTURE_SOURCE_TOOL),
          triggers: [fixtureHash()],
          logging: "stderr",
        },
        { parent: this },
      );
      stdin = source.stdout;
      after.push(source);
    }
    const environment = scriptEnvironment({
      scriptsFrom: args.scripts.path,
      appFlavor: args.flavor,
      targetTag: this.firstRelease,
      domain: args.domain,
      appSourceStdin: args.fixture ? "1" : undefined,
      appDbUser: args.fixture ? "mastodon" : undefined,
      appPort: args.fixture ? "3000" : undefined,
      appStreamingPort: args.fixture ? "4000" : undefined,
    });
    this.deployed = new command.remote.Command(
      `${name}-deploy`,
      {
        connection: args.connection,
        create: sudoScript("deploy-app.sh", environment),
        environment,
        stdin,
        // deploy-app.sh logs steps, paths and the release; the instance's secrets stay in a 0600 file.
        logging: "stdoutAndStderr",
        addPreviousOutputInEnv: false,
        triggers: [scriptsHash(["deploy-app.sh"])],
      },
      // A new target is the upgrade chain's: the first release stays what it was.
      { parent: this, dependsOn: after, ignoreChanges: ["environment.COOP_TARGET_TAG"] },
    );
    this.registerOutputs({ deployed: this.deployed, firstRelease: this.firstRelease });
  }
}
