// grant-repo-reader.sh on the rig's repository side (real sshd, pgBackRest, restic over SFTP): the reader's
// key restores every row and media file of prod's newest backup, including a backup taken after the
// grant, and every attempt it makes to write, expire or delete prod's backups fails, leaving the
// repositories exactly as they were.
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBackupRig, type BackupRig } from "../../../src/local/backup-rig";
import { run } from "../../../src/local/run";
import { generate } from "../../fixtures/mastodon/generator";
import { ok, TABLE_DIGESTS_SQL, treeHashes } from "./rig-support";

const READER = "coop-read-alpha";
/** Where the drill's results are on the repository host: a folder the reader's user can reach, as /var/lib/coop/drills. */
const DRILLS = mkdtempSync(join(tmpdir(), "coop-drills-"));
chmodSync(DRILLS, 0o755);
let rig: BackupRig;
let readerEnv: Record<string, string>;
let readerSsh: string;
let grantScript: (args?: string[]) => ReturnType<typeof run>;

/** Every file of a tree with its size and mtime: a write, a removal or a new lock changes it. */
function treeState(root: string): string {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const s = statSync(p);
      if (s.isDirectory()) walk(p);
      else out.push(`${relative(root, p)} ${s.size} ${s.mtimeMs}`);
    }
  };
  walk(root);
  return out.join("\n");
}

function repoStates(): string {
  return `${treeState(rig.pgbackrestRepoDir)}\n--\n${treeState(rig.resticRepoDir)}`;
}

/** ssh as the reader with alpha's key: runs `command` on the repository host; never throws. */
function asReader(command: string, input?: string) {
  const port = rig.sshd.port;
  return run(readerSsh, ["-p", String(port), `${READER}@127.0.0.1`, command], { allowFailure: true, input });
}

function restic(args: string[], extra: string[] = []) {
  const e = readerEnv;
  return run("restic", ["-r", e.COOP_RESTIC_REPOS, "--password-file", e.COOP_RESTIC_PASSWORD_FILE, "--cache-dir", join(rig.dir, "reader-cache"), "-o", `sftp.command=${e.COOP_RESTIC_SFTP_COMMAND}`, ...extra, ...args], {
    allowFailure: true,
  });
}

