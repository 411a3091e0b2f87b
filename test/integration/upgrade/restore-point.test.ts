// upgrade-app.sh's two restore points (scripts/lib/restore-point*.sh) against real PostgreSQL, pgBackRest
// and nginx: auto picks the copy up to COOP_RESTORE_POINT_COPY_MAX_MB and the WAL restore point above it,
// saying which and why; with the WAL restore point no copy is made, and a failing migration, a failing
// health check and a kill anywhere in the rollback each end with the cluster restored by pgBackRest to
// the restore point: the same migrations, schema and table digests as before the upgrade.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FAILING_HEALTH, FAILING_MIGRATION } from "../../fixtures/app/make-repo";
import { startAppRig, SCRIPTS_DIR, type AppRig } from "../../fixtures/app/rig";
import { enableBackRest } from "./backrest";
import { currentRelease, lockIsFree, maintenanceOn, ok, picture, servedVersion, strayDatabases, writeRows } from "./support";

let rig: AppRig;
beforeAll(async () => {
  rig = await startAppRig();
  await rig.deploy("v1.0.0");
  await writeRows(rig, "v100");
  rig.recordDrill(true);
  const backrest = await enableBackRest(rig);
  await backrest.fullBackup();
  // Rows written after the backup: the rollback must replay them from archived WAL.
  await writeRows(rig, "after-backup");
});
afterAll(async () => {
  await rig?.stop();
});

/** Above the threshold for this small database: auto must choose the WAL restore point. */
const WAL = { COOP_RESTORE_POINT_COPY_MAX_MB: "0" };

async function expectRolledBack(before: Awaited<ReturnType<typeof picture>>): Promise<void> {
  const after = await picture(rig);
  expect(after.migrations).toBe(before.migrations);
  expect(after.schema).toBe(before.schema);
  expect(after.rows).toBe(before.rows);
  expect(await rig.sql("select count(*) from information_schema.tables where table_name = 'polls'")).toBe("0");
  expect(currentRelease(rig)).toBe("v1.2.0");
  expect(await servedVersion(rig)).toBe("v1.2.0");
  expect(maintenanceOn(rig)).toBe(false);
  expect(await strayDatabases(rig)).toBe("");
  expect(await lockIsFree(rig, "upgrade-app")).toBe(true);
  expect(existsSync(join(rig.env.COOP_STATE_DIR, "upgrade-app.journal"))).toBe(false);
  // The restored cluster archives again (a later rollback or backup depends on it).
  expect(await rig.pg.psql("select pg_is_in_recovery()::text || ' ' || current_setting('archive_mode')")).toBe("false on");
}

