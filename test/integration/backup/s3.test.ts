// The S3 repository end to end: backup.sh writes pgBackRest repo2 and a second restic repository to an
// S3 endpoint (s3rver over TLS on loopback); then, with the secondary's repositories gone, restore.sh
// and drill.sh bring back every row and every media file from S3 alone.
import { chownSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackupRig } from "../../../src/local/backup-rig";
import { psqlAt } from "../../../src/local/postgres";
import { run } from "../../../src/local/run";
import { addS3Repo, startS3, type S3PgbackrestRepo, type S3Server } from "../../../src/local/s3";
import { TABLE_DIGESTS_SQL, ok, rigWithInstance, treeHashes } from "./rig-support";

let rig: BackupRig;
let s3: S3Server;
let repo2: S3PgbackrestRepo;
let sourceDigests = "";
let sourceMedia: Record<string, string> = {};
const outputs: string[] = [];
const timings: Record<string, number> = {};

async function timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    return await fn();
  } finally {
    timings[name] = (Date.now() - started) / 1000;
  }
}

/** The environment backup.sh gets with S3 configured: both pgBackRest repositories, both restic ones. */
function backupEnv(): Record<string, string> {
  return {
    ...s3.resticEnv,
    COOP_PGBACKREST_REPOS: "1 2",
    COOP_RESTIC_REPOS: `${rig.env.COOP_RESTIC_REPOS} ${s3.resticRepo("restic")}`,
  };
}

/** With the secondary lost: the S3-only pgBackRest config, no repository host, the S3 restic repository only. */
function s3OnlyEnv(): Record<string, string> {
  return {
    ...s3.resticEnv,
    COOP_PGBACKREST_CONFIG: repo2.s3OnlyConfig,
    COOP_REPO_SSH: "",
    COOP_RESTIC_REPOS: s3.resticRepo("restic"),
    // pgBackRest reads PGBACKREST_<OPTION>: this is --repo=2 for restore.sh's and drill.sh's commands.
    PGBACKREST_REPO: String(repo2.repo),
  };
}

/**
 * The repository host's drill config, as install-backup.sh renders it (render_pgbr_drill): repo1 read
 * locally, nothing of S3. Plus a spool path of its own (the rig has no /var/spool/pgbackrest for this user).
 */
function repoHostDrillConfig(): string {
  const side = dirname(rig.env.COOP_REPO_CONFIG);
  const owner = statSync(rig.env.COOP_REPO_CONFIG);
  for (const d of ["drill-lock", "drill-log", "drill-spool"]) {
    mkdirSync(join(side, d), { recursive: true, mode: 0o700 });
    chownSync(join(side, d), owner.uid, owner.gid);
  }
  const path = join(side, "pgbackrest-drill.conf");
  writeFileSync(
    path,
    ["[global]", `repo1-path=${rig.pgbackrestRepoDir}`, "repo1-cipher-type=aes-256-cbc", `repo1-cipher-pass=${rig.secrets.cipherPass}`,
      `lock-path=${side}/drill-lock`, `log-path=${side}/drill-log`, `spool-path=${side}/drill-spool`, "log-level-console=warn", "log-level-file=info",
      "", `[${rig.env.COOP_STANZA}]`, `pg1-path=${rig.pg.dataDir}`, ""].join("\n"),
    { mode: 0o600 },
  );
  chownSync(path, owner.uid, owner.gid);
  return path;
}

function lastDrill(): { ok: boolean; reason?: string; manifest: string; verified: { tables: Record<string, string>; mediaFiles: number }; ttrSeconds: Record<string, number> } {
  return JSON.parse(readFileSync(join(rig.env.COOP_DRILL_RESULTS_DIR, "last.json"), "utf8"));
}

const repoUser = () => rig.env.COOP_REPO_SSH.split("@")[0];

/** pgBackRest info on the repository side (as the repository host's user, with its config). */
async function repoInfo(repo: number): Promise<{ backup: { label: string; type: string; database: { "repo-key": number } }[]; status: { code: number } }> {
  const r = await run("pgbackrest", [`--config=${rig.env.COOP_REPO_CONFIG}`, `--stanza=${rig.env.COOP_STANZA}`, `--repo=${repo}`, "--output=json", "info"], {
    asUser: repoUser(),
  });
  outputs.push(r.stdout, r.stderr);
  return JSON.parse(r.stdout)[0];
}

