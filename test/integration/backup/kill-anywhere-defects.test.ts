// The defects that kills at any moment found (issue 11), each pinned by the kill that shows it:
// a drill killed inside `restic check`, a backup killed between its pgBackRest backup and publishing,
// and a restored cluster that exits before it is promoted.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackupRig } from "../../../src/local/backup-rig";
import { psqlAt } from "../../../src/local/postgres";
import { run } from "../../../src/local/run";
import { converge, runGroup, settledStrays } from "./random-kills";
import { TABLE_DIGESTS_SQL, ok, restic, rigWithInstance } from "./rig-support";

let rig: BackupRig;
beforeAll(async () => {
  rig = await rigWithInstance(12);
  ok(await rig.script("backup.sh"), "backup");
}, 300_000);
afterAll(async () => {
  await rig?.stop();
});

const latest = () => JSON.parse(readFileSync(join(rig.env.COOP_SPOOL_DIR, "manifests", "latest.json"), "utf8"));
const lastDrill = () => JSON.parse(readFileSync(join(rig.env.COOP_DRILL_RESULTS_DIR, "last.json"), "utf8"));
const resticLocks = async () => (await restic(rig, ["--no-lock", "list", "locks"])).stdout.trim().split("\n").filter(Boolean);

// restic writes a lock under a temporary name and renames it: only a 64-hex name is a lock.
const lockFileExists = () => readdirSync(join(rig.resticRepoDir, "locks")).some((f) => /^[0-9a-f]{64}$/.test(f));

/** A time an hour from now as PostgreSQL reads it: later than any archived WAL. */
function anHourFromNow(): string {
  return new Date(Date.now() + 3_600_000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "+00");
}

function restoreEnv(name: string, target: string) {
  const dir = join(rig.dir, name);
  return {
    dir,
    port: rig.pg.port + 30,
    env: {
      ...rig.env,
      COOP_RESTORE_TARGET: target,
      COOP_RESTORE_PG_DATA: join(dir, "data"),
      COOP_RESTORE_PORT: String(rig.pg.port + 30),
      COOP_RESTORE_SOCKET: join(dir, "sock"),
      COOP_RESTORE_FILES_TO: join(dir, "files"),
    },
  };
}

async function removeRestore(dir: string): Promise<void> {
  await run("runuser", ["-u", rig.env.COOP_PG_OS_USER, "--", join(rig.pg.binDir, "pg_ctl"), "-D", join(dir, "data"), "-m", "immediate", "-w", "stop"], { allowFailure: true });
  rmSync(dir, { recursive: true, force: true });
}

