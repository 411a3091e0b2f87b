// Shared steps of the backup integration tests: a rig with a generated Mastodon-shaped instance.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { expect } from "vitest";
import { startBackupRig, type BackupRig, type ScriptRun } from "../../../src/local/backup-rig";
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