describe("upgrade-app.sh restore points", () => {
  it("auto copies a database at or under COOP_RESTORE_POINT_COPY_MAX_MB and says why", async () => {
    const r = ok(await rig.script("upgrade-app.sh", ["v1.1.0"]), "upgrade to v1.1.0");
    expect(r.output).toMatch(/restore point: copy of the database, because the database \(\d+ MB\) is at most COOP_RESTORE_POINT_COPY_MAX_MB=2048/);
    expect(r.output).toContain("restore point: database app_production_restore_point");
    expect(await servedVersion(rig)).toBe("v1.1.0");
  });

  it("above the threshold auto takes a WAL restore point: no copy, its segment archived, the upgrade lands", async () => {
    const archivedBefore = await rig.pg.psql("select archived_count from pg_stat_archiver");
    const r = ok(await rig.script("upgrade-app.sh", ["v1.2.0"], WAL), "upgrade to v1.2.0");
    expect(r.output).toMatch(/restore point: WAL restore point \+ pgBackRest delta restore on rollback, because the database \(\d+ MB\) is above COOP_RESTORE_POINT_COPY_MAX_MB=0/);
    expect(r.output).toMatch(/restore point: WAL restore point upgrade-v1\.2\.0-\d{8}T\d{6}Z \(segment [0-9A-F]{24} archived/);
    expect(r.output).not.toContain("app_production_restore_point");
    expect(Number(await rig.pg.psql("select archived_count from pg_stat_archiver"))).toBeGreaterThan(Number(archivedBefore));
    expect(await servedVersion(rig)).toBe("v1.2.0");
    expect(await strayDatabases(rig)).toBe("");
  });

  it("COOP_RESTORE_POINT=wal refuses without archiving, before touching anything", async () => {
    await rig.pg.psql("alter system set archive_mode = off");
    await rig.pg.pgCtl(["restart", "-m", "fast"]);
    try {
      const r = await rig.script("upgrade-app.sh", ["v1.3.0"], { COOP_RESTORE_POINT: "wal" });
      expect(r.code).not.toBe(0);
      expect(r.output).toContain("COOP_RESTORE_POINT=wal, but WAL is not archived (archive_mode=off)");
      expect(r.output).toContain("nothing was changed");
      // auto falls back to the copy and says why.
      const dry = await rig.bash(`source ${SCRIPTS_DIR}/lib/restore-point.sh; source ${SCRIPTS_DIR}/lib/restore-point-wal.sh
        restore_point_env_defaults; COOP_RESTORE_POINT_COPY_MAX_MB=0; choose_restore_point; echo "chose=\${RESTORE_MECHANISM}"`);
      expect(dry.output).toContain("chose=copy");
      expect(dry.output).toMatch(/copy of the database, because the database \(\d+ MB\) is above COOP_RESTORE_POINT_COPY_MAX_MB=0, but WAL is not archived/);
    } finally {
      await rig.pg.psql("alter system set archive_mode = on");
      await rig.pg.pgCtl(["restart", "-m", "fast"]);
    }
    expect(await servedVersion(rig)).toBe("v1.2.0");
  });

  it("the free-space check follows the mechanism: the copy needs the database's size again, the WAL point does not", async () => {
    const r = await rig.bash(`source ${SCRIPTS_DIR}/lib/upgrade.sh
      COOP_MIN_FREE_MB=64
      size_mb=$(pg_sql "select pg_database_size(current_database()) / 1048576")
      mb_free() { echo $((size_mb + 63)); }
      RESTORE_MECHANISM=wal; check_disk; echo "wal: enough"
      RESTORE_MECHANISM=copy; check_disk; echo "copy: enough"`);
    expect(r.output).toContain("wal: enough");
    expect(r.output).toMatch(/the restore point copies the database \(\d+ MB\) but .* has \d+ MB free/);
    expect(r.output).not.toContain("copy: enough");
    expect(r.code).not.toBe(0);
  });

  for (const [tag, failingStep] of [
    [FAILING_MIGRATION, "migrate_pre"],
    [FAILING_HEALTH, "health"],
  ] as const) {
    it(`${tag} fails at ${failingStep}: pgBackRest restores the cluster to the WAL restore point, digests identical`, async () => {
      await writeRows(rig, `before-${tag}`);
      const before = await picture(rig);
      const r = await rig.script("upgrade-app.sh", [tag], { ...WAL, COOP_HEALTH_TIMEOUT: "3" });
      expect(r.code, r.output).toBe(1);
      expect(r.output).toContain(`upgrade to ${tag} failed at step ${failingStep}; rolled back to v1.2.0`);
      expect(r.output).toMatch(/back at the restore point \(pgBackRest delta restore \+ WAL replay in \d+\.\ds\)/);
      await expectRolledBack(before);
      await writeRows(rig, `after-${tag}`, 1);
    });
  }

  it("a failure before the migrations restores nothing: the database never changed", async () => {
    await writeRows(rig, "before-stop-failure");
    const before = await picture(rig);
    // Killed as migrate_pre begins (the restore point taken, nothing migrated), then run for another tag.
    const killed = await rig.script("upgrade-app.sh", [FAILING_MIGRATION], { ...WAL, FAULT_AT: "migrate_pre" });
    expect(killed.signal).toBe("SIGKILL");
    const other = await rig.script("upgrade-app.sh", [FAILING_HEALTH], WAL);
    expect(other.code).toBe(1);
    expect(other.output).toContain("the migrations never started");
    expect(other.output).not.toContain("pgBackRest delta restore + WAL replay");
    await expectRolledBack(before);
  });

  for (const point of ["stop", "restore", "start"]) {
    it(`killed in the WAL rollback at ${point}: a re-run finishes the rollback, digests identical`, async () => {
      await writeRows(rig, `kill-rollback-${point}`);
      const before = await picture(rig);
      const killed = await rig.script("upgrade-app.sh", [FAILING_MIGRATION], { ...WAL, FAULT_AT: `rollback_${point}` });
      expect(killed.signal, killed.output.slice(-2000)).toBe("SIGKILL");
      expect(maintenanceOn(rig)).toBe(true);
      const rerun = await rig.script("upgrade-app.sh", [FAILING_MIGRATION], WAL);
      expect(rerun.code, rerun.output).toBe(1);
      expect(rerun.output).toContain("was interrupted: finishing it");
      expect(rerun.output).toContain(`rolled back the interrupted upgrade to ${FAILING_MIGRATION}`);
      await expectRolledBack(before);
    });
  }
});
