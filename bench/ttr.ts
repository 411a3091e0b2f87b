// Time-to-restore benchmark: how long a pgBackRest restore (files + WAL replay + verification) takes
// next to copying the data directory raw, and next to the classic single-job `pg_dump | psql`.
//   npx tsx bench/ttr.ts [--size 1GB|5GB|<bytes>] [--keep] [--drop-caches]
//                        [--compress-type lz4|gz|zst|none] [--process-max N]
// Figures go to stdout, progress to stderr. Method and caveats: docs/bench-ttr.md.
import { randomBytes } from "node:crypto";
import { availableParallelism, totalmem, release } from "node:os";
import { chownSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  DEFAULT_TEST_USER,
  ensureUser,
  freePort,
  makeTempDir,
  onExit,
  run,
  tail,
  type PostgresServer,
  type RunResult,
  type SystemUser,
  startPostgres,
} from "../src/local";
import { generate, parseSize } from "../test/fixtures/mastodon/generator";

const USAGE =
  "usage: npx tsx bench/ttr.ts [--size 1GB|5GB|<bytes>] [--keep] [--drop-caches] [--compress-type lz4|gz|zst|none] [--process-max N]";
const STANZA = "bench";
const DB = "mastodon";
const RESTORE_POINT = "ttr-bench";
/** Restores of a few GB take minutes; run()'s two-minute default would kill them. */
const LONG_MS = 4 * 3600_000;
const MB = 1024 * 1024;

interface Options {
  readonly sizeLabel: string;
  readonly sizeBytes: number;
  readonly keep: boolean;
  readonly dropCaches: boolean;
  readonly compressType: string;
  readonly processMax: number;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      size: { type: "string", default: "1GB" },
      keep: { type: "boolean", default: false },
      "drop-caches": { type: "boolean", default: false },
      "compress-type": { type: "string", default: "lz4" },
      "process-max": { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const problems: string[] = [];
  if (!["lz4", "gz", "zst", "none", "bz2"].includes(values["compress-type"])) problems.push("--compress-type must be lz4, gz, zst, bz2 or none");
  const processMax = values["process-max"] === undefined ? availableParallelism() : Number(values["process-max"]);
  if (!Number.isInteger(processMax) || processMax < 1) problems.push("--process-max must be a positive integer");
  let sizeBytes = 0;
  try {
    sizeBytes = parseSize(values.size);
  } catch (e) {
    problems.push((e as Error).message);
  }
  if (problems.length) throw new Error(`${problems.join("; ")}\n${USAGE}`);
  return {
    sizeLabel: values.size,
    sizeBytes,
    keep: values.keep,
    dropCaches: values["drop-caches"],
    compressType: values["compress-type"],
    processMax,
  };
}

const started = performance.now();
function say(msg: string): void {
  process.stderr.write(`[ttr +${((performance.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);
}

async function timed<T>(fn: () => Promise<T>): Promise<{ s: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { s: (performance.now() - t0) / 1000, value };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- cleanup: one ordered list, run once, whether the run ends, fails or is interrupted ----

const cleanups: Array<{ what: string; fn: () => Promise<void> }> = [];
let cleaning: Promise<void> | undefined;

function atCleanup(what: string, fn: () => Promise<void>): void {
  cleanups.push({ what, fn });
}

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const { what, fn } of cleanups.reverse()) {
      try {
        await fn();
      } catch (e) {
        // One failed step must not leave the other clusters running.
        say(`cleanup of ${what} failed: ${(e as Error).message}`);
      }
    }
  })();
  return cleaning;
}

// ---- small helpers around the PostgreSQL binaries ----

interface Ctx {
  readonly opts: Options;
  readonly user: SystemUser;
  readonly root: string;
  readonly binDir: string;
  readonly conf: string;
}

function psqlAt(ctx: Ctx, port: number, sql: string, db = "postgres", allowFailure = false): Promise<RunResult> {
  return run(
    join(ctx.binDir, "psql"),
    ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", db, "-c", sql],
    { allowFailure, timeoutMs: LONG_MS },
  );
}

function pgbackrest(ctx: Ctx, args: readonly string[]): Promise<RunResult> {
  return run("pgbackrest", [`--config=${ctx.conf}`, `--stanza=${STANZA}`, ...args], { asUser: ctx.user.name, timeoutMs: LONG_MS });
}

/** A folder under the bench root owned by the cluster's user, mode 0700 as PostgreSQL demands of a data dir. */
function userDir(ctx: Ctx, name: string): string {
  const dir = join(ctx.root, name);
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, ctx.user.uid, ctx.user.gid);
  return dir;
}

async function duBytes(path: string): Promise<number> {
  const r = await run("du", ["-s", "--block-size=1", path], { timeoutMs: LONG_MS });
  return Number(r.stdout.split("\t")[0]);
}

/**
 * Flushes dirty pages before a timed step, so writeback left over from the previous step is not billed
 * to the next one; with --drop-caches also empties the guest page cache.
 */
async function settle(ctx: Ctx): Promise<void> {
  await run("sync", [], { timeoutMs: LONG_MS });
  if (ctx.opts.dropCaches) writeFileSync("/proc/sys/vm/drop_caches", "3\n");
}

async function tableList(src: PostgresServer): Promise<string[]> {
  const out = await src.psql(
    "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;",
    { db: DB },
  );
  return out.split("\n").filter(Boolean);
}

function countSql(tables: readonly string[]): string {
  return tables.map((t) => `SELECT '${t.replace(/'/g, "''")}', count(*) FROM ${t}`).join(" UNION ALL ") + ";";
}

