/**
 * `coopctl behind [--stack prod] [--json]`: how far the deployed Mastodon, Hometown, Synapse and
 * PostgreSQL are behind upstream. Exit 0: no missed security release; 1: one is missed;
 * 2: wrong usage or stack file; 3: an upstream API could not be read.
 */
import { buildBehindReport, formatBehindReport, VersionError, type DeployedVersions } from "../reports/behind";
import { STACK_REPORT_FLAGS, defaultIo, EXIT_FETCH, EXIT_USAGE, parseFlags, type CliIo } from "../reports/cli-support";
import { FetchError } from "../reports/http";
import { ConfigError } from "../config/problems";
import { parseConfigKey } from "../config/parse";
import { readStackFile } from "../plan/stack-file";
import { endpointsFromEnv, fetchUpstream } from "../reports/upstream";

const USAGE = "coopctl behind [--stack prod] [--json]";

export async function main(argv: string[], ioOverrides: Partial<CliIo> = {}): Promise<number> {
  const io = defaultIo(ioOverrides);
  const flags = parseFlags("behind", USAGE, argv, STACK_REPORT_FLAGS, io);
  if (flags === null) return EXIT_USAGE;
  if (flags.help) {
    io.out(`usage: ${USAGE}\nreads socialcoop:versions from Pulumi.<stack>.yaml; env GITHUB_TOKEN, COOP_GITHUB_API, COOP_MASTODON_UPDATE_API, COOP_POSTGRES_VERSIONS_URL\n`);
    return 0;
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
    const report = buildBehindReport(deployed, upstream, io.now());
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
