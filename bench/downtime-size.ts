// The app upgrade's maintenance window at an instance's size: the fixture app upgraded by
// scripts/upgrade-app.sh over a database holding a generated Mastodon-shaped instance (schema
// `mastodon`, test/fixtures/mastodon) of 1, 5 or 20 GiB beside the fixture app's own tables, with
// fsync on, WAL archived by pgBackRest and a full backup taken first, as on prod. At each size, in one run:
//   old  COOP_RESTORE_POINT=copy  (CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY in the window)
//   new  COOP_RESTORE_POINT=wal   (WAL restore point; a rollback is a pgBackRest delta restore)
// each upgrade's window split into its steps, then a failing migration rolled back by each mechanism,
// timed from nginx (the rollback's start in the script's log to the first 200), with the fixture
// tables' digests compared before and after.
//   nice -n 15 ionice -c3 npx tsx bench/downtime-size.ts --size 1GB[,5GB,20GB] [--no-old-rollback]
// Figures go to stdout, progress to stderr. Method and results: docs/bench-downtime.md.
import { statfsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { run } from "../src/local";
import { FAILING_MIGRATION } from "../test/fixtures/app/make-repo";
import { SCRIPTS_DIR, startAppRig, type AppRig } from "../test/fixtures/app/rig";
import { generate, parseSize } from "../test/fixtures/mastodon/generator";
import { enableBackRest } from "../test/integration/upgrade/backrest";
import { picture, writeRows } from "../test/integration/upgrade/digests";

const USAGE = "usage: npx tsx bench/downtime-size.ts --size 1GB[,5GB,20GB] [--no-old-rollback]";
const GiB = 1024 ** 3;
const LONG_MS = 4 * 3600_000;
/** Steps inside the window, in order; "other" in the table is maintenance + switch + maintenance_off. */
const WINDOW_STEPS = ["maintenance", "stop", "restore_point", "switch", "migrate_pre", "start", "health", "migrate_post", "maintenance_off"];

const t0 = performance.now();
const say = (msg: string) => process.stderr.write(`[size +${((performance.now() - t0) / 1000).toFixed(0)}s] ${msg}\n`);

interface Window {
  readonly nginxS: number;
  readonly steps: Readonly<Record<string, number>>;
  readonly output: string;
}

interface Rollback {
  /** From the script's "rolling back" line to nginx's first 200. */
  readonly rollbackS: number;
  /** The whole failed upgrade as nginx saw it: first 503 to first 200. */
  readonly nginxS: number;
  readonly digestsEqual: boolean;
  readonly output: string;
}

function stepTimings(output: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of output.matchAll(/step \d+\/\d+ (\S+) done in (\d+\.\d)s/g)) out[m[1]] = Number(m[2]);
  return out;
}

/** upgrade-app.sh with the rig's environment, nginx polled every 50 ms; the rig's own runner stops at 5 min. */
async function upgrade(rig: AppRig, tag: string, extra: Record<string, string>, onLine?: (line: string, at: number) => void) {
  let first503: number | undefined;
  let reopened: number | undefined;
  let running = true;
  const poll = (async () => {
    while (running || (first503 !== undefined && reopened === undefined)) {
      const t = performance.now();
      const status = await rig.get("/").then((r) => r.status, () => 0);
      if (status === 503 && first503 === undefined) first503 = t;
      if (status === 200 && first503 !== undefined && reopened === undefined) reopened = t;
      if (reopened !== undefined) break;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 50 - (performance.now() - t))));
    }
  })();
  const r = await run("bash", [join(SCRIPTS_DIR, "upgrade-app.sh"), tag], {
    env: { ...rig.env, ...extra },
    allowFailure: true,
    timeoutMs: LONG_MS,
    onStderr: (chunk) => {
      const at = performance.now();
      for (const line of chunk.split("\n")) if (line.trim()) onLine?.(line, at);
    },
  });
  running = false;
  await poll;
  if (first503 === undefined || reopened === undefined) throw new Error(`nginx never showed the window during the upgrade to ${tag}:\n${r.stderr.slice(-3000)}`);
  return { code: r.code, output: `${r.stdout}${r.stderr}`, first503, reopened };
}

