// Backup → restore → every row and file back, over real pgBackRest, restic, sshd, PostgreSQL and Redis.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackupRig } from "../../../src/local/backup-rig";
import { psqlAt } from "../../../src/local/postgres";
import { TABLE_DIGESTS_SQL, ok, rigWithInstance, treeHashes } from "./rig-support";

let rig: BackupRig;
const outputs: string[] = [];

beforeAll(async () => {
  rig = await rigWithInstance();
});
afterAll(async () => {
  await rig?.stop();
});

describe("backup and restore", () => {
  it("a backup followed by a drill verifies the restored copy against the manifest", async () => {
    const backup = ok(await rig.script("backup.sh"), "backup");
    outputs.push(backup.output);
    expect(backup.output).toMatch(/step 7\/7 expire done/);
    // node_exporter's textfile collector reads the metric where the drill's goes, not the spool.
    const backupProm = readFileSync(join(rig.env.COOP_TEXTFILE_DIR, "coop_backup.prom"), "utf8");
    const finished = Number(/^coop_backup_last_success_timestamp_seconds (\d+)$/m.exec(backupProm)?.[1]);
    expect(Math.abs(finished - Date.now() / 1000)).toBeLessThan(600);
    const drill = ok(await rig.script("drill.sh"), "drill");
    outputs.push(drill.output);
    const result = JSON.parse(readFileSync(join(rig.env.COOP_DRILL_RESULTS_DIR, "last.json"), "utf8"));
    expect(result.ok).toBe(true);
    expect(Number(result.verified.tables.statuses)).toBe(Number(await rig.sql("select count(*) from statuses")));
    expect(result.verified.mediaFiles).toBeGreaterThan(0);
    for (const phase of ["fetch", "restore", "replay", "verify"]) expect(result.ttrSeconds[phase]).toBeGreaterThan(0);
    expect(existsSync(rig.env.COOP_DRILL_DIR)).toBe(false);
    const prom = readFileSync(join(rig.env.COOP_TEXTFILE_DIR, "coop_drill.prom"), "utf8");
    expect(prom).toMatch(/^coop_drill_success 1$/m);
  });

  it("restore.sh brings back every row of every table and every media file", async () => {
    const sourceDigests = await rig.sql(TABLE_DIGESTS_SQL);
    const sourceMedia = treeHashes(rig.mediaDir);
    const target = join(rig.dir, "restored");
    const r = ok(
      await rig.script("restore.sh", {
        COOP_RESTORE_PG_DATA: join(target, "data"),
        COOP_RESTORE_PORT: String(rig.pg.port + 2),
        COOP_RESTORE_SOCKET: join(target, "sock"),
        COOP_RESTORE_FILES_TO: join(target, "files"),
        COOP_RESTORE_REDIS_RDB: join(target, "redis", "dump.rdb"),
      }),
      "restore",
    );
    outputs.push(r.output);
    const restored = await psqlAt(rig.pg.binDir, join(target, "sock"), rig.pg.port + 2, rig.database, TABLE_DIGESTS_SQL);
    expect(restored.split(" ").length).toBeGreaterThanOrEqual(7);
    expect(restored).toBe(sourceDigests);
    expect(treeHashes(join(target, "files", rig.mediaDir))).toEqual(sourceMedia);
    expect(readFileSync(join(target, "redis", "dump.rdb")).subarray(0, 5).toString()).toBe("REDIS");
  });

  it("media and .env.production reached through the release links are backed up as the files behind them", async () => {
    // As on a host: live -> current -> releases/<tag>, whose public/system and .env.production are links.
    const mediaLink = join(rig.dir, "linked-system");
    const envLink = join(rig.dir, "linked-env");
    symlinkSync(rig.mediaDir, mediaLink);
    symlinkSync(rig.env.COOP_ENV_FILE, envLink);
    const links = { COOP_MEDIA_DIR: mediaLink, COOP_ENV_FILE: envLink };
    outputs.push(ok(await rig.script("backup.sh", links), "backup through links").output);
    outputs.push(ok(await rig.script("drill.sh", links), "drill through links").output);
    const result = JSON.parse(readFileSync(join(rig.env.COOP_DRILL_RESULTS_DIR, "last.json"), "utf8"));
    const files = readdirSync(rig.mediaDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
    expect(result.ok).toBe(true);
    expect(result.verified.mediaFiles).toBe(files);
    const target = join(rig.dir, "restored-links");
    ok(await rig.script("restore.sh", { ...links, COOP_RESTORE_PG_DATA: join(target, "data"), COOP_RESTORE_PORT: String(rig.pg.port + 3), COOP_RESTORE_SOCKET: join(target, "sock"), COOP_RESTORE_FILES_TO: join(target, "files"), COOP_RESTORE_REDIS_RDB: join(target, "redis", "dump.rdb") }), "restore through links");
    expect(treeHashes(join(target, "files", rig.mediaDir))).toEqual(treeHashes(rig.mediaDir));
    expect(readFileSync(join(target, "files", rig.env.COOP_ENV_FILE), "utf8")).toBe(readFileSync(rig.env.COOP_ENV_FILE, "utf8"));
  });

  it("a stanza lock another pgBackRest process holds (a killed run's repository side) is waited for, not a failure", async () => {
    const repoUser = rig.env.COOP_REPO_SSH.split("@")[0];
    const lockFile = join(rig.dir, "repo", "lock", `${rig.env.COOP_STANZA}-archive.lock`);
    const holder = spawn("runuser", ["-u", repoUser, "--", "flock", lockFile, "sleep", "8"], { stdio: "ignore" });
    const released = new Promise((r) => holder.on("exit", r));
    await new Promise((r) => setTimeout(r, 1_000));
    const backup = ok(await rig.script("backup.sh"), "backup while the archive lock is held");
    outputs.push(backup.output);
    expect(backup.output).toMatch(/stanza-create waits for a lock another pgBackRest process holds/);
    await released;
  });

  it("no passphrase appears in any script output", () => {
    const all = outputs.join("\n");
    expect(all.length).toBeGreaterThan(500);
    expect(all).not.toContain(rig.secrets.resticPassword);
    expect(all).not.toContain(rig.secrets.cipherPass);
  });
});