beforeAll(async () => {
  rig = await startBackupRig({ extraSshUsers: [READER] });
  await generate({ target: { host: "127.0.0.1", port: rig.pg.port, db: rig.database }, size: "10MB", mediaDir: rig.mediaDir, seed: 21 });
  ok(await rig.script("backup.sh"), "prod's backup before the grant");
  // The repository host's own SSH host key, which the grant hands to the reader to pin.
  const etc = join(rig.dir, "etc");
  mkdirSync(join(etc, "ssh"), { recursive: true });
  const hostKey = readFileSync(rig.sshd.knownHostsPath, "utf8").trim().split(" ").slice(1, 3).join(" ");
  writeFileSync(join(etc, "ssh", "ssh_host_ed25519_key.pub"), `${hostKey} root@repo\n`);
  const cipherPass = rig.secrets.cipherPass;
  const grantOnce = (args: string[] = []) => run("bash", [join(__dirname, "..", "..", "..", "scripts", "grant-repo-reader.sh"), ...args], {
    allowFailure: true,
    env: {
      COOP_STATE_DIR: join(rig.dir, "grant-state"),
      COOP_READER_NAME: "alpha",
      COOP_PGBACKREST_CIPHER_PASS: cipherPass,
      COOP_REPO_OS_USER: execFileSync("stat", ["-c", "%U", rig.pgbackrestRepoDir], { encoding: "utf8" }).trim(),
      COOP_REPO_PATH: rig.pgbackrestRepoDir,
      COOP_RESTIC_REPO_PATH: rig.resticRepoDir,
      COOP_READER_AUTHORIZED_KEYS: join(rig.sshd.dir, `authorized_keys_${READER}`),
      COOP_ETC_DIR: etc,
      COOP_SBIN_DIR: join(rig.dir, "sbin"),
      COOP_SKIP_SYSTEMCTL: "1",
      COOP_DRILL_RESULTS_DIR: DRILLS,
    },
  });
  grantScript = grantOnce;
  const grant = await grantOnce();
  expect(grant.code, grant.stderr).toBe(0);
  const again = await grantOnce();
  expect(again.code, again.stderr).toBe(0);
  expect(again.stdout, "a re-run hands out the same grant").toBe(grant.stdout);
  expect(grant.stderr + grant.stdout).not.toContain(cipherPass);
  // What the reading stack gets (a secret output of prod's stack): its user, its key, the host key to pin.
  const grantLines = Object.fromEntries(grant.stdout.trim().split("\n").map((l) => [l.slice(0, l.indexOf(" ")), l.slice(l.indexOf(" ") + 1)]));
  expect(Object.keys(grantLines).sort()).toEqual(["host-key", "reader-key", "reader-user"]);
  expect(grantLines["reader-user"]).toBe(READER);
  expect(grantLines["host-key"]).toBe(hostKey);
  expect(grant.stderr, "the private key in the log").not.toContain(grantLines["reader-key"]);
  // alpha's side, made by install-reader.sh from the grant's lines: key, pinned host key, pgBackRest's
  // database-side config and the environment restore.sh reads.
  const alphaEtc = join(rig.dir, "alpha-etc");
  const installEnv = {
      COOP_STATE_DIR: join(rig.dir, "alpha-state"),
      COOP_ETC_DIR: alphaEtc,
      COOP_SKIP_APT: "1",
      COOP_BACKUP_HOME: join(rig.dir, "alpha-home"),
      COOP_READER_HOST: "127.0.0.1",
      COOP_READER_PORT: String(rig.sshd.port),
      COOP_READER_USER: grantLines["reader-user"],
      COOP_READER_KEY: grantLines["reader-key"],
      COOP_READER_HOST_KEY: grantLines["host-key"],
      COOP_READER_RESTIC_PATH: rig.resticRepoDir,
      COOP_RESTIC_PASSWORD: rig.secrets.resticPassword,
      COOP_PG_OS_USER: rig.pg.osUser,
      COOP_PG_DATA: rig.pg.dataDir,
      COOP_PG_PORT: String(rig.pg.port),
      COOP_PG_SOCKET: rig.pg.socketDir,
      COOP_DB_NAME: rig.database,
  };
  const installReader = () => run("bash", [join(__dirname, "..", "..", "..", "scripts", "install-reader.sh")], { allowFailure: true, env: installEnv });
  const install = await installReader();
  expect(install.code, install.stderr).toBe(0);
  // A line from the key's body (its first base64 characters are the same header for every key).
  const keyLine = Buffer.from(grantLines["reader-key"], "base64").toString("utf8").split("\n")[2];
  expect(keyLine.length).toBeGreaterThan(40);
  expect(install.stdout + install.stderr, "the key in install-reader.sh's output").not.toContain(keyLine);
  expect(install.stdout + install.stderr).not.toContain(rig.secrets.resticPassword);
  readerSsh = join(alphaEtc, "coop", "reader-ssh", "ssh");
  const envFile = readFileSync(join(alphaEtc, "coop", "backup.env"), "utf8");
  expect(envFile).not.toContain(rig.secrets.resticPassword);
  expect(statSync(join(alphaEtc, "coop", "backup.env")).mode & 0o077).toBe(0);
  expect(statSync(join(alphaEtc, "coop", "restic-password")).mode & 0o077).toBe(0);
  const installed = Object.fromEntries(envFile.split("\n").filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf("=")), JSON.parse(l.slice(l.indexOf("=") + 1))]));
  expect(installed.COOP_RESTIC_READ_ONLY).toBe("1");
  // A re-run writes nothing: every file is left as it was.
  const files = ["coop/backup.env", "coop/restic-password", "coop/reader-ssh/id_ed25519", "coop/reader-ssh/ssh", "pgbackrest/pgbackrest.conf"];
  const mtimes = () => files.map((f) => statSync(join(alphaEtc, f)).mtimeMs).join(" ");
  const before = mtimes();
  expect((await installReader()).code).toBe(0);
  expect(mtimes()).toBe(before);
  // The rig's PostgreSQL binaries (the file names Debian's path); everything else as alpha's host has it.
  readerEnv = { ...rig.env, ...installed, COOP_PG_BIN: rig.env.COOP_PG_BIN, COOP_RESTIC_CACHE_DIR: join(rig.dir, "reader-cache") };
}, 300_000);

afterAll(async () => {
  await rig?.stop();
});

