// upgrade-postgres.sh (PostgreSQL 14 -> 15, pg_upgrade --link) with its whole process group SIGKILLed
// at seeded random moments, inside steps as well as between them, then re-run until it succeeds, each
// re-run bounded. Holds: the upgrade lands with every table digest, the drill of the new cluster
// passed, and no cluster, pg_upgrade, pgBackRest or restic process of a killed run is left.
import { spawn } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPgUpgradeRig, type PgUpgradeRig } from "../../src/local/pg-upgrade-rig";
import { generate } from "../fixtures/mastodon/generator";
import { BASE_SEED, converge, fdHolders, killPlan, runGroup, settledStrays, summary } from "./backup/random-kills";
import { lockIsFree, ok, TABLE_DIGESTS_SQL } from "./backup/rig-support";
import { waitFor } from "../../src/local/net";
import { ensureUser } from "../../src/local/users";

// Three per CI run (the suite's hour is the limit); each run draws new moments, so coverage adds up over runs.
const KILLS = 3;
/**
 * Kill moments are spread over this much of the first run (a whole upgrade here takes about a minute and
 * a half), and over 70 % less with each kill: each re-run resumes and has less left to do.
 */
const SPAN_MS = 45_000;
let u: PgUpgradeRig;

beforeAll(async () => {
  u = await startPgUpgradeRig();
  await generate({ target: { host: "127.0.0.1", port: u.rig.pg.port, db: u.rig.database }, size: "10MB", mediaDir: u.rig.mediaDir, seed: 6 });
  ok(await u.script("backup.sh"), "backup of the old cluster");
}, 240_000);

afterAll(async () => {
  await u?.stop();
});

