// backup.sh killed with SIGKILL at each of its steps in turn, each kill resumed by the next run: it
// converges, nothing is lost, and no lock or half-written manifest is left behind.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackupRig } from "../../../src/local/backup-rig";
import { lockIsFree, ok, rigWithInstance, stepsOf } from "./rig-support";

let rig: BackupRig;
beforeAll(async () => {
  rig = await rigWithInstance(3);
});
afterAll(async () => {
  await rig?.stop();
});

const STEPS = stepsOf("backup.sh");

describe("backup.sh under kill -9", () => {
  it("declares the steps this test kills it at", () => {
    expect(STEPS).toEqual(["stanza", "database", "manifest", "redis", "files", "publish", "expire"]);
  });

  // One backup, killed at each step in turn: each run resumes the one killed before it, runs the step
  // that one was killed at (skipping every step finished before), and is killed at the next.
  for (const [i, step] of STEPS.entries()) {
    it(`killed at "${step}"${i > 0 ? `, after resuming the run killed at "${STEPS[i - 1]}"` : ""}`, async () => {
      // Rows written before the chain starts; none after, so the manifest (taken mid-chain) must hold them all.
      if (i === 0) await rig.sql("insert into tags (id, name, created_at, updated_at) select 9000 + n, 'kill-' || n, now(), now() from generate_series(1, 7) n");
      const killed = await rig.script("backup.sh", { FAULT_AT: step });
      expect(killed.signal, killed.output.slice(-2000)).toBe("SIGKILL");
      expect(existsSync(join(rig.env.COOP_STATE_DIR, "backup.state"))).toBe(true);
      for (const done of STEPS.slice(0, Math.max(0, i - 1))) expect(killed.output).toContain(`${done}: done in an earlier run, skipping`);
      if (i > 0) expect(killed.output).toContain(`step ${i}/${STEPS.length} ${STEPS[i - 1]} done in`);
      expect(await lockIsFree(rig, "backup")).toBe(true);
    });
  }

  it(`the re-run after the kill at "${STEPS[STEPS.length - 1]}" resumes after the finished steps and completes`, async () => {
    const last = STEPS.length - 1;
    const rerun = ok(await rig.script("backup.sh"), "re-run after the last kill");
    for (const done of STEPS.slice(0, last)) expect(rerun.output).toContain(`${done}: done in an earlier run, skipping`);
    expect(rerun.output).not.toContain(`${STEPS[last]}: done in an earlier run`);
    expect(await lockIsFree(rig, "backup")).toBe(true);
    expect(existsSync(join(rig.env.COOP_STATE_DIR, "backup.state"))).toBe(false);
    expect(existsSync(join(rig.env.COOP_SPOOL_DIR, "manifests", "pending"))).toBe(false);
    // The published manifest holds every row written before the chain, its tags included.
    const manifest = JSON.parse(readFileSync(join(rig.env.COOP_SPOOL_DIR, "manifests", "latest.json"), "utf8"));
    expect(manifest.tables.tags).toBe(Number(await rig.sql("select count(*) from tags")));
    expect(manifest.tables.statuses).toBe(Number(await rig.sql("select count(*) from statuses")));
  });

  it("the backup left by all those kills and re-runs restores and verifies in the drill", async () => {
    ok(await rig.script("drill.sh"), "drill");
    const result = JSON.parse(readFileSync(join(rig.env.COOP_DRILL_RESULTS_DIR, "last.json"), "utf8"));
    expect(result.ok).toBe(true);
    expect(result.verified.tables.tags).toBe(Number(await rig.sql("select count(*) from tags")));
  });
});