function parseCounts(out: string): Map<string, number> {
  return new Map(out.split("\n").filter(Boolean).map((l) => l.split("|")).map(([t, n]) => [t ?? "", Number(n)]));
}

/** Throws naming every table whose count differs, so a broken restore can never report a time. */
function compareCounts(label: string, want: Map<string, number>, got: Map<string, number>): void {
  const bad = [...want].filter(([t, n]) => got.get(t) !== n).map(([t, n]) => `${t}: want ${n}, got ${got.get(t) ?? "missing"}`);
  if (bad.length) throw new Error(`${label}: row counts differ from the source:\n  ${bad.join("\n  ")}`);
}

// ---- the steps ----

async function setUp(opts: Options): Promise<{ ctx: Ctx; src: PostgresServer }> {
  const user = await ensureUser(DEFAULT_TEST_USER);
  const rootDir = makeTempDir("ttr", user);
  const root = rootDir.path;
  const ctx: Ctx = { opts, user, root, binDir: "/usr/lib/postgresql/15/bin", conf: join(root, "pgbackrest.conf") };
  atCleanup("bench folder", async () => {
    if (opts.keep) say(`kept ${root}`);
    else rootDir.remove();
  });
  // Last resort if the process dies without reaching cleanup(): the restored cluster is not startPostgres'.
  onExit(() => {
    if (opts.keep) return;
    const pidFile = join(root, "restore", "postmaster.pid");
    if (existsSync(pidFile)) {
      try {
        process.kill(Number(readFileSync(pidFile, "utf8").split("\n")[0]), "SIGQUIT");
      } catch {
        // Already gone.
      }
    }
    rootDir.remove();
  });
  for (const d of ["repo", "lock", "log", "spool"]) userDir(ctx, d);

  say("starting the source cluster (fsync on, WAL archived by pgBackRest)");
  const src = await startPostgres({
    user: user.name,
    archiveCommand: `pgbackrest --config=${ctx.conf} --stanza=${STANZA} archive-push %p`,
    settings: { fsync: "on" },
  });
  atCleanup("source cluster", () => stopServer(ctx, src, "source"));

  const conf = [
    "[global]",
    `repo1-path=${join(root, "repo")}`,
    "repo1-type=posix",
    "repo1-cipher-type=aes-256-cbc",
    `repo1-cipher-pass=${randomBytes(32).toString("base64")}`,
    "repo1-retention-full=1",
    `compress-type=${opts.compressType}`,
    `process-max=${opts.processMax}`,
    `lock-path=${join(root, "lock")}`,
    `log-path=${join(root, "log")}`,
    `spool-path=${join(root, "spool")}`,
    "log-level-console=warn",
    "log-level-file=info",
    "",
    `[${STANZA}]`,
    `pg1-path=${src.dataDir}`,
    `pg1-port=${src.port}`,
    `pg1-socket-path=${src.socketDir}`,
    "pg1-user=postgres",
    "",
  ].join("\n");
  // The passphrase is in here: only the cluster's user may read it.
  writeFileSync(ctx.conf, conf, { mode: 0o600 });
  chownSync(ctx.conf, user.uid, user.gid);
  await pgbackrest(ctx, ["stanza-create"]);
  return { ctx, src };
}

