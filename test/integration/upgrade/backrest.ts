// pgBackRest under an app rig's cluster, for the WAL restore point (scripts/lib/restore-point-wal.sh): a
// local encrypted repository owned by the cluster's user, WAL archived by archive-push, a stanza and a
// full backup; the rig's scripts then see COOP_PGBACKREST_CONFIG and COOP_STANZA. Used by the upgrade
// tests and by bench/downtime-size.ts.
import { randomBytes } from "node:crypto";
import { chownSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureUser, run, type RunResult } from "../../../src/local";
import type { AppRig } from "../../fixtures/app/rig";

export const STANZA = "coop";

export interface BackRest {
  readonly conf: string;
  readonly repoDir: string;
  /** pgbackrest as the cluster's user with this config and stanza. */
  pgbackrest(args: readonly string[], timeoutMs?: number): Promise<RunResult>;
  /** A full backup, as the nightly timer would have taken before the upgrade. */
  fullBackup(): Promise<void>;
}

export interface BackRestOptions {
  /** Extra postgresql.conf settings for the restart that turns archiving on (e.g. fsync = on). */
  readonly settings?: Readonly<Record<string, string>>;
  readonly processMax?: number;
}

/** Turns archiving on (one restart), creates the stanza and adds its variables to the rig's environment. */
export async function enableBackRest(rig: AppRig, opts: BackRestOptions = {}): Promise<BackRest> {
  const user = await ensureUser(rig.pg.osUser);
  const root = join(rig.dir, "pgbackrest");
  for (const d of ["", "repo", "lock", "log", "spool"]) {
    mkdirSync(join(root, d), { recursive: true, mode: 0o700 });
    chownSync(join(root, d), user.uid, user.gid);
  }
  const conf = join(root, "pgbackrest.conf");
  const repoDir = join(root, "repo");
  writeFileSync(
    conf,
    [
      "[global]",
      `repo1-path=${repoDir}`,
      "repo1-cipher-type=aes-256-cbc",
      `repo1-cipher-pass=${randomBytes(24).toString("hex")}`,
      "repo1-retention-full=2",
      "compress-type=lz4",
      `process-max=${opts.processMax ?? 2}`,
      "start-fast=y",
      `lock-path=${join(root, "lock")}`,
      `log-path=${join(root, "log")}`,
      `spool-path=${join(root, "spool")}`,
      "log-level-console=warn",
      "log-level-file=info",
      "",
      `[${STANZA}]`,
      `pg1-path=${rig.pg.dataDir}`,
      `pg1-port=${rig.pg.port}`,
      `pg1-socket-path=${rig.pg.socketDir}`,
      "pg1-user=postgres",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  chownSync(conf, user.uid, user.gid);
  const settings: Record<string, string> = {
    archive_mode: "on",
    archive_command: `pgbackrest --config=${conf} --stanza=${STANZA} archive-push %p`,
    ...opts.settings,
  };
  for (const [k, v] of Object.entries(settings)) await rig.pg.psql(`alter system set ${k} = '${v.replace(/'/g, "''")}'`);
  await rig.pg.pgCtl(["restart", "-m", "fast"]);
  const pgbackrest = (args: readonly string[], timeoutMs = 600_000) =>
    run("pgbackrest", [`--config=${conf}`, `--stanza=${STANZA}`, ...args], { asUser: user.name, timeoutMs });
  await pgbackrest(["stanza-create"]);
  // The rig's scripts read this same object (see rig.ts): every later run gets pgBackRest's variables.
  Object.assign(rig.env as Record<string, string>, { COOP_PGBACKREST_CONFIG: conf, COOP_STANZA: STANZA });
  return {
    conf,
    repoDir,
    pgbackrest,
    fullBackup: async () => {
      await pgbackrest(["--type=full", "backup"], 4 * 3600_000);
    },
  };
}
