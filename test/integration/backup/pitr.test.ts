// Point-in-time restore: a timestamp between two writes returns exactly the rows written before it.
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { BackupRig } from "../../../src/local/backup-rig";
import { psqlAt } from "../../../src/local/postgres";
import { ok, rigWithInstance } from "./rig-support";

let rig: BackupRig;
beforeAll(async () => {
  rig = await rigWithInstance(2);
});
afterAll(async () => {
  await rig?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it("restoring to a time between two writes returns exactly the rows before that time", async () => {
  ok(await rig.script("backup.sh"), "backup");
  await rig.sql("create table pitr_probe (label text primary key, at timestamptz not null default clock_timestamp())");
  await rig.sql("insert into pitr_probe (label) values ('before-1'), ('before-2')");
  const statusesBefore = await rig.sql("select count(*) from statuses");
  // Each switch in its own statement: a write is reachable only once its WAL segment is archived.
  await rig.sql("select pg_switch_wal()");
  await sleep(1100);
  const target = await rig.sql("select to_char(clock_timestamp() at time zone 'utc', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
  await sleep(1100);
  await rig.sql("insert into pitr_probe (label) values ('after-1')");
  await rig.sql("insert into statuses (id, account_id, text, created_at, updated_at) select max(id) + 1, min(account_id), 'written after the target', now(), now() from statuses");
  await rig.sql("select pg_switch_wal()");
  await sleep(1100);
  await rig.sql("select pg_switch_wal()");

  const dir = join(rig.dir, "pitr");
  const port = rig.pg.port + 3;
  ok(
    await rig.script("restore.sh", {
      COOP_RESTORE_TARGET: `time:${target}`,
      COOP_RESTORE_PG_DATA: join(dir, "data"),
      COOP_RESTORE_PORT: String(port),
      COOP_RESTORE_SOCKET: join(dir, "sock"),
      COOP_RESTORE_FILES_TO: join(dir, "files"),
    }),
    "point-in-time restore",
  );
  const q = (sql: string) => psqlAt(rig.pg.binDir, join(dir, "sock"), port, rig.database, sql);
  expect(await q("select string_agg(label, ',' order by label) from pitr_probe")).toBe("before-1,before-2");
  expect(await q("select count(*) from statuses")).toBe(statusesBefore);
  expect(Number(await rig.sql("select count(*) from statuses"))).toBe(Number(statusesBefore) + 1);
});