/** Stops a startPostgres cluster; with --keep moves its folder under the bench root instead of deleting it. */
async function stopServer(ctx: Ctx, srv: PostgresServer, name: string): Promise<void> {
  if (!ctx.opts.keep) return srv.stop();
  if (existsSync(join(srv.dataDir, "postmaster.pid"))) await srv.pgCtl(["stop", "-m", "fast"]);
  // startPostgres' exit hook removes srv.dir; once moved, that finds nothing to remove.
  renameSync(srv.dir, join(ctx.root, name));
}

interface Prepared {
  readonly generateS: number;
  readonly backupS: number;
  readonly dbBytes: number;
  readonly counts: Map<string, number>;
  readonly tables: string[];
}

async function prepare(ctx: Ctx, src: PostgresServer): Promise<Prepared> {
  say(`generating a ${ctx.opts.sizeLabel} Mastodon-shaped database`);
  let chunks = 0;
  const gen = await timed(() =>
    generate({
      target: { host: "127.0.0.1", port: src.port, db: DB, user: "postgres" },
      size: ctx.opts.sizeBytes,
      onProgress: (line) => {
        // The generator reports every loaded chunk; one in ten is enough to show it is moving.
        if (!line.includes("] loaded ") || chunks++ % 10 === 0) say(`  generator ${line}`);
      },
    }),
  );
  say(`generated in ${gen.s.toFixed(1)} s; taking a full pgBackRest backup`);
  const backup = await timed(() => pgbackrest(ctx, ["--type=full", "--start-fast", "backup"]));
  say(`backup took ${backup.s.toFixed(1)} s; creating restore point ${RESTORE_POINT}`);
  await src.psql(`SELECT pg_create_restore_point('${RESTORE_POINT}');`);
  // In its own statement: the restore point's WAL segment must be closed and archived before a restore
  // can reach it (FIELD-NOTES, "PITR gotcha"); `check` then waits for that archive.
  await src.psql("SELECT pg_switch_wal();");
  await pgbackrest(ctx, ["check"]);
  const tables = await tableList(src);
  const counts = parseCounts(await src.psql(countSql(tables), { db: DB }));
  const dbBytes = Number(await src.psql(`SELECT pg_database_size('${DB}');`));
  say(`source: ${tables.length} tables, ${(dbBytes / MB).toFixed(0)} MB (pg_database_size)`);
  return { generateS: gen.s, backupS: backup.s, dbBytes, counts, tables };
}

interface RawResult {
  readonly cpS: number;
  readonly cpSyncS: number;
  readonly tarS: number;
  readonly tarSyncS: number;
  /** tar | tar leaving out pg_wal's segments, which pgBackRest never restores: informational only. */
  readonly noWalS: number;
  readonly dataDirBytes: number;
  readonly walBytes: number;
}