describe("kills at any moment: the defects they found", () => {
  it("a drill killed inside `restic check` leaves a stale lock that neither the next backup nor the next drill trips over", async () => {
    // Two kills, each leaving the lock (and the killed drill's scratch cluster) behind: one for a backup
    // to find, one for a drill.
    const killed = await runGroup("drill.sh", rig.env, { killWhen: /restic .* check/, andThen: lockFileExists, boundMs: 240_000 });
    expect(killed.killed, killed.output.slice(-2000)).toBe(true);
    expect(await resticLocks(), "the kill left restic's exclusive lock behind").not.toEqual([]);
    const backup = await converge("backup.sh", rig.env, 180_000, 1);
    expect(backup.runs[0].output).not.toContain("initializing restic repository");
    expect(await resticLocks()).toEqual([]);

    const again = await runGroup("drill.sh", rig.env, { killWhen: /restic .* check/, andThen: lockFileExists, boundMs: 240_000 });
    expect(again.killed, again.output.slice(-2000)).toBe(true);
    expect(await resticLocks(), "the kill left restic's exclusive lock behind").not.toEqual([]);
    const drill = await converge("drill.sh", rig.env, 180_000, 1);
    expect(drill.reruns).toBe(1);
    expect(lastDrill().ok).toBe(true);
    expect(await resticLocks()).toEqual([]);
    // The killed drill's scratch cluster outlives it (pg_ctl starts it in a session of its own); the next
    // drill stops and removes it first.
    expect(await settledStrays(rig.dir, [rig.pg.dataDir])).toEqual([]);
  }, 600_000);

  it("a backup killed after its pgBackRest backup, before publishing: the drill and a restore to the published point still restore it; re-runs leave no temp file of a write_atomic a kill cut short", async () => {
    const published = latest();
    const digests = await rig.sql(TABLE_DIGESTS_SQL);
    await rig.sql("insert into tags (id, name, created_at, updated_at) values (9800, 'after-the-published-backup', now(), now())");
    const killed = await runGroup("backup.sh", { ...rig.env, FAULT_AT: "manifest" }, { boundMs: 240_000 });
    expect(killed.signal, killed.output.slice(-2000)).toBe("SIGKILL");
    // What a SIGKILL between write_atomic's mktemp and its mv leaves, in a backup (a manifest, pending,
    // the staged dump, the metrics) and in a drill (its result, its metrics): the re-runs below clear them.
    const spool = rig.env.COOP_SPOOL_DIR;
    const backupTemps = [join(spool, "manifests", "coop-x.json.Ab12Cd"), join(spool, "manifests", "pending.Ef34Gh"), join(spool, "staged", "redis", "dump.rdb.Ij56Kl"), join(rig.env.COOP_TEXTFILE_DIR, "coop_backup.prom.Mn78Op")];
    const drillTemps = [join(rig.env.COOP_DRILL_RESULTS_DIR, "last.json.Qr90St"), join(rig.env.COOP_DRILL_RESULTS_DIR, "last-verified.json.Yz34Ab"), join(rig.env.COOP_TEXTFILE_DIR, "coop_drill.prom.Uv12Wx")];
    for (const t of [...backupTemps, ...drillTemps]) {
      mkdirSync(dirname(t), { recursive: true });
      writeFileSync(t, "half");
    }

    // The repository's newest backup set began after the published restore point.
    const drill = await converge("drill.sh", rig.env, 180_000, 1);
    expect(drill.reruns).toBe(1);
    expect(lastDrill().manifest).toBe(published.id);
    expect(lastDrill().ok).toBe(true);
    expect(drillTemps.filter((t) => existsSync(t)), "the drill's temp files").toEqual([]);

    const r = restoreEnv("restore-published-point", `name:${published.restorePoint}`);
    await converge("restore.sh", r.env, 180_000, 1);
    expect(await psqlAt(rig.pg.binDir, join(r.dir, "sock"), r.port, rig.database, TABLE_DIGESTS_SQL)).toBe(digests);
    await removeRestore(r.dir);

    await converge("backup.sh", rig.env, 180_000, 1);
    expect(latest().tables.tags).toBe(Number(await rig.sql("select count(*) from tags")));
    expect(backupTemps.filter((t) => existsSync(t)), "the backup's temp files").toEqual([]);
  }, 600_000);

  it("a restore killed inside a write_atomic (temp written, not yet renamed) leaves no temp file once a re-run finishes; a run after it finished changes nothing", async () => {
    const r = restoreEnv("restore-write-temps", `name:${latest().restorePoint}`);
    const rdb = join(r.dir, "redis", "dump.rdb");
    const marker = `${join(r.dir, "data")}.coop-restore`;
    // What a SIGKILL between write_atomic's mktemp and its mv leaves: the marker's, the manifest's, the dump's.
    const temps = [`${marker}.Ab12Cd`, `${marker}.manifest.Xy34Zw`, `${rdb}.Qr56St`];
    mkdirSync(join(r.dir, "redis"), { recursive: true });
    for (const t of temps) writeFileSync(t, "half");
    const done = await runGroup("restore.sh", { ...r.env, COOP_RESTORE_REDIS_RDB: rdb }, { boundMs: 300_000 });
    expect(done.code, done.output.slice(-2000)).toBe(0);
    expect(temps.filter((t) => existsSync(t))).toEqual([]);
    expect(readFileSync(rdb).subarray(0, 5).toString()).toBe("REDIS");
    // Run again once finished (a kill after its last step looks the same): nothing to do, exit 0.
    const again = await runGroup("restore.sh", { ...r.env, COOP_RESTORE_REDIS_RDB: rdb }, { boundMs: 60_000 });
    expect(again.code, again.output.slice(-2000)).toBe(0);
    expect(again.output).toContain("already holds this restore");
    await removeRestore(r.dir);
  }, 300_000);

  it("a restore killed after pgBackRest made the cluster's folders, before its manifest was renamed into place, finishes on a re-run", async () => {
    const r = restoreEnv("restore-before-manifest", `name:${latest().restorePoint}`);
    const data = join(r.dir, "data");
    // What pgBackRest 2.45 leaves then (watched every 2 ms during a restore): the cluster's folders and
    // its manifest under the temporary name; no PG_VERSION, no backup.manifest.
    for (const d of ["base", "global", "pg_wal", "pg_xact", "pg_tblspc"]) mkdirSync(join(data, d), { recursive: true });
    writeFileSync(join(data, "backup.manifest.pgbackrest.tmp"), "[backup]\n");
    writeFileSync(`${data}.coop-restore`, `name:${latest().restorePoint}\n`);
    const done = await runGroup("restore.sh", r.env, { boundMs: 300_000 });
    expect(done.code, done.output.slice(-2000)).toBe(0);
    expect(done.output).toContain("an interrupted restore left folders but no manifest");
    expect(Number(await psqlAt(rig.pg.binDir, join(r.dir, "sock"), r.port, rig.database, "select count(*) from tags"))).toBe(latest().tables.tags);
    expect(existsSync(join(data, "backup.manifest.pgbackrest.tmp"))).toBe(false);
    await removeRestore(r.dir);
  }, 300_000);

  it("a restore into a folder that is not empty and holds no restore of ours is refused, and the folder is left as it was", async () => {
    const r = restoreEnv("restore-not-ours", "latest");
    const data = join(r.dir, "data");
    mkdirSync(join(data, "base"), { recursive: true });
    writeFileSync(join(data, "someone-elses"), "keep");
    const refused = await runGroup("restore.sh", r.env, { boundMs: 60_000 });
    expect(refused.code).not.toBe(0);
    expect(refused.output).toContain("holds no restore of ours");
    expect(readFileSync(join(data, "someone-elses"), "utf8")).toBe("keep");
    rmSync(r.dir, { recursive: true, force: true });
  }, 120_000);

  it("a restored cluster that exits before promotion fails the restore at once, with the server's own reason", async () => {
    // A time after the end of the archived WAL: PostgreSQL stops with "recovery ended before configured
    // recovery target was reached".
    const r = restoreEnv("restore-unreachable-target", `time:${anHourFromNow()}`);
    const run1 = await runGroup("restore.sh", { ...r.env, COOP_RESTORE_TIMEOUT: "3600" }, { boundMs: 90_000 });
    expect(run1.timedOut, `still waiting after ${run1.ms} ms:\n${run1.output.slice(-2000)}`).toBe(false);
    expect(run1.code).not.toBe(0);
    expect(run1.output).toContain("recovery ended before configured recovery target was reached");
    await removeRestore(r.dir);
    expect(await settledStrays(rig.dir, [rig.pg.dataDir])).toEqual([]);
  }, 300_000);
});
