// A database host and a backup-repository host on one machine, for the rehearsal and the tests:
// PostgreSQL archiving WAL through pgBackRest to a repository owned by another user and reached over
// real SSH on loopback, a restic repository over SFTP on the same sshd, Redis, and an instance's
// files (media, .env.production, nginx config). The host scripts run against it unchanged.
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join, resolve } from "node:path";
import { makeTempDir } from "./lifecycle";
import { startPostgres, type PostgresServer } from "./postgres";
import { startRedis, type RedisServer } from "./redis";
import { run, type RunResult } from "./run";
import { startSshd, type SshdServer } from "./sshd";
import { ensureUser, type SystemUser } from "./users";

export const SCRIPTS_DIR = resolve(__dirname, "..", "..", "scripts");

export interface BackupRigOptions {
  /** OS user of the database host (owns the cluster, runs archive-push). */
  readonly dbUser?: string;
  /** OS user of the repository host (owns the pgBackRest and restic repositories). */
  readonly repoUser?: string;
  readonly database?: string;
  /** More accounts the rig's sshd lets in (a read-only reader of the repositories, say). */
  readonly extraSshUsers?: readonly string[];
}

export interface ScriptRun extends RunResult {
  readonly output: string;
}

export interface BackupRig {
  readonly dir: string;
  readonly pg: PostgresServer;
  readonly redis: RedisServer;
  readonly sshd: SshdServer;
  readonly database: string;
  readonly mediaDir: string;
  readonly pgbackrestRepoDir: string;
  readonly resticRepoDir: string;
  /** The secrets, so tests can prove they never leak. */
  readonly secrets: { readonly resticPassword: string; readonly cipherPass: string };
  /** The COOP_* environment every script gets. */
  readonly env: Readonly<Record<string, string>>;
  /** Runs scripts/<name> as root with the rig's environment plus `extra`; never throws on exit codes. */
  script(name: string, extra?: Record<string, string>, onStderr?: (chunk: string) => void): Promise<ScriptRun>;
  /** psql against the source database. */
  sql(query: string): Promise<string>;
  stop(): Promise<void>;
}

function writeOwned(path: string, content: string, owner: SystemUser, mode: number): void {
  writeFileSync(path, content, { mode });
  chownSync(path, owner.uid, owner.gid);
  chmodSync(path, mode);
}

function dirOwned(path: string, owner: SystemUser, mode = 0o700): string {
  mkdirSync(path, { recursive: true });
  chownSync(path, owner.uid, owner.gid);
  chmodSync(path, mode);
  return path;
}

/** An ssh client command with a fixed key and known_hosts, as pgBackRest's cmd-ssh and restic's sftp.command. */
export function sshWrapper(path: string, sshd: SshdServer, key: string, owner: SystemUser): void {
  const body = `#!/bin/sh\nexec ssh -F /dev/null -i ${key} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${sshd.knownHostsPath} -o GlobalKnownHostsFile=/dev/null "$@"\n`;
  writeOwned(path, body, owner, 0o755);
}