async function rawCopy(ctx: Ctx, src: PostgresServer): Promise<RawResult> {
  say("raw copy: stopping the source cluster cleanly");
  await src.pgCtl(["stop", "-m", "fast"]);
  const dataDirBytes = await duBytes(src.dataDir);
  const walBytes = await duBytes(join(src.dataDir, "pg_wal"));
  const asUser = { asUser: ctx.user.name, timeoutMs: LONG_MS };

  await settle(ctx);
  const cpDir = join(ctx.root, "copy-cp");
  say(`raw copy: cp -a (${(dataDirBytes / MB).toFixed(0)} MB on disk)`);
  const cp = await timed(() => run("cp", ["-a", src.dataDir, cpDir], asUser));
  const cpSync = await timed(() => run("sync", [], asUser));
  say(`raw copy: cp -a ${cp.s.toFixed(2)} s (+ sync ${cpSync.s.toFixed(2)} s)`);
  if (!ctx.opts.keep) rmSync(cpDir, { recursive: true, force: true });

  await settle(ctx);
  const tarDir = userDir(ctx, "copy-tar");
  say("raw copy: tar | tar");
  const tar = await timed(() =>
    run("bash", ["-c", 'set -euo pipefail; tar -C "$1" -cf - . | tar -C "$2" -xf -', "tar-pipe", src.dataDir, tarDir], asUser),
  );
  const tarSync = await timed(() => run("sync", [], asUser));
  say(`raw copy: tar | tar ${tar.s.toFixed(2)} s (+ sync ${tarSync.s.toFixed(2)} s)`);
  if (!ctx.opts.keep) rmSync(tarDir, { recursive: true, force: true });

  await settle(ctx);
  const noWalDir = userDir(ctx, "copy-nowal");
  say("raw copy: tar | tar without pg_wal segments (informational)");
  const noWal = await timed(() =>
    run(
      "bash",
      ["-c", 'set -euo pipefail; tar -C "$1" --exclude="./pg_wal/0*" -cf - . | tar -C "$2" -xf -', "tar-pipe", src.dataDir, noWalDir],
      asUser,
    ),
  );
  say(`raw copy: without pg_wal segments ${noWal.s.toFixed(2)} s`);
  if (!ctx.opts.keep) rmSync(noWalDir, { recursive: true, force: true });

  say("raw copy: starting the source cluster again");
  await src.pgCtl(["start"]);
  return { cpS: cp.s, cpSyncS: cpSync.s, tarS: tar.s, tarSyncS: tarSync.s, noWalS: noWal.s, dataDirBytes, walBytes };
}

interface BackRestResult {
  readonly restoreS: number;
  readonly replayS: number;
  readonly countS: number;
  readonly amcheckS: number;
  readonly totalS: number;
}

async function waitPromoted(ctx: Ctx, port: number, dataDir: string, logFile: string): Promise<void> {
  for (;;) {
    const r = await psqlAt(ctx, port, "SELECT pg_is_in_recovery();", "postgres", true);
    if (r.code === 0 && r.stdout.trim() === "f") return;
    // A recovery that cannot reach its target ends the postmaster: say why instead of polling forever.
    if (!existsSync(join(dataDir, "postmaster.pid"))) {
      const log = existsSync(logFile) ? readFileSync(logFile, "utf8") : "";
      throw new Error(`restored cluster stopped before promotion:\n${tail(log, 15)}`);
    }
    await sleep(50);
  }
}

