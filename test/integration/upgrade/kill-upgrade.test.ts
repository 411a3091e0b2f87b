// upgrade-app.sh killed with SIGKILL at each of its steps (FAULT_AT), then re-run: it converges to the
// new release, every row written before the upgrade is there, the lock is free, no restore-point copy
// or journal is left, and maintenance is off (it stays on between the kill and the re-run, on purpose).
// Once with each restore point: the database copy, and the WAL restore point (pgBackRest underneath,
// the rollback of an interrupted run a delta restore).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAppRig, type AppRig } from "../../fixtures/app/rig";
import { enableBackRest } from "./backrest";
import { currentRelease, lockIsFree, maintenanceOn, MIGRATIONS_SQL, ok, servedVersion, stepsOf, strayDatabases, writeRows } from "./support";

const STEPS = stepsOf("upgrade-app.sh");

/**
 * The rows users wrote, over the columns every release has (these releases add columns), and with the
 * suffix that v1.3.0's fixed migration, part of every v2 release, appends to each status on purpose.
 */
const USER_ROWS_SQL = `select md5((select coalesce(string_agg(id || ':' || username, ',' order by id), '') from accounts) ||
  (select coalesce(string_agg(id || ':' || account_id || ':' || replace(text, ' [edited by v1.3.0]', ''), ',' order by id), '') from statuses))`;

let rig: AppRig;

async function expectConverged(target: string): Promise<void> {
  expect(currentRelease(rig)).toBe(target);
  expect(await servedVersion(rig)).toBe(target);
  expect(maintenanceOn(rig)).toBe(false);
  expect(await lockIsFree(rig, "upgrade-app")).toBe(true);
  expect(await strayDatabases(rig)).toBe("");
  expect(existsSync(join(rig.env.COOP_STATE_DIR, "upgrade-app.state"))).toBe(false);
  expect(existsSync(join(rig.env.COOP_STATE_DIR, "upgrade-app.journal"))).toBe(false);
}

for (const mechanism of ["copy", "wal"] as const) describe(`upgrade-app.sh under kill -9, restore point: ${mechanism}`, () => {
  beforeAll(async () => {
    rig = await startAppRig({ extraReleases: STEPS.length + 2 });
    await rig.deploy("v1.2.0");
    rig.recordDrill(true);
    if (mechanism === "wal") {
      await (await enableBackRest(rig)).fullBackup();
    }
    // The rig's scripts read this object: every run below uses this restore point.
    Object.assign(rig.env as Record<string, string>, { COOP_RESTORE_POINT: mechanism });
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it("declares the steps this test kills it at", () => {
    expect(STEPS).toEqual([
      "preflight", "fetch", "build", "maintenance", "stop", "restore_point", "switch",
      "migrate_pre", "start", "health", "migrate_post", "maintenance_off", "cleanup",
    ]);
  });

  for (const [i, step] of STEPS.entries()) {
    it(`killed at "${step}", a re-run converges on the new release with nothing lost`, async () => {
      const target = rig.repo.extraTags[i];
      await writeRows(rig, `kill-${step}`, 5);
      const rows = await rig.sql(USER_ROWS_SQL);
      const killed = await rig.script("upgrade-app.sh", [target], { FAULT_AT: step });
      expect(killed.signal, killed.output.slice(-2000)).toBe("SIGKILL");
      const inMaintenance = i > STEPS.indexOf("maintenance") && i <= STEPS.indexOf("maintenance_off");
      expect(maintenanceOn(rig)).toBe(inMaintenance);
      if (inMaintenance) {
        // Nobody can open the site over the half-done upgrade by mistake.
        expect((await rig.script("maintenance.sh", ["off"])).code).not.toBe(0);
        expect((await rig.get("/")).status).toBe(503);
      }

      const rerun = ok(await rig.script("upgrade-app.sh", [target]), `re-run after a kill at ${step}`);
      for (const done of STEPS.slice(0, i)) expect(rerun.output).toContain(`${done}: done in an earlier run, skipping`);
      expect(rerun.output).not.toContain(`${step}: done in an earlier run`);
      await expectConverged(target);
      expect(await rig.sql(USER_ROWS_SQL)).toBe(rows);
      expect(await rig.sql(`select count(*) from accounts where username like 'kill-${step}-%'`)).toBe("5");
      expect(await rig.sql(MIGRATIONS_SQL)).toContain(`202406${String(i + 1).padStart(2, "0")}000002`);
    });
  }

  it("killed at health (migrated, not yet healthy), then run for another tag: the interrupted upgrade is rolled back first, nothing lost", async () => {
    const from = currentRelease(rig);
    const [first, second] = rig.repo.extraTags.slice(STEPS.length);
    await writeRows(rig, "other-tag", 5);
    const rows = await rig.sql(USER_ROWS_SQL);
    const migrations = await rig.sql(MIGRATIONS_SQL);
    const killed = await rig.script("upgrade-app.sh", [first], { FAULT_AT: "health" });
    expect(killed.signal).toBe("SIGKILL");
    expect(await rig.sql(MIGRATIONS_SQL)).not.toBe(migrations);

    const other = await rig.script("upgrade-app.sh", [second]);
    expect(other.code).toBe(1);
    expect(other.output).toContain(`rolled back the interrupted upgrade to ${first}`);
    if (mechanism === "wal") expect(other.output).toMatch(/back at the restore point \(pgBackRest delta restore \+ WAL replay in/);
    await expectConverged(from);
    expect(await rig.sql(MIGRATIONS_SQL)).toBe(migrations);
    expect(await rig.sql(USER_ROWS_SQL)).toBe(rows);

    ok(await rig.script("upgrade-app.sh", [second]), `upgrade to ${second} after the rollback`);
    await expectConverged(second);
    expect(await rig.sql(USER_ROWS_SQL)).toBe(rows);
  });
});
