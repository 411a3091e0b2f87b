// upgrade-app.sh against real PostgreSQL, real nginx and the fixture app: a good upgrade lands and is
// served through nginx; a failing migration and a failing health check each roll back to the previous
// release with every row written before the upgrade and the previous release's schema; preflight
// refuses without a recent passing drill, without disk space, and while another operation runs.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FAILING_HEALTH, FAILING_MIGRATION } from "../../fixtures/app/make-repo";
import { startAppRig, type AppRig } from "../../fixtures/app/rig";
import { currentRelease, lockIsFree, maintenanceOn, ok, picture, servedVersion, strayDatabases, writeRows } from "./support";

let rig: AppRig;
beforeAll(async () => {
  rig = await startAppRig();
  await rig.deploy("v1.0.0");
  await writeRows(rig, "v100");
  rig.recordDrill(true);
});
afterAll(async () => {
  await rig?.stop();
});

describe("upgrade-app.sh", () => {
  it("a good upgrade runs pre and post migrations, lands and serves the new version through nginx", async () => {
    expect(await servedVersion(rig)).toBe("v1.0.0");
    const r = ok(await rig.script("upgrade-app.sh", ["v1.1.0"]), "upgrade to v1.1.0");
    expect(await servedVersion(rig)).toBe("v1.1.0");
    expect((await rig.get("/robots.txt")).body).toContain("fixture v1.1.0");
    expect(await rig.sql("select string_agg(version, ' ' order by version) from schema_migrations")).toBe("20240101000001 20240201000001 20240201000002");
    // The post-deployment migration (drop legacy_flag) ran, after the pre-deployment one.
    expect(await rig.sql("select count(*) from information_schema.columns where table_name = 'statuses' and column_name = 'legacy_flag'")).toBe("0");
    expect(await rig.sql("select count(*) from statuses where text like 'post by v100-%'")).toBe("20");
    expect(maintenanceOn(rig)).toBe(false);
    expect(await strayDatabases(rig)).toBe("");
    expect(await lockIsFree(rig, "upgrade-app")).toBe(true);
    for (const s of ["preflight", "restore_point", "migrate_pre", "health", "migrate_post", "maintenance_off"]) expect(r.output).toMatch(new RegExp(`step \\d+/13 ${s} done in \\d+\\.\\ds`));

    // After the post-deployment migrations web restarts too (it loaded the schema before them).
    const last = readFileSync(join(rig.env.COOP_STATE_DIR, "upgrade-app.logs", "maintenance_off.log"), "utf8");
    expect(last).toMatch(/stopped web[\s\S]*started web[\s\S]*started streaming/);
  });

  it("the target passed as COOP_TARGET_TAG works too, and a re-run on the current release does nothing", async () => {
    ok(await rig.script("upgrade-app.sh", [], { COOP_TARGET_TAG: "v1.2.0" }), "upgrade to v1.2.0");
    expect(await servedVersion(rig)).toBe("v1.2.0");
    const again = ok(await rig.script("upgrade-app.sh", ["v1.2.0"]), "re-run on v1.2.0");
    expect(again.output).toContain("already the current release");
  });

  it("refuses a downgrade and an unknown tag before touching anything", async () => {
    const down = await rig.script("upgrade-app.sh", ["v1.0.0"]);
    expect(down.code).not.toBe(0);
    expect(down.output).toContain("older than the current release v1.2.0");
    const unknown = await rig.script("upgrade-app.sh", ["v9.9.9"]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.output).toContain("release tag v9.9.9 is not in the app's repository");
    expect(await servedVersion(rig)).toBe("v1.2.0");
    expect(existsSync(join(rig.env.COOP_STATE_DIR, "upgrade-app.state"))).toBe(false);
  });

  it("as a hop of the upgrade chain (COOP_SKIP_OLDER=1), a series already left behind is done, not refused", async () => {
    const hop = ok(await rig.script("upgrade-app.sh", ["v1.0.0"], { COOP_SKIP_OLDER: "1" }), "older hop");
    expect(hop.output).toContain("v1.0.0 is older than the current release v1.2.0: this hop has nothing to do");
    expect(await servedVersion(rig)).toBe("v1.2.0");
  });

  it("refuses without a recent passing drill, without free disk, and while another operation runs", async () => {
    rig.recordDrill(true, 30);
    let r = await rig.script("upgrade-app.sh", ["v1.3.0"]);
    expect(r.output).toMatch(/last passing restore drill finished 30 hours ago/);
    rig.recordDrill(false);
    r = await rig.script("upgrade-app.sh", ["v1.3.0"]);
    expect(r.output).toContain("the last restore drill failed (verify: row counts differ)");
    // The chain hands over the repository host's result; a failed one there refuses too.
    const failed = JSON.stringify({ ok: false, finishedAt: new Date().toISOString(), reason: "restore: pgBackRest restore failed" });
    r = await rig.script("upgrade-app.sh", ["v1.3.0"], { COOP_DRILL_RESULT_JSON: failed });
    expect(r.output).toContain("the last restore drill failed (restore: pgBackRest restore failed)");
    rig.recordDrill(true);
    r = await rig.script("upgrade-app.sh", ["v1.3.0"], { COOP_MIN_FREE_MB: "999999999" });
    expect(r.output).toMatch(/MB free under .*COOP_MIN_FREE_MB asks for 999999999 MB/);
    // A backup holding its lock, as backup.sh does for its whole run.
    const lock = join(rig.env.COOP_STATE_DIR, "backup.lock");
    const holder = spawn("bash", ["-c", `exec 9>>"${lock}"; flock 9; echo 4242 > "${lock}"; exec sleep 30`], { stdio: "ignore" });
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      // Alpha has no backups of its own: the chain turns the drill check off there, and it says so.
      rig.recordDrill(false);
      r = await rig.script("upgrade-app.sh", ["v1.3.0"], { COOP_REQUIRE_DRILL: "0" });
      expect(r.output).toContain("no restore drill required (COOP_REQUIRE_DRILL=0");
      expect(r.output).toContain("backup is running (pid 4242)");
      rig.recordDrill(true);
      r = await rig.script("upgrade-app.sh", ["v1.3.0"]);
      expect(r.output).toContain("backup is running (pid 4242)");
    } finally {
      holder.kill("SIGKILL");
    }
    expect(r.code).not.toBe(0);
    expect(r.output).toContain("nothing was changed");
    expect(await servedVersion(rig)).toBe("v1.2.0");
    expect(maintenanceOn(rig)).toBe(false);
  });

  // v1.3.0's log shows the first migration (new column, rewritten rows) committed before the second one
  // failed after creating a table outside a transaction: the rollback has real changes to undo.
  for (const [tag, failingStep, evidence] of [
    [FAILING_MIGRATION, "migrate_pre", ["migrating 20240401000001_add_display_name", "migrating 20240401000002_create_polls", "division by zero"]],
    [FAILING_HEALTH, "health", ["did not pass its health check", "returned error: 500"]],
  ] as const) {
    it(`${tag} fails at ${failingStep}: rolled back to v1.2.0 with every row and the v1.2.0 schema`, async () => {
      await writeRows(rig, `before-${tag}`);
      const before = await picture(rig);
      const r = await rig.script("upgrade-app.sh", [tag], { COOP_HEALTH_TIMEOUT: "3" });
      expect(r.code, r.output).toBe(1);
      expect(r.output).toContain(`upgrade to ${tag} failed at step ${failingStep}; rolled back to v1.2.0`);
      for (const line of evidence) expect(r.output).toContain(line);
      // The failing step's log tail is in the message.
      expect(r.output).toContain(`last lines of ${join(rig.env.COOP_STATE_DIR, "upgrade-app.logs", `${failingStep}.log`)}`);
      const after = await picture(rig);
      expect(after.migrations).toBe(before.migrations);
      expect(after.schema).toBe(before.schema);
      expect(after.rows).toBe(before.rows);
      expect(await rig.sql("select count(*) from information_schema.tables where table_name = 'polls'")).toBe("0");
      expect(currentRelease(rig)).toBe("v1.2.0");
      expect(await servedVersion(rig)).toBe("v1.2.0");
      expect((await rig.get("/health")).status).toBe(200);
      expect(maintenanceOn(rig)).toBe(false);
      expect(await strayDatabases(rig)).toBe("");
      expect(existsSync(join(rig.env.COOP_STATE_DIR, "upgrade-app.state"))).toBe(false);
      expect(existsSync(join(rig.env.COOP_STATE_DIR, "upgrade-app.journal"))).toBe(false);
      // The app writes again after the rollback.
      await writeRows(rig, `after-${tag}`, 1);
    });
  }
});