async function backrestRestore(ctx: Ctx, prep: Prepared): Promise<BackRestResult> {
  await settle(ctx);
  const dataDir = userDir(ctx, "restore");
  const sockDir = userDir(ctx, "restore-sock");
  const logFile = join(ctx.root, "restore.log");
  const port = await freePort();
  const pgCtl = (args: readonly string[]) =>
    run(join(ctx.binDir, "pg_ctl"), ["-D", dataDir, "-l", logFile, "-w", "-t", "14400", ...args], {
      asUser: ctx.user.name,
      timeoutMs: LONG_MS,
    });
  atCleanup("restored cluster", async () => {
    if (existsSync(join(dataDir, "postmaster.pid"))) await pgCtl(["stop", "-m", ctx.opts.keep ? "fast" : "immediate"]);
  });

  say(`pgBackRest: restoring to restore point ${RESTORE_POINT} (process-max ${ctx.opts.processMax}, ${ctx.opts.compressType})`);
  const t0 = performance.now();
  const restore = await timed(() =>
    pgbackrest(ctx, [
      `--pg1-path=${dataDir}`,
      "--type=name",
      `--target=${RESTORE_POINT}`,
      "--target-action=promote",
      "--archive-mode=off",
      "restore",
    ]),
  );
  say(`pgBackRest: files restored in ${restore.s.toFixed(2)} s; starting on port ${port} and replaying WAL`);
  // The restored postgresql.conf still names the source's port and socket folder, which are in use.
  const replay = await timed(async () => {
    await pgCtl(["-o", `-p ${port} -k ${sockDir}`, "start"]);
    await waitPromoted(ctx, port, dataDir, logFile);
  });
  say(`pgBackRest: promoted after ${replay.s.toFixed(2)} s; verifying row counts`);
  const count = await timed(async () => {
    const got = parseCounts((await psqlAt(ctx, port, countSql(prep.tables), DB)).stdout);
    compareCounts("pgBackRest restore", prep.counts, got);
  });
  say(`pgBackRest: row counts match (${count.s.toFixed(2)} s); pg_amcheck --heapallindexed`);
  const amcheck = await timed(() =>
    run(
      join(ctx.binDir, "pg_amcheck"),
      ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", DB, "--heapallindexed", "--install-missing", "-j", String(availableParallelism())],
      { timeoutMs: LONG_MS },
    ),
  );
  const totalS = (performance.now() - t0) / 1000;
  say(`pgBackRest: pg_amcheck clean (${amcheck.s.toFixed(2)} s); total ${totalS.toFixed(2)} s`);
  await pgCtl(["stop", "-m", "fast"]);
  if (!ctx.opts.keep) rmSync(dataDir, { recursive: true, force: true });
  return { restoreS: restore.s, replayS: replay.s, countS: count.s, amcheckS: amcheck.s, totalS };
}

interface LogicalResult {
  readonly restoreS: number;
  readonly verifyS: number;
}

async function logicalRestore(ctx: Ctx, src: PostgresServer, prep: Prepared): Promise<LogicalResult> {
  say("logical: starting an empty cluster (fsync on, no archiving)");
  const dst = await startPostgres({ user: ctx.user.name, settings: { fsync: "on" } });
  atCleanup("logical target cluster", () => stopServer(ctx, dst, "logical"));
  await settle(ctx);
  say("logical: pg_dump (plain) | psql, one job each");
  const restore = await timed(async () => {
    await dst.psql(`CREATE DATABASE ${DB} TEMPLATE template0 ENCODING 'UTF8';`);
    await run(
      "bash",
      [
        "-c",
        'set -euo pipefail; "$1/pg_dump" -h 127.0.0.1 -p "$2" -U postgres -d "$4" | "$1/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$3" -U postgres -d "$4" >/dev/null',
        "dump-pipe",
        ctx.binDir,
        String(src.port),
        String(dst.port),
        DB,
      ],
      { asUser: ctx.user.name, timeoutMs: LONG_MS },
    );
  });
  say(`logical: restored in ${restore.s.toFixed(2)} s; verifying row counts`);
  const verify = await timed(async () => compareCounts("logical restore", prep.counts, parseCounts(await dst.psql(countSql(prep.tables), { db: DB }))));
  say(`logical: row counts match (${verify.s.toFixed(2)} s)`);
  return { restoreS: restore.s, verifyS: verify.s };
}

// ---- report ----

async function versions(): Promise<string[]> {
  const first = async (cmd: string, args: string[]) => (await run(cmd, args, { allowFailure: true })).stdout.split("\n")[0]?.trim() ?? "?";
  return [
    await first("/usr/lib/postgresql/15/bin/postgres", ["--version"]),
    await first("pgbackrest", ["version"]),
    `node ${process.version}`,
    await first("cp", ["--version"]),
    await first("tar", ["--version"]),
    `Linux ${release()}`,
  ];
}