async function window(rig: AppRig, tag: string, mechanism: "copy" | "wal"): Promise<Window> {
  say(`upgrade to ${tag}, restore point: ${mechanism}`);
  const r = await upgrade(rig, tag, { COOP_RESTORE_POINT: mechanism }, (line) => {
    if (/step \d+\/13 \S+ done in|restore point:/.test(line)) say(`  ${line.replace(/^.*?(step|restore point)/, "$1")}`);
  });
  if (r.code !== 0) throw new Error(`upgrade to ${tag} (${mechanism}) failed:\n${r.output.slice(-3000)}`);
  return { nginxS: (r.reopened - r.first503) / 1000, steps: stepTimings(r.output), output: r.output };
}

async function rollback(rig: AppRig, mechanism: "copy" | "wal"): Promise<Rollback> {
  await writeRows(rig, `before-rollback-${mechanism}`);
  const before = await picture(rig);
  say(`failing upgrade to ${FAILING_MIGRATION}, restore point: ${mechanism}`);
  let rollingBack: number | undefined;
  const r = await upgrade(rig, FAILING_MIGRATION, { COOP_RESTORE_POINT: mechanism }, (line, at) => {
    if (line.includes("rolling back the upgrade")) rollingBack ??= at;
    if (/rolling back|back at the restore point|restoring the cluster|failed at step/.test(line)) say(`  ${line}`);
  });
  if (r.code !== 1 || rollingBack === undefined) throw new Error(`the failing upgrade (${mechanism}) did not roll back:\n${r.output.slice(-3000)}`);
  const after = await picture(rig);
  const digestsEqual = after.rows === before.rows && after.schema === before.schema && after.migrations === before.migrations;
  if (!digestsEqual) throw new Error(`rollback (${mechanism}): the fixture tables differ from before the upgrade`);
  return { rollbackS: (r.reopened - rollingBack) / 1000, nginxS: (r.reopened - r.first503) / 1000, digestsEqual, output: r.output };
}

interface SizeResult {
  readonly label: string;
  readonly dbBytes: number;
  readonly generateS: number;
  readonly statuses: number;
  readonly backupS: number;
  readonly old: Window;
  readonly fresh: Window;
  readonly walRollback: Rollback;
  readonly copyRollback?: Rollback;
  readonly autoChoice: string;
}

function freeBytes(path: string): number {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
}

async function measureSize(label: string, bytes: number, oldRollback: boolean): Promise<SizeResult> {
  const rig = await startAppRig();
  try {
    // The database, its copy (old mechanism), the repository (lz4: about half) and some WAL.
    const need = bytes * 2.7 + 2 * GiB;
    const free = freeBytes(rig.dir);
    if (free < need) throw new Error(`${label}: ${(free / GiB).toFixed(1)} GiB free under ${rig.dir}, need about ${(need / GiB).toFixed(1)} GiB`);
    say(`${label}: ${(free / GiB).toFixed(1)} GiB free; generating the Mastodon-shaped instance (fsync off while loading)`);
    let chunks = 0;
    const gen0 = performance.now();
    const report = await generate({
      target: { host: "127.0.0.1", port: rig.pg.port, db: rig.database, user: "postgres" },
      size: bytes,
      onProgress: (line) => {
        if (!line.includes("] loaded ") || chunks++ % 20 === 0) say(`  generator ${line}`);
      },
    });
    const generateS = (performance.now() - gen0) / 1000;
    // The instance moves to its own schema; the fixture app's migrations own `public`.
    await rig.sql("alter schema public rename to mastodon; create schema public;");
    say(`generated ${(report.dbBytes / GiB).toFixed(2)} GiB in ${generateS.toFixed(0)} s; archiving on, fsync on, stanza`);
    const backrest = await enableBackRest(rig, { settings: { fsync: "on" } });
    await rig.deploy("v1.0.0");
    await rig.sql(`insert into accounts (username) select 'user' || g from generate_series(1, 1000) g;
      insert into statuses (account_id, text) select 1 + g % 1000, repeat('toot ', 20) || g from generate_series(1, 200000) g`);
    rig.recordDrill(true);
    say("full backup");
    const b0 = performance.now();
    await backrest.fullBackup();
    const backupS = (performance.now() - b0) / 1000;
    say(`full backup in ${backupS.toFixed(0)} s`);
    const dbBytes = Number(await rig.sql("select pg_database_size(current_database())"));
    const auto = await rig.bash(`source ${SCRIPTS_DIR}/lib/upgrade.sh; source ${SCRIPTS_DIR}/lib/restore-point.sh; source ${SCRIPTS_DIR}/lib/restore-point-wal.sh
      restore_point_env_defaults; choose_restore_point 2>&1`);
    const autoChoice = auto.output.match(/restore point: (.*)/)?.[1] ?? auto.output.trim();

    const old = await window(rig, "v1.1.0", "copy");
    const fresh = await window(rig, "v1.2.0", "wal");
    const walRollback = await rollback(rig, "wal");
    const copyRollback = oldRollback ? await rollback(rig, "copy") : undefined;
    return { label, dbBytes, generateS, statuses: report.rows.statuses, backupS, old, fresh, walRollback, copyRollback, autoChoice };
  } finally {
    say(`${label}: tearing down`);
    await rig.stop();
  }
}

