/**
 * `coopctl status`: one screen saying whether someone has to act on the instance, from the facts
 * scripts/status.sh gathers on each host (over SSH, on this machine, or from saved files).
 * On the host running the app, status.sh also lists the app's upstream releases (the setting the
 * Alerts component installs), so a missed security release shows here as in the hosts' daily check.
 * Exit 0: nothing needs a person; 1: something does (the reasons first); 2: wrong usage or unreadable
 * facts; 3: a host could not be reached or its status.sh failed.
 */
import { readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ConfigError } from "../config/problems";
import { parseConfigKey } from "../config/parse";
import { readStackFile } from "../plan/stack-file";
import { defaultIo, EXIT_FETCH, EXIT_USAGE, parseFlags, type CliIo } from "../reports/cli-support";
import { DEFAULT_THRESHOLDS, evaluateStatus, FactsError, formatStatus, parseFacts, statusJson, type HostFacts, type StatusThresholds } from "../reports/status";

const USAGE =
  "coopctl status [--host user@addr[:port] --ssh-key PATH]... [--local] [--facts FILE]... [--json] [--stack NAME]\n" +
  "       [--backup-max-age-hours 26] [--drill-max-age-hours 26] [--wal-max-lag-seconds 300] [--disk-max-percent 85] [--cert-min-days 14]\n" +
  "       [--security-grace-hours 72]";

/**
 * What runs on a host: the installed status.sh with the environment the backup and drill units get
 * (install-backup.sh's /etc/coop/backup.env, read by systemd, never by this program). Hosts laid out
 * otherwise set COOP_STATUS_REMOTE_COMMAND.
 */
export const REMOTE_STATUS_COMMAND =
  "sudo -n systemd-run --quiet --pipe --wait --collect --property=EnvironmentFile=-/etc/coop/backup.env /opt/coop/scripts/status.sh";

const HELP = `usage: ${USAGE}
  --host user@addr[:port]  run status.sh on that host over SSH (repeat for each host); needs --ssh-key
  --ssh-key PATH           the private key to log in with (the deploy key, or your own)
  --known-hosts FILE       pin host keys from this file instead of your ~/.ssh/known_hosts
  --local                  run scripts/status.sh on this machine with the current COOP_* environment
  --facts FILE             read facts status.sh printed earlier (one host's object or an array; repeatable)
  --json                   problems, thresholds and facts as JSON
  --stack NAME             take backup.drillMaxAgeHours and the alerts thresholds from Pulumi.NAME.yaml
  thresholds (defaults in brackets): --backup-max-age-hours [${DEFAULT_THRESHOLDS.backupMaxAgeHours}]
    --drill-max-age-hours [backup.drillMaxAgeHours, ${DEFAULT_THRESHOLDS.drillMaxAgeHours}] --wal-max-lag-seconds [${DEFAULT_THRESHOLDS.walMaxLagSeconds}]
    --disk-max-percent [${DEFAULT_THRESHOLDS.diskMaxPercent}] --cert-min-days [${DEFAULT_THRESHOLDS.certMinDays}]
    --security-grace-hours [${DEFAULT_THRESHOLDS.securityGraceHours}]: a security release of the app's upstream still missed
    this long after its publication needs a person; the host running the app lists the upstream's releases
    (status.sh, COOP_CHECK_UPSTREAM_REPO from the Alerts install), and one it cannot list is a problem too
exit 0: nothing needs a person; 1: something does (the reasons first, each with its runbook);
2: wrong usage or unreadable facts; 3: a host could not be reached or its status.sh failed
env COOP_STATUS_REMOTE_COMMAND (default: ${REMOTE_STATUS_COMMAND})
`;