function report(ctx: Ctx, prep: Prepared, raw: RawResult, br: BackRestResult, logical: LogicalResult, repoBytes: number, archiveBytes: number, vers: string[]): string {
  const rawS = Math.min(raw.cpS, raw.tarS);
  const rawName = raw.cpS <= raw.tarS ? "cp -a" : "tar | tar";
  const mb = (b: number) => `${(b / MB).toFixed(0)} MB`;
  const row = (method: string, s: number, ratio = true) =>
    `${method.padEnd(56)} ${s.toFixed(2).padStart(9)}  ${ratio ? `${(s / rawS).toFixed(2)}×`.padStart(9) : "".padStart(9)}`;
  const r1 = br.totalS / rawS;
  const r2 = logical.restoreS / br.totalS;
  const verdict = (ok: boolean) => (ok ? "PASS" : "FAIL");
  return [
    `Time to restore: Mastodon-shaped database, --size ${ctx.opts.sizeLabel}`,
    "",
    `data:   pg_database_size(${DB}) ${mb(prep.dbBytes)}; data dir on disk (du) ${mb(raw.dataDirBytes)}, of which pg_wal ${mb(raw.walBytes)}`,
    `repo:   ${mb(repoBytes)} on disk (du), of which archived WAL ${(archiveBytes / MB).toFixed(1)} MB; aes-256-cbc, compress-type=${ctx.opts.compressType}, process-max=${ctx.opts.processMax}`,
    `host:   ${availableParallelism()} cores, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB RAM; page cache ${ctx.opts.dropCaches ? "dropped (sync; echo 3 > drop_caches) before each method" : "NOT dropped (warm): see docs/bench-ttr.md"}`,
    `setup:  generate ${prep.generateS.toFixed(1)} s, full backup ${prep.backupS.toFixed(1)} s`,
    ...vers.map((v, i) => `${i === 0 ? "versions:" : "         "} ${v}`),
    "",
    `${"method".padEnd(56)} ${"seconds".padStart(9)}  ${"× raw".padStart(9)}`,
    row("raw copy: cp -a", raw.cpS),
    row("raw copy: tar | tar", raw.tarS),
    row(`  (not counted) sync after cp -a`, raw.cpSyncS, false),
    row(`  (not counted) sync after tar | tar`, raw.tarSyncS, false),
    row("  (not counted) tar | tar without pg_wal segments", raw.noWalS),
    row(`raw copy baseline (${rawName})`, rawS),
    row("pgBackRest restore: files", br.restoreS),
    row("pgBackRest restore: start + WAL replay to promotion", br.replayS),
    row("pgBackRest restore: verify row counts", br.countS),
    row("pgBackRest restore: verify pg_amcheck --heapallindexed", br.amcheckS),
    row("pgBackRest restore + replay + verify (total)", br.totalS),
    row("logical: pg_dump | psql, 1 job (incl. index builds)", logical.restoreS),
    row("  (not counted) logical: verify row counts", logical.verifyS, false),
    "",
    "targets",
    `  pgBackRest restore + verify <= 1.5 × raw copy:               ${r1.toFixed(2)}× raw     ${verdict(r1 <= 1.5)}`,
    `  pgBackRest restore + verify >= 3 × faster than dump | psql:  ${r2.toFixed(2)}× faster  ${verdict(r2 >= 3)}`,
    `  (info) against the copy without pg_wal segments:             ${(br.totalS / raw.noWalS).toFixed(2)}× raw`,
    `  (info) files + replay only, no verify, against raw copy:     ${((br.restoreS + br.replayS) / rawS).toFixed(2)}× raw`,
    "",
  ].join("\n");
}

async function main(): Promise<void> {
  const opts = parseOptions();
  let interrupted = false;
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      // A second Ctrl-C leaves at once; startPostgres' exit hooks still kill the clusters.
      if (interrupted) process.exit(130);
      interrupted = true;
      say(`${sig}: cleaning up`);
      void cleanup().finally(() => process.exit(sig === "SIGINT" ? 130 : 143));
    });
  }
  try {
    const { ctx, src } = await setUp(opts);
    const prep = await prepare(ctx, src);
    const raw = await rawCopy(ctx, src);
    const br = await backrestRestore(ctx, prep);
    const logical = await logicalRestore(ctx, src, prep);
    const repoBytes = await duBytes(join(ctx.root, "repo"));
    const archiveBytes = await duBytes(join(ctx.root, "repo", "archive"));
    process.stdout.write(report(ctx, prep, raw, br, logical, repoBytes, archiveBytes, await versions()));
  } finally {
    await cleanup();
  }
}

main().catch((e: unknown) => {
  say(`failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