/** restic against the S3 repository, as the scripts call it. */
async function resticS3(args: string[]): Promise<string> {
  const e = rig.env;
  const r = await run(
    "restic",
    ["-r", s3.resticRepo("restic"), "--password-file", e.COOP_RESTIC_PASSWORD_FILE, "--cache-dir", e.COOP_RESTIC_CACHE_DIR, "--quiet", ...args],
    { env: s3.resticEnv },
  );
  outputs.push(r.stdout, r.stderr);
  return r.stdout;
}

function latestManifest(): { id: string; restorePoint: string; backupLabel: string; tables: Record<string, number>; media: { files: number; snapshot: string } } {
  return JSON.parse(readFileSync(join(rig.env.COOP_SPOOL_DIR, "manifests", "latest.json"), "utf8"));
}

beforeAll(async () => {
  rig = await timed("rig", () => rigWithInstance());
  s3 = await timed("s3rver", () => startS3());
  repo2 = addS3Repo(rig, s3);
}, 300_000);

afterAll(async () => {
  await s3?.stop();
  await rig?.stop();
  console.log(`s3.test timings (s): ${JSON.stringify(timings)}`);
});

describe("S3 repository", () => {
  it("backup.sh stores the database in pgBackRest repo2 and the files in the S3 restic repository", async () => {
    const started = new Date();
    const backup = ok(await timed("backup.sh", () => rig.script("backup.sh", backupEnv())), "backup");
    outputs.push(backup.output);
    expect(backup.output).toMatch(/step 7\/7 expire done/);
    expect(backup.output).toMatch(/stored in repositories 1 2/);
    const manifest = latestManifest();

    // One backup per repository; each is a full one, taken by this run.
    const info2 = await repoInfo(2);
    expect(info2.status.code).toBe(0);
    expect(info2.backup.map((b) => b.label)).toContain(manifest.backupLabel);
    expect(info2.backup.every((b) => b.database["repo-key"] === 2)).toBe(true);
    const info1 = await repoInfo(1);
    expect(info1.backup.length).toBeGreaterThan(0);
    expect(info1.backup.every((b) => b.database["repo-key"] === 1)).toBe(true);
    for (const b of [...info1.backup, ...info2.backup]) {
      expect(b.type).toBe("full");
      const [, d, t] = /^(\d{8})-(\d{6})F$/.exec(b.label) ?? [];
      const at = new Date(`${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}T${t.slice(0, 2)}:${t.slice(2, 4)}:${t.slice(4)}`);
      expect(at.getTime()).toBeGreaterThan(started.getTime() - 60_000);
    }
    console.log(`pgBackRest labels: repo1 ${info1.backup.map((b) => b.label)}, repo2 ${info2.backup.map((b) => b.label)}; manifest ${manifest.backupLabel}`);

    // The S3 restic repository holds this run's media and config snapshots (the config one carries the manifest).
    const snaps: { tags: string[]; paths: string[]; short_id: string }[] = JSON.parse(await resticS3(["snapshots", "--json", "--tag", manifest.id]));
    const tagsOf = snaps.map((s) => s.tags.find((t) => t === "media" || t === "config")).sort();
    expect(tagsOf).toEqual(["config", "media"]);
    const media = snaps.find((s) => s.tags.includes("media"))!;
    expect(media.paths).toEqual([rig.mediaDir]);
    const files = (await resticS3(["ls", "--json", media.short_id]))
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .filter((n) => n.struct_type === "node" && n.type === "file");
    expect(files.length).toBe(manifest.media.files);
    const config = snaps.find((s) => s.tags.includes("config"))!;
    const dumped = JSON.parse(await resticS3(["dump", config.short_id, join(rig.env.COOP_SPOOL_DIR, "staged", "manifest.json")]));
    expect(dumped.id).toBe(manifest.id);

    // What the restores below must bring back; nothing writes to the source after the backup.
    sourceDigests = await rig.sql(TABLE_DIGESTS_SQL);
    sourceMedia = treeHashes(rig.mediaDir);
    expect(Object.keys(sourceMedia).length).toBe(manifest.media.files);
  });

  it("the nightly drill on the repository host (repo1 only, as installed) after a backup to both passes", async () => {
    const manifest = latestManifest();
    const d = await timed("drill.sh (repository host)", () =>
      rig.script("drill.sh", {
        ...s3.resticEnv,
        COOP_STATE_DIR: join(rig.dir, "state-repo-host"),
        COOP_PGBACKREST_CONFIG: repoHostDrillConfig(),
        COOP_REPO_SSH: "",
        COOP_PG_OS_USER: repoUser(),
        COOP_RESTIC_REPOS: `${rig.resticRepoDir} ${s3.resticRepo("restic")}`,
      }),
    );
    outputs.push(d.output);
    // backup.sh backs up repo1, then repo2: the manifest's backupLabel is repo2's, which repo1 does not
    // hold; the drill accepts any repository's label from backupLabels.
    expect((await repoInfo(1)).backup.map((b) => b.label)).not.toContain(manifest.backupLabel);
    ok(d, "drill on the repository host");
    expect(lastDrill().ok).toBe(true);
  });

  it("with the secondary lost, restore.sh brings back every row and media file from S3 alone", async () => {
    // The secondary's repositories disappear; the restore has no repository host and no repo1.
    renameSync(rig.pgbackrestRepoDir, `${rig.pgbackrestRepoDir}.lost`);
    renameSync(rig.resticRepoDir, `${rig.resticRepoDir}.lost`);
    const manifest = latestManifest();
    const target = join(rig.dir, "restored-s3");
    const r = ok(
      await timed("restore.sh (S3 only)", () =>
        rig.script("restore.sh", {
          ...s3OnlyEnv(),
          COOP_STATE_DIR: join(rig.dir, "state-s3"),
          COOP_RESTORE_TARGET: `name:${manifest.restorePoint}`,
          COOP_RESTORE_PG_DATA: join(target, "data"),
          COOP_RESTORE_PORT: String(rig.pg.port + 2),
          COOP_RESTORE_SOCKET: join(target, "sock"),
          COOP_RESTORE_FILES_TO: join(target, "files"),
          COOP_RESTORE_REDIS_RDB: join(target, "redis", "dump.rdb"),
        }),
      ),
      "restore from S3",
    );
    outputs.push(r.output);
    // The restored cluster fetches its WAL from S3 too: its restore_command uses the S3-only config.
    const auto = readFileSync(join(target, "data", "postgresql.auto.conf"), "utf8");
    expect(auto).toContain(repo2.s3OnlyConfig);
    const restored = await psqlAt(rig.pg.binDir, join(target, "sock"), rig.pg.port + 2, rig.database, TABLE_DIGESTS_SQL);
    expect(restored.split(" ").length).toBeGreaterThanOrEqual(7);
    expect(restored).toBe(sourceDigests);
    expect(treeHashes(join(target, "files", rig.mediaDir))).toEqual(sourceMedia);
    expect(readFileSync(join(target, "redis", "dump.rdb")).subarray(0, 5).toString()).toBe("REDIS");
    await run(join(rig.pg.binDir, "pg_ctl"), ["-D", join(target, "data"), "-m", "fast", "-w", "stop"], { asUser: rig.pg.osUser });
  });

  it("with the secondary lost, drill.sh restores, replays and verifies from S3 alone", async () => {
    expect(existsSync(rig.pgbackrestRepoDir)).toBe(false);
    const manifest = latestManifest();
    const drill = await timed("drill.sh (S3 only)", () => rig.script("drill.sh", { ...s3OnlyEnv(), COOP_STATE_DIR: join(rig.dir, "state-s3") }));
    outputs.push(drill.output);
    // Fetch (manifest from the S3 restic repository, label check in repo2), restore and WAL replay work.
    expect(drill.output).toMatch(/step 4\/6 replay done/);
    expect(existsSync(rig.env.COOP_DRILL_DIR)).toBe(false);
    const result = lastDrill();
    expect(result.manifest).toBe(manifest.id);
    timings["drill TTR (S3 only)"] = result.ttrSeconds.total;
    // Snapshot IDs differ between restic repositories: the drill finds the media snapshot by its tags.
    ok(drill, "drill from S3");
    expect(result.ok).toBe(true);
    expect(result.verified.mediaFiles).toBe(Object.keys(sourceMedia).length);
    expect(Number(result.verified.tables.statuses)).toBe(Number(await rig.sql("select count(*) from statuses")));
  });

  it("no secret appears in any output", () => {
    const all = [...outputs, readFileSync(s3.logFile, "utf8")].join("\n");
    expect(all.length).toBeGreaterThan(500);
    for (const secret of [s3.secretAccessKey, repo2.cipherPass, rig.secrets.resticPassword, rig.secrets.cipherPass]) {
      expect(all).not.toContain(secret);
    }
  });
});
