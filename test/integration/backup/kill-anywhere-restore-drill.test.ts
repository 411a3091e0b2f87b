// restore.sh and drill.sh with their whole process group SIGKILLed at seeded random moments, then
// re-run until they succeed, each re-run bounded. Holds: every table digest and media hash comes back,
// the drill verifies the newest backup, and no scratch cluster, folder, restic lock, temp file or
// process of the killed run is left.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackupRig } from "../../../src/local/backup-rig";
import { psqlAt } from "../../../src/local/postgres";
import { run } from "../../../src/local/run";
import { BASE_SEED, converge, killPlan, runGroup, settledStrays, summary, tempLeftovers } from "./random-kills";
import { TABLE_DIGESTS_SQL, lockIsFree, ok, restic, rigWithInstance, treeHashes } from "./rig-support";

// Two per script and CI run (the suite's hour is the limit); each run draws new moments, so coverage adds up
// over runs, and kill-anywhere-defects pins each window a kill once found.
const KILLS = 2;
let rig: BackupRig;
let sourceDigests = "";
let sourceMedia: Record<string, string> = {};
beforeAll(async () => {
  rig = await rigWithInstance(13);
  ok(await rig.script("backup.sh"), "backup");
  sourceDigests = await rig.sql(TABLE_DIGESTS_SQL);
  sourceMedia = treeHashes(rig.mediaDir);
}, 300_000);
afterAll(async () => {
  await rig?.stop();
});

const latest = () => JSON.parse(readFileSync(join(rig.env.COOP_SPOOL_DIR, "manifests", "latest.json"), "utf8"));
const resticLocks = async () => (await restic(rig, ["--no-lock", "list", "locks"])).stdout.trim().split("\n").filter(Boolean);

function restoreAt(name: string, target: string) {
  const dir = join(rig.dir, name);
  const port = rig.pg.port + 40;
  return {
    dir,
    port,
    data: join(dir, "data"),
    env: {
      ...rig.env,
      COOP_RESTORE_TARGET: target,
      COOP_RESTORE_PG_DATA: join(dir, "data"),
      COOP_RESTORE_PORT: String(port),
      COOP_RESTORE_SOCKET: join(dir, "sock"),
      COOP_RESTORE_FILES_TO: join(dir, "files"),
      COOP_RESTORE_REDIS_RDB: join(dir, "redis", "dump.rdb"),
    },
  };
}

async function removeRestore(dir: string): Promise<void> {
  await run("runuser", ["-u", rig.env.COOP_PG_OS_USER, "--", join(rig.pg.binDir, "pg_ctl"), "-D", join(dir, "data"), "-m", "fast", "-w", "stop"], { allowFailure: true });
  rmSync(dir, { recursive: true, force: true });
}

describe("kills at random moments", () => {
  it(`drill.sh: ${KILLS} seeded random kills, each re-run passes within its bound and leaves nothing behind`, async () => {
    const first = await runGroup("drill.sh", rig.env, { boundMs: 300_000 });
    ok({ ...first, stdout: first.output, stderr: "" }, "baseline drill");
    const plan = killPlan("drill.sh");
    const reruns: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const at = plan.next(first.ms);
      const where = `drill kill ${k + 1} at ${at} ms (seed ${plan.seed}; replay with COOP_KILL_SEED=${BASE_SEED})`;
      const killed = await runGroup("drill.sh", rig.env, { killAtMs: at, boundMs: 300_000 });
      console.log(`${where}: ${killed.killed ? "killed" : `finished first (exit ${killed.code})`}; last line: ${killed.output.trimEnd().split("\n").pop()}`);
      if (!killed.killed) expect(killed.code, `${where}\n${killed.output.slice(-2000)}`).toBe(0);
      const c = await converge("drill.sh", rig.env, Math.max(3 * first.ms, 120_000));
      reruns.push(c.reruns);
      const result = JSON.parse(readFileSync(join(rig.env.COOP_DRILL_RESULTS_DIR, "last.json"), "utf8"));
      expect(result.ok, where).toBe(true);
      expect(result.manifest, where).toBe(latest().id);
      expect(existsSync(rig.env.COOP_DRILL_DIR), where).toBe(false);
      expect(await lockIsFree(rig, "drill")).toBe(true);
      expect(await settledStrays(rig.dir, [rig.pg.dataDir]), where).toEqual([]);
      expect(await resticLocks(), `${where}: restic locks left`).toEqual([]);
      expect(tempLeftovers(rig.env.COOP_STATE_DIR).concat(tempLeftovers(rig.env.COOP_DRILL_RESULTS_DIR)), where).toEqual([]);
    }
    console.log(summary("drill.sh", plan.seed, KILLS, reruns, 0, 0));
    expect(reruns.every((n) => n === 1), `re-runs needed: ${reruns.join(",")}`).toBe(true);
  }, 1_500_000);

  it(`restore.sh: ${KILLS} seeded random kills (latest and the named restore point), every row and media file comes back`, async () => {
    const baseline = restoreAt("restore-baseline", "latest");
    const first = await runGroup("restore.sh", baseline.env, { boundMs: 300_000 });
    ok({ ...first, stdout: first.output, stderr: "" }, "baseline restore");
    await removeRestore(baseline.dir);
    const plan = killPlan("restore.sh");
    const reruns: number[] = [];
    let lost = 0;
    for (let k = 0; k < KILLS; k++) {
      const target = k % 2 === 0 ? "latest" : `name:${latest().restorePoint}`;
      const r = restoreAt(`restore-kill-${k}`, target);
      const at = plan.next(first.ms);
      const where = `restore kill ${k + 1} (${target}) at ${at} ms (seed ${plan.seed}; replay with COOP_KILL_SEED=${BASE_SEED})`;
      const killed = await runGroup("restore.sh", r.env, { killAtMs: at, boundMs: 300_000 });
      console.log(`${where}: ${killed.killed ? "killed" : `finished first (exit ${killed.code})`}; last line: ${killed.output.trimEnd().split("\n").pop()}`);
      if (!killed.killed) expect(killed.code, `${where}\n${killed.output.slice(-2000)}`).toBe(0);
      const c = await converge("restore.sh", r.env, Math.max(3 * first.ms, 120_000));
      reruns.push(c.reruns);
      const digests = await psqlAt(rig.pg.binDir, join(r.dir, "sock"), r.port, rig.database, TABLE_DIGESTS_SQL);
      if (digests !== sourceDigests) lost++;
      expect(digests, where).toBe(sourceDigests);
      expect(treeHashes(join(r.dir, "files", latest().media.dir)), where).toEqual(sourceMedia);
      expect(readFileSync(join(r.dir, "redis", "dump.rdb")).subarray(0, 5).toString()).toBe("REDIS");
      expect(existsSync(`${r.data}.coop-restore`), where).toBe(false);
      expect(await lockIsFree(rig, "restore")).toBe(true);
      // The restored cluster is the product and runs; nothing else of the killed run may.
      expect(await settledStrays(rig.dir, [rig.pg.dataDir, r.data]), where).toEqual([]);
      expect(await resticLocks(), `${where}: restic locks left`).toEqual([]);
      expect(tempLeftovers(rig.env.COOP_STATE_DIR).concat(tempLeftovers(r.dir).filter((p) => !p.includes(`${r.dir}/data/`) && !p.includes(`${r.dir}/files/`))), where).toEqual([]);
      await removeRestore(r.dir);
    }
    console.log(summary("restore.sh", plan.seed, KILLS, reruns, lost, 0));
    expect(reruns.every((n) => n === 1), `re-runs needed: ${reruns.join(",")}`).toBe(true);
  }, 1_500_000);
});
