/**
 * `coopctl behind [--stack prod] [--json] [--now 2026-09-01]`: how far the deployed Mastodon, Hometown,
 * Synapse and PostgreSQL are (or were, on the `--now` date) behind upstream. Exit 0: no missed security
 * release; 1: one is missed; 2: wrong usage, stack file or version; 3: upstream data could not be read,
 * or is missing or malformed (never read as "nothing newer").
 */
import { buildBehindReport, formatBehindReport, VersionError, type DeployedVersions } from "../reports/behind";
import { STACK_REPORT_FLAGS, defaultIo, EXIT_FETCH, EXIT_USAGE, parseFlags, type CliIo } from "../reports/cli-support";
import { FetchError, parseIsoDate } from "../reports/http";
import { ConfigError } from "../config/problems";
import { parseConfigKey } from "../config/parse";
import { readStackFile } from "../plan/stack-file";
import { endpointsFromEnv, fetchUpstream } from "../reports/upstream";

const USAGE = "coopctl behind [--stack prod] [--json] [--now 2026-09-01]";
const FLAGS = { ...STACK_REPORT_FLAGS, now: { type: "string" } } as const;
const HELP = `usage: ${USAGE}
  --stack NAME  read socialcoop:versions from Pulumi.NAME.yaml (default prod)
  --json        print the report as JSON
  --now DATE    the report date instead of the clock: 2026-09-01 (00:00 UTC) or 2026-09-01T12:00:00Z;
                releases published after it are left out ("how far behind were we on that date")
exit 0: no missed security release; 1: a security release is missed; 2: wrong flag, stack file or version;
3: upstream data could not be read, or is missing or malformed
env GITHUB_TOKEN, COOP_GITHUB_API, COOP_MASTODON_UPDATE_API, COOP_POSTGRES_VERSIONS_URL
`;

export async function main(argv: string[], ioOverrides: Partial<CliIo> = {}): Promise<number> {
  const io = defaultIo(ioOverrides);
  const flags = parseFlags("behind", USAGE, argv, FLAGS, io);
  if (flags === null) return EXIT_USAGE;
  if (flags.help) {
    io.out(HELP);
    return 0;
  }
  const now = flags.now === undefined ? io.now() : parseIsoDate(flags.now);
  if (now === null) {
    io.err(`coopctl behind: --now ${JSON.stringify(flags.now)} is not a date like 2026-09-01 or 2026-09-01T12:00:00Z\nusage: ${USAGE}\n`);
    return EXIT_USAGE;
  }
  let deployed: DeployedVersions;
  try {
    deployed = parseConfigKey("versions", readStackFile(flags.stack, io.rootDir).values.versions);
  } catch (err) {
    const where = err instanceof ConfigError ? `Pulumi.${flags.stack}.yaml: ` : "";
    io.err(`coopctl behind: ${where}${(err as Error).message}\n`);
    return EXIT_USAGE;
  }
  try {
    const upstream = await fetchUpstream(deployed, endpointsFromEnv(io.env));
    const report = buildBehindReport(deployed, upstream, now);
    io.out(flags.json ? JSON.stringify({ stack: flags.stack, ...report }, null, 2) + "\n" : formatBehindReport(report, flags.stack));
    return report.securityReleaseMissed ? 1 : 0;
  } catch (err) {
    if (err instanceof VersionError) {
      io.err(`coopctl behind: Pulumi.${flags.stack}.yaml socialcoop:${err.message}\n`);
      return EXIT_USAGE;
    }
    if (!(err instanceof FetchError)) throw err;
    io.err(`coopctl behind: ${err.message}\n`);
    return EXIT_FETCH;
  }
}