const FLAGS = {
  host: { type: "string", multiple: true },
  "ssh-key": { type: "string" },
  "known-hosts": { type: "string" },
  local: { type: "boolean", default: false },
  facts: { type: "string", multiple: true },
  json: { type: "boolean", default: false },
  stack: { type: "string" },
  "backup-max-age-hours": { type: "string" },
  "drill-max-age-hours": { type: "string" },
  "wal-max-lag-seconds": { type: "string" },
  "disk-max-percent": { type: "string" },
  "cert-min-days": { type: "string" },
  "security-grace-hours": { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;

const THRESHOLD_FLAGS: readonly [keyof StatusThresholds, string][] = [
  ["backupMaxAgeHours", "backup-max-age-hours"],
  ["drillMaxAgeHours", "drill-max-age-hours"],
  ["walMaxLagSeconds", "wal-max-lag-seconds"],
  ["diskMaxPercent", "disk-max-percent"],
  ["certMinDays", "cert-min-days"],
  ["securityGraceHours", "security-grace-hours"],
];

const SCRIPT = join(__dirname, "..", "..", "scripts", "status.sh");

class SourceError extends Error {}

function collect(what: string, cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): HostFacts[] {
  const r = spawnSync(cmd, args, { env, encoding: "utf8", timeout: 180_000, maxBuffer: 16 * 1024 * 1024 });
  if (r.error) throw new SourceError(`${what}: ${r.error.message}`);
  if (r.status !== 0) {
    const tail = (r.stderr || r.stdout || "").trim().split("\n").slice(-5).join("\n");
    throw new SourceError(`${what}: status.sh exited ${r.status ?? r.signal}${tail ? `:\n${tail}` : ""}`);
  }
  return parseFacts(r.stdout, what);
}

function overSsh(target: string, key: string, knownHosts: string | undefined, io: CliIo): HostFacts[] {
  const m = /^([a-z_][a-z0-9_-]*)@([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::([0-9]{1,5}))?$/.exec(target);
  if (!m) throw new FactsError(`--host ${JSON.stringify(target)}: expected user@address or user@address:port`);
  const [, user, addr, port] = m;
  const args = ["-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=15"];
  if (knownHosts) args.push("-o", `UserKnownHostsFile=${knownHosts}`, "-o", "GlobalKnownHostsFile=/dev/null");
  if (port) args.push("-p", port);
  args.push(`${user}@${addr.replace(/^\[|\]$/g, "")}`, io.env.COOP_STATUS_REMOTE_COMMAND || REMOTE_STATUS_COMMAND);
  return collect(`host ${target}`, "ssh", args, io.env);
}

export async function main(argv: string[], ioOverrides: Partial<CliIo> = {}): Promise<number> {
  const io = defaultIo(ioOverrides);
  const flags = parseFlags("status", USAGE, argv, FLAGS, io);
  if (flags === null) return EXIT_USAGE;
  if (flags.help) {
    io.out(HELP);
    return 0;
  }
  const usageError = (reason: string) => {
    io.err(`coopctl status: ${reason}\nusage: ${USAGE}\n`);
    return EXIT_USAGE;
  };
  const hosts = flags.host ?? [];
  const factFiles = flags.facts ?? [];
  if (hosts.length === 0 && factFiles.length === 0 && !flags.local) return usageError("say where the facts come from: --host, --local or --facts");
  if (hosts.length > 0 && !flags["ssh-key"]) return usageError("--host needs --ssh-key");

  const thresholds: Record<keyof StatusThresholds, number> = { ...DEFAULT_THRESHOLDS };
  if (flags.stack !== undefined) {
    try {
      const values = readStackFile(flags.stack, io.rootDir).values;
      thresholds.drillMaxAgeHours = parseConfigKey("backup", values.backup).drillMaxAgeHours;
      // The stack's alerts thresholds, which its hosts' daily check (scripts/check.sh) uses too.
      const alerts = parseConfigKey("alerts", values.alerts);
      if (alerts) {
        thresholds.backupMaxAgeHours = alerts.backupMaxAgeHours;
        thresholds.walMaxLagSeconds = alerts.walMaxLagSeconds;
        thresholds.diskMaxPercent = alerts.diskMaxPercent;
        thresholds.certMinDays = alerts.certMinDays;
        thresholds.securityGraceHours = alerts.securityGraceHours;
      }
    } catch (err) {
      const where = err instanceof ConfigError ? `Pulumi.${flags.stack}.yaml: ` : "";
      io.err(`coopctl status: ${where}${(err as Error).message}\n`);
      return EXIT_USAGE;
    }
  }
  for (const [key, flag] of THRESHOLD_FLAGS) {
    const raw = flags[flag as keyof typeof flags];
    if (raw === undefined) continue;
    const n = Number(raw);
    if (typeof raw !== "string" || !/^[0-9]+(\.[0-9]+)?$/.test(raw) || !Number.isFinite(n)) return usageError(`--${flag} ${JSON.stringify(raw)}: expected a number ≥ 0`);
    thresholds[key] = n;
  }

  const facts: HostFacts[] = [];
  try {
    for (const file of factFiles) {
      let text: string;
      try {
        text = readFileSync(file, "utf8");
      } catch (err) {
        throw new FactsError(`--facts ${file}: ${(err as Error).message}`);
      }
      facts.push(...parseFacts(text, file));
    }
    if (flags.local) facts.push(...collect("this machine", "bash", [SCRIPT], io.env));
    for (const target of hosts) facts.push(...overSsh(target, flags["ssh-key"] as string, flags["known-hosts"], io));
  } catch (err) {
    if (err instanceof FactsError) {
      io.err(`coopctl status: ${err.message}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof SourceError) {
      io.err(`coopctl status: ${err.message}\n`);
      return EXIT_FETCH;
    }
    throw err;
  }
  const problems = evaluateStatus(facts, thresholds);
  io.out(flags.json ? statusJson(facts, problems, thresholds) : formatStatus(facts, problems));
  return problems.length === 0 ? 0 : 1;
}
