// Shared steps of the backup integration tests: a rig with a generated Mastodon-shaped instance.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { expect } from "vitest";
import { startBackupRig, type BackupRig, type ScriptRun } from "../../../src/local/backup-rig";
import { run } from "../../../src/local/run";
import { generate } from "../../fixtures/mastodon/generator";

export async function rigWithInstance(seed = 1): Promise<BackupRig> {
  const rig = await startBackupRig();
  await generate({ target: { host: "127.0.0.1", port: rig.pg.port, db: rig.database }, size: "10MB", mediaDir: rig.mediaDir, seed });
  return rig;
}

export function ok(r: ScriptRun, what: string): ScriptRun {
  expect(r.code, `${what} failed:\n${r.output.slice(-3000)}`).toBe(0);
  return r;
}

/** Every file under a folder with its sha256, keyed by relative path. */
export function treeHashes(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(root, p)] = createHash("sha256").update(readFileSync(p)).digest("hex");
    }
  };
  walk(root);
  return out;
}

/** One digest per table over all its rows in primary-key order: equal digests mean every row came back. */
export const TABLE_DIGESTS_SQL = `
select string_agg(t || '=' || d, ' ' order by t) from (
  select c.relname as t,
         (xpath('/row/d/text()', query_to_xml(format('select md5(coalesce(string_agg(x::text, ''|'' order by x::text), '''')) as d from %I x', c.relname), false, true, '')))[1]::text as d
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = 'public' and c.relkind = 'r'
) s`;

/** The step names a host script declares (`step <name> ...`), in order: the kill tests cover each. */
export function stepsOf(script: string): string[] {
  const text = readFileSync(join(__dirname, "..", "..", "..", "scripts", script), "utf8");
  return [...text.matchAll(/^\s+step (\S+) /gm)].map((m) => m[1]);
}

/** True when nobody holds the operation's flock: a killed run must not leave its lock behind. */
export async function lockIsFree(rig: BackupRig, operation: string): Promise<boolean> {
  const r = await run("flock", ["-n", join(rig.env.COOP_STATE_DIR, `${operation}.lock`), "true"], { allowFailure: true });
  return r.code === 0;
}

/** PIDs of processes whose command line mentions a path (a scratch cluster's postmaster, say). */
export async function processesUsing(path: string): Promise<string[]> {
  const r = await run("pgrep", ["-f", path], { allowFailure: true });
  return r.stdout.split("\n").filter(Boolean);
}

/** restic against the rig's repository, as the scripts call it. */
export function restic(rig: BackupRig, args: string[]) {
  const e = rig.env;
  return run(
    "restic",
    ["-r", e.COOP_RESTIC_REPOS, "--password-file", e.COOP_RESTIC_PASSWORD_FILE, "--cache-dir", e.COOP_RESTIC_CACHE_DIR, "-o", `sftp.command=${e.COOP_RESTIC_SFTP_COMMAND}`, ...args],
    { allowFailure: true },
  );
}
