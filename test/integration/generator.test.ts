import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { startPostgres, makeTempDir, type PostgresServer, type TempDir } from "../../src/local";
import { generate, parseSize, plan, MASTODON_TABLES, type GenerateReport, type PsqlTarget } from "../fixtures/mastodon/generator";

const MB = 1024 * 1024;
const INDEXES_SQL = resolve(__dirname, "../fixtures/mastodon/indexes.sql");

let pg: PostgresServer;
let media: TempDir;
let report: GenerateReport;
const target = (db: string): PsqlTarget => ({ host: pg.host, port: pg.port, db });

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

beforeAll(async () => {
  pg = await startPostgres();
  media = makeTempDir("media");
  report = await generate({ target: target("mastodon"), size: "10MB", mediaDir: media.path, seed: 7 });
});

afterAll(async () => {
  await pg?.stop();
  media?.remove();
});

describe("Mastodon fixture generator", () => {
  it("parses sizes and refuses nonsense", () => {
    expect(parseSize("10MB")).toBe(10 * MB);
    expect(parseSize("1GB")).toBe(1024 * MB);
    expect(parseSize("1.5 GB")).toBe(1.5 * 1024 * MB);
    expect(parseSize(12345)).toBe(12345);
    expect(() => parseSize("ten")).toThrow(/size: expected/);
  });

  it("plans statuses as the biggest table at every preset", () => {
    for (const size of ["10MB", "100MB", "1GB", "5GB"] as const) {
      const p = plan(parseSize(size), parseSize(size));
      const others = [p.accounts, p.users, p.tags, p.conversations, p.follows, p.mentions, p.notifications, p.mediaAttachments, p.statusStats, p.statusesTags];
      expect(Math.max(...others), size).toBeLessThan(p.statuses);
      expect(p.follows).toBeLessThanOrEqual(p.accounts * (p.accounts - 1));
    }
  });

  it("fills every table, and the report's row counts are the tables' real counts", async () => {
    for (const table of MASTODON_TABLES) {
      const count = Number(await pg.psql(`select count(*) from ${table}`, { db: "mastodon" }));
      expect(count, table).toBeGreaterThan(0);
      expect(report.rows[table], table).toBe(count);
    }
  });

  it("makes a database within ±30% of the requested size, statuses the largest table", async () => {
    const size = Number(await pg.psql("select pg_database_size('mastodon')"));
    expect(report.dbBytes).toBe(size);
    expect(Math.abs(size - 10 * MB) / (10 * MB)).toBeLessThan(0.3);
    const largest = await pg.psql(
      "select relname from pg_class where relkind = 'r' and relnamespace = 'public'::regnamespace order by pg_total_relation_size(oid) desc limit 1",
      { db: "mastodon" },
    );
    expect(largest).toBe("statuses");
  });

  it("creates every index of indexes.sql, the primary keys and the foreign keys", async () => {
    const wanted = [...readFileSync(INDEXES_SQL, "utf8").matchAll(/CREATE (?:UNIQUE )?INDEX (\w+)/g)].map((m) => m[1]);
    const present = (await pg.psql("select indexname from pg_indexes where schemaname = 'public'", { db: "mastodon" })).split("\n");
    expect(wanted.length).toBeGreaterThan(40);
    for (const name of wanted) expect(present, name).toContain(name);
    for (const table of MASTODON_TABLES) expect(present, table).toContain(`${table}_pkey`);
    expect(report.indexes).toBe(present.length);
    const fks = Number(await pg.psql("select count(*) from pg_constraint where contype = 'f' and convalidated", { db: "mastodon" }));
    expect(fks).toBe([...readFileSync(INDEXES_SQL, "utf8").matchAll(/FOREIGN KEY/g)].length);
  });

  it("writes the reported media files in Paperclip's layout, each the size its row records", async () => {
    const files = walk(media.path);
    expect(files.length).toBe(report.media.files);
    expect(report.media.files).toBeGreaterThan(0);
    const total = files.reduce((n, f) => n + statSync(f).size, 0);
    expect(total).toBe(report.media.bytes);
    const rows = await pg.psql("select id, file_file_name, file_file_size from media_attachments where file_file_name is not null", { db: "mastodon" });
    const byName = new Map(rows.split("\n").map((l) => l.split("|")).map(([id, name, size]) => [name, { id, size: Number(size) }]));
    for (const f of files) {
      const rel = relative(media.path, f);
      const m = /^media_attachments\/files\/((?:\d{3}\/)+)original\/([0-9a-f]{16}\.jpg)$/.exec(rel);
      expect(m, rel).not.toBeNull();
      const row = byName.get(m?.[2] ?? "");
      expect(row, rel).toBeDefined();
      expect((m?.[1] ?? "").replace(/\//g, "")).toBe(row?.id.padStart(9, "0"));
      expect(statSync(f).size).toBe(row?.size);
    }
  });

  it("is deterministic for a seed and differs across seeds", async () => {
    const digest = (db: string) =>
      pg.psql("select md5(string_agg(id || ':' || account_id || ':' || text, ',' order by id)) from statuses", { db });
    await generate({ target: target("same_seed"), size: "10MB", seed: 7 });
    await generate({ target: target("other_seed"), size: "10MB", seed: 8 });
    expect(await digest("same_seed")).toBe(await digest("mastodon"));
    expect(await digest("other_seed")).not.toBe(await digest("mastodon"));
  });

  it("never overwrites a database it did not make, and replaces its own only when asked", async () => {
    await pg.psql("create database real_instance");
    await pg.psql("create table statuses (id bigint primary key); insert into statuses values (1)", { db: "real_instance" });
    await expect(generate({ target: target("real_instance"), size: "10MB", replace: true })).rejects.toThrow(/did not make; refusing/);
    expect(await pg.psql("select count(*) from statuses", { db: "real_instance" })).toBe("1");

    await expect(generate({ target: target("mastodon"), size: "10MB" })).rejects.toThrow(/already holds a fixture/);
    const again = await generate({ target: target("mastodon"), size: "10MB", seed: 7, replace: true });
    expect(again.rows).toEqual(report.rows);
  });
});
