// restore.sh and drill.sh killed with SIGKILL at each of their steps, each kill followed by a re-run:
// they converge, nothing is lost, and no scratch cluster, folder or lock is left behind.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackupRig } from "../../../src/local/backup-rig";
import { psqlAt } from "../../../src/local/postgres";
import { TABLE_DIGESTS_SQL, lockIsFree, ok, processesUsing, rigWithInstance, stepsOf } from "./rig-support";

let rig: BackupRig;
let sourceDigests = "";
beforeAll(async () => {
  rig = await rigWithInstance(4);
  ok(await rig.script("backup.sh"), "backup");
  sourceDigests = await rig.sql(TABLE_DIGESTS_SQL);
});
afterAll(async () => {
  await rig?.stop();
});

describe("restore.sh under kill -9", () => {
  const steps = stepsOf("restore.sh");
  it("declares the steps this test kills it at", () => {
    expect(steps).toEqual(["preflight", "database", "start", "files", "redis", "finish"]);
  });

  // One restore, killed at each step in turn: every re-run resumes the killed one (and is killed at the
  // next step), so each step's kill is followed by a re-run, at the cost of one restore.
  const dir = () => join(rig.dir, "restore-chain");
  const env = () => ({
    COOP_RESTORE_PG_DATA: join(dir(), "data"),
    COOP_RESTORE_PORT: String(rig.pg.port + 10),
    COOP_RESTORE_SOCKET: join(dir(), "sock"),
    COOP_RESTORE_FILES_TO: join(dir(), "files"),
    COOP_RESTORE_REDIS_RDB: join(dir(), "redis", "dump.rdb"),
  });
  for (const [i, step] of steps.entries()) {
    it(`killed at "${step}"${i > 0 ? ` (re-run after the kill at "${steps[i - 1]}")` : ""}: no lock is left`, async () => {
      const killed = await rig.script("restore.sh", { ...env(), FAULT_AT: step });
      expect(killed.signal, killed.output.slice(-2000)).toBe("SIGKILL");
      if (i > 0) expect(killed.output).toMatch(/resuming interrupted 'restore' run/);
      expect(await lockIsFree(rig, "restore")).toBe(true);
    });
  }
  it(`the re-run after the kill at "${steps[steps.length - 1]}" finishes the same restore with every row back`, async () => {
    ok(await rig.script("restore.sh", env()), "re-run after the last kill");
    expect(await psqlAt(rig.pg.binDir, join(dir(), "sock"), rig.pg.port + 10, rig.database, TABLE_DIGESTS_SQL)).toBe(sourceDigests);
    expect(existsSync(join(dir(), "redis", "dump.rdb"))).toBe(true);
    expect(existsSync(`${join(dir(), "data")}.coop-restore`)).toBe(false);
    expect(await lockIsFree(rig, "restore")).toBe(true);
    await stopCluster(join(dir(), "data"));
    rmSync(dir(), { recursive: true, force: true });
  });

  it("refuses to restore over a directory that holds something else", async () => {
    const r = await rig.script("restore.sh", { COOP_RESTORE_PG_DATA: rig.pg.dataDir });
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(/is not empty and holds no restore of ours/);
    expect(await rig.sql("select 1")).toBe("1");
  });
});

describe("drill.sh under kill -9", () => {
  const steps = stepsOf("drill.sh");
  it("declares the steps this test kills it at", () => {
    expect(steps).toEqual(["prepare", "fetch", "restore", "replay", "verify", "report"]);
  });

  // Every drill is a run of its own (its TTR is measured whole): a kill is followed by a whole new drill.
  for (const step of steps) {
    it(`killed at "${step}", a re-run passes and leaves no scratch cluster, folder or lock`, async () => {
      const killed = await rig.script("drill.sh", { FAULT_AT: step });
      expect(killed.signal, killed.output.slice(-2000)).toBe("SIGKILL");
      ok(await rig.script("drill.sh"), `re-run after a kill at ${step}`);
      const result = JSON.parse(readFileSync(join(rig.env.COOP_DRILL_RESULTS_DIR, "last.json"), "utf8"));
      expect(result.ok).toBe(true);
      expect(existsSync(rig.env.COOP_DRILL_DIR)).toBe(false);
      expect(await processesUsing(rig.env.COOP_DRILL_DIR)).toEqual([]);
      expect(await lockIsFree(rig, "drill")).toBe(true);
    });
  }
});

async function stopCluster(dataDir: string): Promise<void> {
  const { run } = await import("../../../src/local/run");
  await run("runuser", ["-u", rig.env.COOP_PG_OS_USER, "--", join(rig.pg.binDir, "pg_ctl"), "-D", dataDir, "-m", "fast", "-w", "stop"], { allowFailure: true });
}