function print(r: SizeResult): void {
  const s = (n: number | undefined) => (n === undefined ? "    -" : n.toFixed(1).padStart(5));
  const row = (name: string, w: Window) => {
    const st = w.steps;
    const migrations = (st.migrate_pre ?? 0) + (st.migrate_post ?? 0);
    const other = (st.maintenance ?? 0) + (st.switch ?? 0) + (st.maintenance_off ?? 0);
    const script = WINDOW_STEPS.reduce((sum, k) => sum + (st[k] ?? 0), 0);
    return `${name.padEnd(26)} ${s(st.stop)} ${s(st.restore_point)} ${s(migrations)} ${s(st.start)} ${s(st.health)} ${s(other)}   ${s(script)} ${s(w.nginxS)}   ${s(script - migrations)} ${s(w.nginxS - migrations)}`;
  };
  console.log(`\n== ${r.label}: database ${(r.dbBytes / GiB).toFixed(2)} GiB (${r.statuses} Mastodon statuses + the fixture app), fsync on, WAL archived`);
  console.log(`generation ${r.generateS.toFixed(0)} s (fsync off), full pgBackRest backup ${r.backupS.toFixed(0)} s (lz4, aes-256-cbc, process-max 2)`);
  console.log(`auto at the default threshold: ${r.autoChoice}`);
  console.log(`${"upgrade (restore point)".padEnd(26)}  stop   r.p.  migr. start health other  script nginx   window-migrations (script, nginx)  [s]`);
  console.log(row("v1.0.0->v1.1.0 (copy, old)", r.old));
  console.log(row("v1.1.0->v1.2.0 (wal, new)", r.fresh));
  const rb = (name: string, x: Rollback | undefined) =>
    x && console.log(`rollback of ${FAILING_MIGRATION} (${name}): ${x.rollbackS.toFixed(1)} s from "rolling back" to 200 (whole failed window ${x.nginxS.toFixed(1)} s); digests ${x.digestsEqual ? "identical" : "DIFFER"}`);
  rb("wal: pgBackRest delta restore", r.walRollback);
  rb("copy: two renames", r.copyRollback);
  const restoreLine = r.walRollback.output.match(/back at the restore point \(pgBackRest delta restore \+ WAL replay in [\d.]+s\)/)?.[0];
  if (restoreLine) console.log(`  of which ${restoreLine}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: "string", default: "1GB" }, "no-old-rollback": { type: "boolean", default: false } } });
  const labels = values.size.split(",").map((x) => x.trim()).filter(Boolean);
  const sizes = labels.map((l) => {
    try {
      return parseSize(l);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${USAGE}`);
    }
  });
  console.log(`App upgrade window by database size (bench/downtime-size.ts), ${new Date().toISOString()}`);
  for (const [i, label] of labels.entries()) {
    const r = await measureSize(label, sizes[i], !values["no-old-rollback"]);
    print(r);
  }
}

main().catch((e: unknown) => {
  say(`failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