export async function startBackupRig(opts: BackupRigOptions = {}): Promise<BackupRig> {
  const dbUser = await ensureUser(opts.dbUser ?? "coop-db");
  const repoUser = await ensureUser(opts.repoUser ?? "coop-repo");
  const database = opts.database ?? "mastodon_production";
  const tmp = makeTempDir("rig");
  const dir = tmp.path;
  chmodSync(dir, 0o755);
  const dbSide = dirOwned(join(dir, "db"), dbUser, 0o755);
  const repoSide = dirOwned(join(dir, "repo"), repoUser, 0o755);
  for (const d of ["log", "lock", "spool"]) dirOwned(join(dbSide, d), dbUser);
  for (const d of ["log", "lock"]) dirOwned(join(repoSide, d), repoUser);
  const pgbackrestRepoDir = dirOwned(join(repoSide, "pgbackrest"), repoUser);
  const resticRepoDir = join(repoSide, "restic");
  dirOwned(resticRepoDir, repoUser);

  const secrets = { resticPassword: randomBytes(24).toString("hex"), cipherPass: randomBytes(24).toString("hex") };
  const dbConf = join(dbSide, "pgbackrest.conf");
  const repoConf = join(repoSide, "pgbackrest.conf");
  const started: { stop(): Promise<void> }[] = [];
  const stop = async () => {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    started.length = 0;
    tmp.remove();
  };

  try {
    const sshd = await startSshd({ users: [dbUser.name, repoUser.name, ...(opts.extraSshUsers ?? [])], clientKeyOwner: dbUser.name });
    started.push(sshd);
    // The repository side needs its own key to reach the database host (pgBackRest backups pull from it).
    const repoKey = join(repoSide, "id_ed25519");
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "coop-repo", "-f", repoKey]);
    chownSync(repoKey, repoUser.uid, repoUser.gid);
    const repoPub = readFileSync(`${repoKey}.pub`, "utf8");
    for (const u of [dbUser.name, repoUser.name]) {
      writeFileSync(join(sshd.dir, `authorized_keys_${u}`), `${sshd.publicKey}\n${repoPub}`, { flag: "w" });
    }
    const dbSsh = join(dbSide, "ssh");
    const repoSsh = join(repoSide, "ssh");
    sshWrapper(dbSsh, sshd, sshd.keyPath, dbUser);
    sshWrapper(repoSsh, sshd, repoKey, repoUser);

    const pg = await startPostgres({
      user: dbUser.name,
      archiveCommand: `pgbackrest --config=${dbConf} --stanza=main archive-push %p`,
    });
    started.push(pg);
    const common = (side: string) => [`lock-path=${side}/lock`, `log-path=${side}/log`, "log-level-console=warn", "log-level-file=info"];
    const pgSection = [`pg1-path=${pg.dataDir}`, `pg1-port=${pg.port}`, `pg1-socket-path=${pg.socketDir}`, "pg1-user=postgres"];
    writeOwned(
      dbConf,
      [
        "[global]",
        "repo1-host=127.0.0.1",
        `repo1-host-port=${sshd.port}`,
        `repo1-host-user=${repoUser.name}`,
        `repo1-host-config=${repoConf}`,
        `cmd-ssh=${dbSsh}`,
        `spool-path=${dbSide}/spool`,
        ...common(dbSide),
        "",
        "[main]",
        ...pgSection,
        "",
      ].join("\n"),
      dbUser,
      0o600,
    );
    writeOwned(
      repoConf,
      [
        "[global]",
        `repo1-path=${pgbackrestRepoDir}`,
        "repo1-cipher-type=aes-256-cbc",
        `repo1-cipher-pass=${secrets.cipherPass}`,
        "repo1-retention-full=2",
        // As install-backup.sh configures hosts: lz4 restored fastest (docs/bench-ttr.md).
        "compress-type=lz4",
        "process-max=2",
        "start-fast=y",
        `cmd-ssh=${repoSsh}`,
        ...common(repoSide),
        "",
        "[main]",
        "pg1-host=127.0.0.1",
        `pg1-host-port=${sshd.port}`,
        `pg1-host-user=${dbUser.name}`,
        `pg1-host-config=${dbConf}`,
        ...pgSection,
        "",
      ].join("\n"),
      repoUser,
      0o600,
    );

    const redis = await startRedis({ user: dbUser.name });
    started.push(redis);

    const live = join(dir, "live");
    const mediaDir = join(live, "public", "system");
    mkdirSync(mediaDir, { recursive: true });
    writeFileSync(join(live, ".env.production"), `LOCAL_DOMAIN=rehearsal.invalid\nSECRET_KEY_BASE=${randomBytes(16).toString("hex")}\n`, { mode: 0o600 });
    const nginxDir = join(dir, "nginx");
    mkdirSync(join(nginxDir, "sites-enabled"), { recursive: true });
    writeFileSync(join(nginxDir, "sites-enabled", "mastodon"), "server { listen 443 ssl; server_name rehearsal.invalid; }\n");
    const passwordFile = join(dir, "restic-password");
    writeFileSync(passwordFile, secrets.resticPassword, { mode: 0o600 });
    await pg.psql(`create database ${database}`);

    const env: Record<string, string> = {
      COOP_STATE_DIR: join(dir, "state"),
      COOP_STANZA: "main",
      COOP_PG_OS_USER: dbUser.name,
      COOP_PG_BIN: pg.binDir,
      COOP_PG_SOCKET: pg.socketDir,
      COOP_PG_PORT: String(pg.port),
      COOP_DB_NAME: database,
      COOP_PGBACKREST_CONFIG: dbConf,
      COOP_REPO_SSH: `${repoUser.name}@127.0.0.1:${sshd.port}`,
      COOP_REPO_SSH_COMMAND: dbSsh,
      COOP_REPO_CONFIG: repoConf,
      COOP_RESTIC_REPOS: `sftp:${repoUser.name}@127.0.0.1:${resticRepoDir}`,
      COOP_RESTIC_PASSWORD_FILE: passwordFile,
      COOP_RESTIC_SFTP_COMMAND: `${dbSsh} -p ${sshd.port} ${repoUser.name}@127.0.0.1 -s sftp`,
      COOP_RESTIC_CACHE_DIR: join(dir, "restic-cache"),
      COOP_SPOOL_DIR: join(dir, "spool"),
      COOP_MEDIA_DIR: mediaDir,
      COOP_ENV_FILE: join(live, ".env.production"),
      COOP_NGINX_DIR: nginxDir,
      COOP_REDIS_PORT: String(redis.port),
      COOP_APP_VERSION: "v4.3.8",
      COOP_DRILL_DIR: join(dir, "drill"),
      COOP_DRILL_PORT: String(pg.port + 1),
      COOP_DRILL_RESULTS_DIR: join(dir, "drills"),
      COOP_DRILL_READ_DATA: "100%",
      COOP_TEXTFILE_DIR: join(dir, "textfile"),
    };

    const script = async (name: string, extra: Record<string, string> = {}, onStderr?: (chunk: string) => void): Promise<ScriptRun> => {
      const r = await run("bash", [join(SCRIPTS_DIR, name)], { env: { ...env, ...extra }, allowFailure: true, timeoutMs: 3_600_000, onStderr });
      return { ...r, output: `${r.stdout}${r.stderr}` };
    };
    return {
      dir,
      pg,
      redis,
      sshd,
      database,
      mediaDir,
      pgbackrestRepoDir,
      resticRepoDir,
      secrets,
      env,
      script,
      sql: (query) => pg.psql(query, { db: database }),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
