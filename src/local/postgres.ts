import { readFileSync, appendFileSync, mkdirSync, chownSync, existsSync } from "node:fs";
import { join } from "node:path";
import { run, type RunResult } from "./run";
import { freePort } from "./net";
import { makeTempDir, signalPid, stopOnce } from "./lifecycle";
import { ensureUser, DEFAULT_TEST_USER } from "./users";

/** Debian's PostgreSQL 15; pass another binDir for a second major version (pg_upgrade tests). */
export const DEBIAN_PG_BIN = "/usr/lib/postgresql/15/bin";

export interface PostgresOptions {
  /** The OS user that owns the cluster and runs the server. */
  readonly user?: string;
  readonly binDir?: string;
  readonly port?: number;
  /** Turns on `archive_mode` with this `archive_command` (e.g. pgBackRest's archive-push). */
  readonly archiveCommand?: string;
  /** Extra postgresql.conf settings, written verbatim as `key = value`. */
  readonly settings?: Readonly<Record<string, string>>;
}

export interface PostgresServer {
  readonly host: "127.0.0.1";
  readonly port: number;
  /** The cluster's superuser role. */
  readonly superuser: "postgres";
  readonly osUser: string;
  readonly dir: string;
  readonly socketDir: string;
  readonly dataDir: string;
  readonly binDir: string;
  readonly logFile: string;
  /** libpq variables that point a client (psql, pgbackrest, a script) at this server. */
  readonly env: Readonly<Record<string, string>>;
  /** Runs SQL through psql (unaligned, tuples only) and returns its stdout, trimmed. */
  psql(sql: string, opts?: { db?: string }): Promise<string>;
  /** pg_ctl as the owning user, e.g. ["restart", "-m", "fast"]. */
  pgCtl(args: readonly string[]): Promise<RunResult>;
  stop(): Promise<void>;
}

function postmasterPid(dataDir: string): number | undefined {
  const pidFile = join(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Runs SQL with psql against any cluster (host may be a socket folder); unaligned tuples, trimmed. */
export async function psqlAt(binDir: string, host: string, port: number, db: string, sql: string): Promise<string> {
  const r = await run(
    join(binDir, "psql"),
    ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", String(port), "-U", "postgres", "-d", db, "-f", "-"],
    { input: sql },
  );
  return r.stdout.trim();
}

export async function startPostgres(opts: PostgresOptions = {}): Promise<PostgresServer> {
  const user = await ensureUser(opts.user ?? DEFAULT_TEST_USER);
  const binDir = opts.binDir ?? DEBIAN_PG_BIN;
  const port = opts.port ?? (await freePort());
  const tmp = makeTempDir("pg", user);
  const dataDir = join(tmp.path, "data");
  const socketDir = join(tmp.path, "sock");
  const logFile = join(tmp.path, "postgres.log");
  mkdirSync(socketDir);
  chownSync(socketDir, user.uid, user.gid);
  const asUser = { asUser: user.name, cwd: tmp.path };

  await run(
    join(binDir, "initdb"),
    ["-D", dataDir, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
    asUser,
  );
  const settings: Record<string, string> = {
    listen_addresses: "'127.0.0.1'",
    port: String(port),
    unix_socket_directories: `'${socketDir}'`,
    wal_level: "replica",
    max_wal_senders: "5",
    // Test clusters die with the machine anyway; skipping fsync makes loading fixtures several times faster.
    fsync: "off",
    logging_collector: "off",
    ...(opts.archiveCommand ? { archive_mode: "on", archive_command: `'${opts.archiveCommand.replace(/'/g, "''")}'` } : {}),
    ...opts.settings,
  };
  appendFileSync(
    join(dataDir, "postgresql.conf"),
    "\n# coop test harness\n" + Object.entries(settings).map(([k, v]) => `${k} = ${v}\n`).join(""),
  );

  const pgCtl = (args: readonly string[]) =>
    run(join(binDir, "pg_ctl"), ["-D", dataDir, "-l", logFile, "-w", "-t", "60", ...args], asUser);

  const killNow = () => {
    // SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its backends down with it.
    signalPid(postmasterPid(dataDir), "SIGQUIT");
    tmp.remove();
  };
  const stop = stopOnce(async () => {
    if (postmasterPid(dataDir)) {
      const r = await run(join(binDir, "pg_ctl"), ["-D", dataDir, "-m", "fast", "-w", "-t", "30", "stop"], {
        ...asUser,
        allowFailure: true,
      });
      if (r.code !== 0) signalPid(postmasterPid(dataDir), "SIGQUIT");
    }
    tmp.remove();
  }, killNow);

  try {
    await pgCtl(["start"]);
  } catch (e) {
    const log = existsSync(logFile) ? readFileSync(logFile, "utf8") : "";
    await stop();
    throw new Error(`${(e as Error).message}\n--- postgres.log ---\n${log.slice(-2000)}`);
  }

  const env = { PGHOST: "127.0.0.1", PGPORT: String(port), PGUSER: "postgres", PGDATABASE: "postgres" };
  const psql = (sql: string, o: { db?: string } = {}) => psqlAt(binDir, "127.0.0.1", port, o.db ?? "postgres", sql);
  return {
    host: "127.0.0.1",
    port,
    superuser: "postgres",
    osUser: user.name,
    dir: tmp.path,
    socketDir,
    dataDir,
    binDir,
    logFile,
    env,
    psql,
    pgCtl,
    stop,
  };
}
