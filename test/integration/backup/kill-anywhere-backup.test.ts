// backup.sh with its whole process group SIGKILLed at seeded random moments (not only between steps),
// the daily drill run while the backup lies killed, then backup.sh re-run until it succeeds. Holds:
// the drill still verifies the last published backup, the re-run converges within a bound (no manual
// unlock, no timeout waited out), the published manifest holds every row, no process or temp file of
// the killed run is left, and the final backup restores with every table digest and media hash.
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackupRig } from "../../../src/local/backup-rig";
import { psqlAt } from "../../../src/local/postgres";
import { BASE_SEED, converge, killPlan, runGroup, settledStrays, summary, tempLeftovers } from "./random-kills";
import { TABLE_DIGESTS_SQL, lockIsFree, ok, restic, rigWithInstance, treeHashes } from "./rig-support";

const KILLS = 3;
let rig: BackupRig;
let baselineMs = 0;
beforeAll(async () => {
  rig = await rigWithInstance(11);
  ok(await rig.script("backup.sh"), "first (full) backup");
  // The killed runs are differential backups, like this one: their kill moments spread over its duration.
  const second = await runGroup("backup.sh", rig.env, { boundMs: 300_000 });
  ok({ ...second, stdout: second.output, stderr: "" }, "second backup");
  baselineMs = second.ms;
}, 400_000);
afterAll(async () => {
  await rig?.stop();
});

const latest = () => JSON.parse(readFileSync(join(rig.env.COOP_SPOOL_DIR, "manifests", "latest.json"), "utf8"));

describe("backup.sh killed at random moments", () => {
  it(`${KILLS} seeded random kills: the drill between passes, each re-run converges, nothing is lost or left`, async () => {
    const plan = killPlan("backup.sh");
    const reruns: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      await rig.sql(`insert into tags (id, name, created_at, updated_at) values (${9500 + k}, 'random-kill-${k}', now(), now())`);
      const published = latest();
      const at = plan.next(baselineMs);
      const killed = await runGroup("backup.sh", rig.env, { killAtMs: at, boundMs: 300_000 });
      const where = `kill ${k + 1} at ${at} ms (seed ${plan.seed}; replay with COOP_KILL_SEED=${BASE_SEED})`;
      console.log(`${where}: ${killed.killed ? "killed" : `finished first (exit ${killed.code})`}; last line: ${killed.output.trimEnd().split("\n").pop()}`);
      if (!killed.killed) expect(killed.code, `${where}\n${killed.output.slice(-2000)}`).toBe(0);

      // The daily drill may run before the next backup: it verifies what was last published.
      const drill = await converge("drill.sh", rig.env, 240_000, 1);
      expect(drill.reruns).toBe(1);
      const result = JSON.parse(readFileSync(join(rig.env.COOP_DRILL_RESULTS_DIR, "last.json"), "utf8"));
      expect(result.ok, where).toBe(true);
      // The last published manifest, or the killed run's if it reached restic (ids sort by time).
      expect(result.manifest >= published.id, `${where}: drill verified ${result.manifest}, published ${published.id}`).toBe(true);

      const c = await converge("backup.sh", rig.env, Math.max(3 * baselineMs, 120_000));
      reruns.push(c.reruns);
      const m = latest();
      expect(m.tables.tags, where).toBe(Number(await rig.sql("select count(*) from tags")));
      expect(m.tables.statuses, where).toBe(Number(await rig.sql("select count(*) from statuses")));
      expect(await lockIsFree(rig, "backup")).toBe(true);
      expect(await settledStrays(rig.dir, [rig.pg.dataDir]), where).toEqual([]);
      expect(tempLeftovers(rig.env.COOP_SPOOL_DIR).concat(tempLeftovers(rig.env.COOP_STATE_DIR)), where).toEqual([]);
      const locks = await restic(rig, ["--no-lock", "list", "locks"]);
      expect(locks.stdout.trim(), `${where}: restic locks left`).toBe("");
    }
    console.log(summary("backup.sh", plan.seed, KILLS, reruns, 0, 0));
    expect(reruns.every((n) => n === 1), `re-runs needed: ${reruns.join(",")}`).toBe(true);
  }, 1_800_000);

  it("the backup left by the kills restores to its restore point with every table digest and media hash", async () => {
    const digests = await rig.sql(TABLE_DIGESTS_SQL);
    const m = latest();
    const dir = join(rig.dir, "restore-after-random-kills");
    const port = rig.pg.port + 20;
    await converge(
      "restore.sh",
      {
        ...rig.env,
        COOP_RESTORE_TARGET: `name:${m.restorePoint}`,
        COOP_RESTORE_PG_DATA: join(dir, "data"),
        COOP_RESTORE_PORT: String(port),
        COOP_RESTORE_SOCKET: join(dir, "sock"),
        COOP_RESTORE_FILES_TO: join(dir, "files"),
      },
      180_000,
      1,
    );
    expect(await psqlAt(rig.pg.binDir, join(dir, "sock"), port, rig.database, TABLE_DIGESTS_SQL)).toBe(digests);
    expect(treeHashes(join(dir, "files", m.media.dir))).toEqual(treeHashes(rig.mediaDir));
    const { run } = await import("../../../src/local/run");
    await run("runuser", ["-u", rig.env.COOP_PG_OS_USER, "--", join(rig.pg.binDir, "pg_ctl"), "-D", join(dir, "data"), "-m", "fast", "-w", "stop"], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  }, 300_000);
});
