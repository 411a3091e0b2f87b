// Shared checks of the upgrade tests: what "nothing lost, schema of the previous release" means in SQL.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import { run } from "../../../src/local/run";
import type { AppRig, ScriptRun } from "../../fixtures/app/rig";

export function ok(r: ScriptRun, what: string): ScriptRun {
  expect(r.code, `${what} failed:\n${r.output.slice(-4000)}`).toBe(0);
  return r;
}

/** The applied migrations, in order. */
export const MIGRATIONS_SQL = "select coalesce(string_agg(version, ' ' order by version), '') from schema_migrations";

/** Every column of every table and every index of the public schema: the schema a release left. */
export const SCHEMA_SQL = `
select coalesce(string_agg(x, E'\\n' order by x), '') from (
  select table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') as x
  from information_schema.columns where table_schema = 'public'
  union all
  select 'index ' || indexname || ': ' || indexdef from pg_indexes where schemaname = 'public'
) s`;

/** One digest per table over all its rows in primary-key order: equal digests mean every row is back. */
export const ROWS_SQL = `
select coalesce(string_agg(t || '=' || d, ' ' order by t), '') from (
  select c.relname as t,
         (xpath('/row/d/text()', query_to_xml(format('select md5(coalesce(string_agg(x::text, ''|'' order by x::text), '''')) as d from %I x', c.relname), false, true, '')))[1]::text as d
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = 'public' and c.relkind = 'r'
) s`;

export interface DbPicture {
  readonly migrations: string;
  readonly schema: string;
  readonly rows: string;
}

export async function picture(rig: AppRig): Promise<DbPicture> {
  return { migrations: await rig.sql(MIGRATIONS_SQL), schema: await rig.sql(SCHEMA_SQL), rows: await rig.sql(ROWS_SQL) };
}

/** Rows as users would write them between upgrades; `tag` makes each batch distinct. */
export async function writeRows(rig: AppRig, tag: string, n = 20): Promise<void> {
  await rig.sql(`
    insert into accounts (username) select '${tag}-' || g from generate_series(1, ${n}) g;
    insert into statuses (account_id, text) select a.id, 'post by ' || a.username from accounts a where a.username like '${tag}-%';`);
}

export async function servedVersion(rig: AppRig): Promise<string> {
  return (await rig.get("/version")).body.trim();
}

export function currentRelease(rig: AppRig): string {
  return readFileSync(join(rig.env.COOP_APP_ROOT, "current", "release.json"), "utf8").match(/"version": "([^"]+)"/)?.[1] ?? "";
}

export function maintenanceOn(rig: AppRig): boolean {
  return existsSync(rig.env.COOP_MAINTENANCE_FLAG);
}

/** True when nobody holds the operation's flock: a finished or killed run must not leave its lock held. */
export async function lockIsFree(rig: AppRig, operation: string): Promise<boolean> {
  const r = await run("flock", ["-n", join(rig.env.COOP_STATE_DIR, `${operation}.lock`), "true"], { allowFailure: true });
  return r.code === 0;
}

/** The step names a host script declares (`step <name> ...`), in order. */
export function stepsOf(script: string): string[] {
  const text = readFileSync(join(__dirname, "..", "..", "..", "scripts", script), "utf8");
  return [...text.matchAll(/^\s+step (\S+) /gm)].map((m) => m[1]);
}

/** Extra databases the upgrade may leave behind by mistake. */
export async function strayDatabases(rig: AppRig): Promise<string> {
  return rig.pg.psql(`select coalesce(string_agg(datname, ' '), '') from pg_database where datname like '${rig.database}_%'`);
}