describe("upgrade-postgres.sh killed at random moments", () => {
  it("killed while pg_upgrade --check has the new cluster running, the re-run passes the check (no rollback)", async () => {
    const pidFile = join(u.newData, "postmaster.pid");
    const killed = await runGroup("upgrade-postgres.sh", u.env, { killWhen: /pg_upgrade .*--check/, andThen: () => existsSync(pidFile), boundMs: 300_000 });
    expect(killed.killed, killed.output.slice(-2000)).toBe(true);
    expect(u.postmasterPid(u.newData), "the kill left the new cluster running").toBeDefined();
    // Stop at the next step boundary: the check must have passed on the re-run.
    const rerun = await runGroup("upgrade-postgres.sh", { ...u.env, FAULT_AT: "backup_old" }, { boundMs: 300_000 });
    expect(rerun.output).toContain("check done in");
    expect(rerun.output).not.toContain("rolled back");
    expect(rerun.signal, rerun.output.slice(-2000)).toBe("SIGKILL");
  }, 600_000);

  it("servers of the new cluster left by a kill (one running, one still starting) are stopped before pg_upgrade, and a rollback before the switch gives the old cluster back", async () => {
    const toUpgrade = await runGroup("upgrade-postgres.sh", { ...u.env, FAULT_AT: "upgrade" }, { boundMs: 300_000 });
    expect(toUpgrade.signal, toUpgrade.output.slice(-2000)).toBe("SIGKILL");
    // What a kill of pg_upgrade --check leaves: its server of the new cluster in a session of its own,
    // and one that pg_ctl had forked but not yet exec'd (it writes postmaster.pid only seconds later).
    const pgUser = u.rig.pg.osUser;
    const sockets = mkdtempSync(join(tmpdir(), "coop-orphan-"));
    const { uid, gid } = await ensureUser(pgUser);
    chownSync(sockets, uid, gid);
    const server = `${u.newBin}/postgres -D "${u.newData}" -p ${u.rig.pg.port + 3} -k ${sockets} -c listen_addresses=`;
    const detached = (cmd: string) => spawn("runuser", ["-u", pgUser, "--", "setsid", "sh", "-c", cmd], { detached: true, stdio: "ignore" });
    detached(`exec ${server}`);
    await waitFor("the left-over server of the new cluster to start", () => u.postmasterPid(u.newData) !== undefined, 30_000);
    const starting = detached(`sleep 6; exec ${server}`);
    try {
      const rerun = await runGroup("upgrade-postgres.sh", { ...u.env, FAULT_AT: "switch" }, { boundMs: 300_000 });
      expect(rerun.output).toContain("that no postmaster.pid named");
      expect(rerun.output, rerun.output.slice(-3000)).toContain("upgrade done in");
      expect(rerun.signal, rerun.output.slice(-2000)).toBe("SIGKILL");
      // The one that was still starting never comes up (it would take the new cluster from pg_upgrade).
      await new Promise((r) => setTimeout(r, 7_000));
      expect(u.postmasterPid(u.newData), "a server of the new cluster runs after the re-run").toBeUndefined();
      expect(starting.exitCode !== null || starting.signalCode !== null, "the shell that was starting a server has ended").toBe(true);
    } finally {
      starting.kill("SIGKILL");
      rmSync(sockets, { recursive: true, force: true });
    }
    // Before the point of no return the old cluster comes back whole; the random kills start from it.
    ok(await u.script("upgrade-postgres.sh", {}, ["rollback"]), "rollback after pg_upgrade");
    expect(u.linkTarget()).toBe(u.oldData);
    expect(await u.sql("show server_version_num")).toMatch(new RegExp(`^${u.oldMajor}`));
    expect(existsSync(u.newData)).toBe(false);
  }, 600_000);

  it(`${KILLS} seeded random kills, each re-run resumes, and the upgrade lands with every row and a passing drill`, async () => {
    const digests = await u.sql(TABLE_DIGESTS_SQL);
    const plan = killPlan("upgrade-postgres.sh");
    const outcomes: string[] = [];
    let kills = 0;
    let finished = false;
    let span = SPAN_MS;
    while (kills < KILLS) {
      const at = plan.next(span);
      span = Math.max(5_000, Math.floor(span * 0.7));
      const r = await runGroup("upgrade-postgres.sh", u.env, { killAtMs: at, boundMs: 600_000 });
      const last = r.output.trimEnd().split("\n").filter((l) => l.includes(" step ")).pop() ?? "";
      if (!r.killed) {
        expect(r.code, `run after ${kills} kills (replay with COOP_KILL_SEED=${BASE_SEED}):\n${r.output.slice(-3000)}`).toBe(0);
        outcomes.push(`finished before ${at} ms`);
        finished = true;
        break;
      }
      kills++;
      outcomes.push(`killed at ${at} ms in: ${last}`);
      console.log(`upgrade kill ${kills} at ${at} ms (seed ${plan.seed}): ${last}`);
      // Nothing of the killed run holds the operation's lock (processes outside the group included).
      const lock = join(u.env.COOP_STATE_DIR, "upgrade-postgres.lock");
      expect(await lockIsFree(u.rig, "upgrade-postgres"), `lock held after kill ${kills} at ${at} ms in: ${last} by [${fdHolders(lock).join("; ")}] (replay with COOP_KILL_SEED=${BASE_SEED})`).toBe(true);
    }
    // The run that finished in the loop is the re-run after the last kill.
    let reruns = 1;
    if (!finished) {
      const c = await converge("upgrade-postgres.sh", u.env, 600_000);
      reruns = c.reruns;
    }
    console.log(outcomes.join("\n"));

    expect(u.linkTarget()).toBe(u.newData);
    expect(await u.sql("show server_version_num")).toMatch(/^15/);
    const after = await u.sql(TABLE_DIGESTS_SQL);
    expect(after, "every row of every table after the upgrade").toBe(digests);
    expect(existsSync(join(u.env.COOP_STATE_DIR, "upgrade-postgres.state"))).toBe(false);
    expect(await lockIsFree(u.rig, "upgrade-postgres")).toBe(true);
    const drill = JSON.parse(readFileSync(join(u.env.COOP_DRILL_RESULTS_DIR, "last.json"), "utf8"));
    expect(drill.ok).toBe(true);
    const manifest = JSON.parse(readFileSync(join(u.env.COOP_SPOOL_DIR, "manifests", "latest.json"), "utf8"));
    expect(manifest.pgVersion).toMatch(/^15\./);
    expect(existsSync(u.env.COOP_DRILL_DIR)).toBe(false);
    // Only the new cluster runs: no old cluster, no pg_upgrade cluster, no drill cluster, no pgBackRest.
    expect(u.postmasterPid(u.oldData)).toBeUndefined();
    expect(await settledStrays([u.rig.dir, u.rig.pg.dir], [u.newData])).toEqual([]);
    // A re-run once upgraded changes nothing.
    const again = await converge("upgrade-postgres.sh", u.env, 120_000, 1);
    expect(again.runs[0].output).toContain("already on PostgreSQL 15");
    console.log(summary("upgrade-postgres.sh", plan.seed, kills, [reruns], digests === after ? 0 : 1, 0));
  }, 1_500_000);
});
