/**
 * `coopctl drill-report [--dir DIR] [--out report.svg]`: the restore drill history as a table (stdout)
 * and, with --out, an SVG chart. Exit 0: the newest drill verified; 1: the newest drill failed, a result
 * written after it cannot be read, or there is no valid result; 2: wrong usage.
 */
import { writeFileSync } from "node:fs";
import { defaultIo, EXIT_USAGE, parseFlags, type CliIo } from "../reports/cli-support";
import { formatDrillTable, loadDrillResults, renderDrillSvg } from "../reports/drill-report";

/** Where drill.sh keeps its results on a host, unless COOP_DRILL_RESULTS_DIR says otherwise. */
export const DEFAULT_DRILL_DIR = "/var/lib/coop/drills";
const USAGE = "coopctl drill-report [--dir DIR] [--out report.svg]";

export async function main(argv: string[], ioOverrides: Partial<CliIo> = {}): Promise<number> {
  const io = defaultIo(ioOverrides);
  const flags = parseFlags("drill-report", USAGE, argv, {
    dir: { type: "string" },
    out: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  } as const, io);
  if (flags === null) return EXIT_USAGE;
  if (flags.help) {
    io.out(`usage: ${USAGE}\nreads *.json drill results from --dir (default $COOP_DRILL_RESULTS_DIR or ${DEFAULT_DRILL_DIR})\n`);
    return 0;
  }
  const dir = flags.dir ?? (io.env.COOP_DRILL_RESULTS_DIR || DEFAULT_DRILL_DIR);
  const { results, problems, unreadableNewer } = loadDrillResults(dir);
  for (const p of problems) io.err(`coopctl drill-report: skipped ${p}\n`);
  if (unreadableNewer !== undefined && results.length === 0) {
    io.err(`coopctl drill-report: no valid drill result in ${dir}, and ${unreadableNewer} cannot be read: the newest drill's outcome is unknown\n`);
    return 1;
  }
  if (results.length === 0) {
    io.err(`coopctl drill-report: no valid drill result in ${dir}; a backup nobody restored is not a backup: run the drill\n`);
    return 1;
  }
  io.out(formatDrillTable(results, unreadableNewer));
  if (flags.out) {
    writeFileSync(flags.out, renderDrillSvg(results));
    io.out(`chart written to ${flags.out}\n`);
  }
  return unreadableNewer === undefined && results[results.length - 1].ok ? 0 : 1;
}
