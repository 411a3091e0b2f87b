/**
 * `coopctl cost [--stack prod]`: monthly cost of the stack's hosts on Hetzner Cloud and DigitalOcean.
 * Needs HCLOUD_TOKEN and DIGITALOCEAN_TOKEN (read-only tokens are enough); they are sent to the APIs
 * and never printed. Exit 0: report printed; 2: wrong usage, stack file or missing token; 3: an API
 * could not be read.
 */
import { STACK_REPORT_FLAGS, defaultIo, EXIT_FETCH, EXIT_USAGE, parseFlags, type CliIo } from "../reports/cli-support";
import { buildCostReport, CostError, fetchDigitalOceanPrices, fetchHetznerPrices, formatCostReport, type StackHosts } from "../reports/cost";
import { FetchError } from "../reports/http";
import { ConfigError } from "../config/problems";
import { parseConfigKey } from "../config/parse";
import { StackFileMissing, readStackFile } from "../plan/stack-file";

const USAGE = "coopctl cost [--stack prod] [--json]";

export async function main(argv: string[], ioOverrides: Partial<CliIo> = {}): Promise<number> {
  const io = defaultIo(ioOverrides);
  const flags = parseFlags("cost", USAGE, argv, STACK_REPORT_FLAGS, io);
  if (flags === null) return EXIT_USAGE;
  if (flags.help) {
    io.out(`usage: ${USAGE}\nreads socialcoop:hosts from Pulumi.<stack>.yaml; env HCLOUD_TOKEN, DIGITALOCEAN_TOKEN, COOP_HCLOUD_API, COOP_DIGITALOCEAN_API\n`);
    return 0;
  }
  const missing = [
    io.env.HCLOUD_TOKEN ? null : "HCLOUD_TOKEN (Hetzner Cloud console: Security, API tokens, read-only)",
    io.env.DIGITALOCEAN_TOKEN ? null : "DIGITALOCEAN_TOKEN (DigitalOcean control panel: API, a token with sizes:read)",
  ].filter((m): m is string => m !== null);
  if (missing.length > 0) {
    io.err(`coopctl cost: both price lists need a token; set ${missing.join(" and ")}\n`);
    return EXIT_USAGE;
  }
  try {
    const parsed = parseConfigKey("hosts", readStackFile(flags.stack, io.rootDir).values.hosts);
    if ([parsed.primary, parsed.secondary].some((h) => h?.provider === "local")) {
      io.err(`coopctl cost: stack ${flags.stack} has local machines (provider: local); they have no price to compare\n`);
      return EXIT_USAGE;
    }
    const hosts = parsed as StackHosts;
    const [hz, dO] = await Promise.all([
      fetchHetznerPrices(io.env.HCLOUD_TOKEN as string, io.env.COOP_HCLOUD_API || undefined),
      fetchDigitalOceanPrices(io.env.DIGITALOCEAN_TOKEN as string, io.env.COOP_DIGITALOCEAN_API || undefined),
    ]);
    const report = buildCostReport(hosts, hz, dO);
    io.out(flags.json ? JSON.stringify({ stack: flags.stack, ...report }, null, 2) + "\n" : formatCostReport(report, flags.stack));
    return 0;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof CostError || err instanceof StackFileMissing) {
      io.err(`coopctl cost: ${err instanceof ConfigError ? `Pulumi.${flags.stack}.yaml: ` : ""}${err.message}\n`);
      return EXIT_USAGE;
    }
    if (!(err instanceof FetchError)) throw err;
    io.err(`coopctl cost: ${err.message}\n`);
    return EXIT_FETCH;
  }
}
