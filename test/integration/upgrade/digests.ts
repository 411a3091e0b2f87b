// What "nothing lost, schema of the previous release" means in SQL, without vitest: shared by the upgrade
// tests (through support.ts) and bench/downtime-size.ts.
import type { AppRig } from "../../fixtures/app/rig";

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