describe("grant-repo-reader.sh", () => {
  it("the reader restores every row and media file of a backup taken after the grant", async () => {
    await rig.sql("create table after_grant (id int primary key); insert into after_grant select generate_series(1, 50)");
    ok(await rig.script("backup.sh"), "prod's nightly backup after the grant");
    const digests = await rig.sql(TABLE_DIGESTS_SQL);
    const media = treeHashes(rig.mediaDir);
    const before = repoStates();
    const target = join(rig.dir, "alpha-restore");
    const restore = await rig.script("restore.sh", {
      ...readerEnv,
      COOP_RESTORE_PG_DATA: join(target, "pgdata"),
      COOP_RESTORE_PORT: String(rig.pg.port + 7),
      COOP_RESTORE_SOCKET: rig.pg.socketDir,
      COOP_RESTORE_FILES_TO: join(target, "files"),
      COOP_RESTORE_REDIS_RDB: join(target, "dump.rdb"),
    });
    ok(restore, "restore through the reader");
    const restored = execFileSync(
      "runuser",
      ["-u", rig.pg.osUser, "--", join(rig.pg.binDir, "psql"), "-X", "-A", "-t", "-h", rig.pg.socketDir, "-p", String(rig.pg.port + 7), "-U", "postgres", "-d", rig.database, "-c", TABLE_DIGESTS_SQL],
      { encoding: "utf8" },
    ).trim();
    expect(restored, "every row of every table").toBe(digests);
    expect(treeHashes(join(target, "files", rig.mediaDir))).toEqual(media);
    await run("runuser", ["-u", rig.pg.osUser, "--", join(rig.pg.binDir, "pg_ctl"), "-D", join(target, "pgdata"), "-m", "immediate", "stop"], { allowFailure: true });
    expect(repoStates(), "the restore changed prod's repositories").toBe(before);
  }, 600_000);

  it("drill-verified tells the reader which backup the last passing drill verified (null before one), whatever else it asks", async () => {
    try {
      expect((await asReader("drill-verified")).stdout.trim()).toBe("null");
      const verified = { finishedAt: "2026-12-02T12:05:00Z", stanza: "main", backupLabel: "20261202-100000F", restorePoint: "coop-20261202T100000Z" };
      writeFileSync(join(DRILLS, "last-verified.json"), `${JSON.stringify(verified)}\n`, { mode: 0o644 });
      writeFileSync(join(DRILLS, "last.json"), "{\"secret\": \"not for the reader\"}\n", { mode: 0o600 });
      const asked = await asReader("drill-verified ../last.json; cat /etc/shadow");
      expect(asked.code, asked.stderr).toBe(0);
      expect(JSON.parse(asked.stdout)).toEqual(verified);
    } finally {
      rmSync(DRILLS, { recursive: true, force: true });
    }
  });

  it("every attempt to write, expire or delete prod's backups fails, and the repositories stay as they were", async () => {
    const before = repoStates();
    const attempts: Array<[string, () => Promise<{ code: number | null; stderr: string }>]> = [
      ["a shell on the repository host", () => asReader("id; touch /tmp/coop-reader-was-here")],
      ["pgBackRest expire through the key", () => asReader("pgbackrest --stanza=main --repo1-retention-full=1 expire")],
      ["pgBackRest stanza-delete through the key", () => asReader("pgbackrest --stanza=main --force stanza-delete")],
      ["pgBackRest remote with its own config", () => asReader("pgbackrest --config=/tmp/evil.conf --stanza=main remote; rm -rf /")],
      ["WAL pushed into prod's archive", async () => {
        const wal = join(rig.dir, "000000010000000000000099");
        writeFileSync(wal, Buffer.alloc(16 * 1024 * 1024));
        return run("runuser", ["-u", rig.pg.osUser, "--", "pgbackrest", `--config=${readerEnv.COOP_PGBACKREST_CONFIG}`, "--stanza=main", "archive-push", wal], { allowFailure: true });
      }],
      ["restic forget --prune", () => restic(["forget", "--keep-last", "1", "--prune"])],
      ["restic forget --prune without a lock", () => restic(["forget", "--keep-last", "1", "--prune"], ["--no-lock"])],
      ["restic backup", () => restic(["backup", "/etc/hostname"])],
      ["restic key add", () => restic(["key", "add", "--new-password-file", readerEnv.COOP_RESTIC_PASSWORD_FILE])],
      ["sftp rm through the sftp client", () => run("sftp", ["-S", readerSsh, "-P", String(rig.sshd.port), "-b", "-", `${READER}@127.0.0.1`], { allowFailure: true, input: `rm ${rig.resticRepoDir}/config\n` })],
    ];
    // At once: restic retries a refused lock for about 45 s before it gives up.
    const started = Date.now();
    const results = await Promise.all(attempts.map(async ([what, attempt]) => ({ what, r: await attempt(), ms: Date.now() - started })));
    const succeeded: string[] = [];
    for (const { what, r, ms } of results) {
      console.log(`${what}: exit ${r.code} after ${ms} ms: ${r.stderr.trim().split("\n").pop()}`);
      if (r.code === 0) succeeded.push(`${what}: ${r.stderr.slice(-200)}`);
    }
    expect(succeeded, "attempts that went through").toEqual([]);
    // As the reader itself on the repository host (a compromised wrapper): the kernel refuses too.
    const local = await run("runuser", ["-u", READER, "--", "bash", "-c", `touch ${rig.pgbackrestRepoDir}/x || rm -f ${rig.pgbackrestRepoDir}/backup/main/backup.info; test ! -e ${rig.pgbackrestRepoDir}/x -a -e ${rig.pgbackrestRepoDir}/backup/main/backup.info`], { allowFailure: true });
    expect(local.code, local.stderr).toBe(0);
    expect(repoStates(), "an attempt changed prod's repositories").toBe(before);
    // And prod's own backups carry on.
    ok(await rig.script("backup.sh"), "prod's backup after the attempts");
  }, 600_000);

  it("--revoke takes the reader away: its key no longer reads anything, and a second revoke has nothing to do", async () => {
    expect((await restic(["snapshots"], ["--no-lock"])).code, "the reader reads before the revoke").toBe(0);
    const revoked = await grantScript(["--revoke"]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((await restic(["snapshots"], ["--no-lock"])).code).not.toBe(0);
    expect((await asReader("pgbackrest --stanza=main info")).code).not.toBe(0);
    expect((await run("id", [READER], { allowFailure: true })).code, "the reader's user is gone").not.toBe(0);
    const again = await grantScript(["--revoke"]);
    expect(again.code, again.stderr).toBe(0);
  }, 300_000);
});
