// What backup.sh keeps, over real pgBackRest (retention-full=2) and restic: per kind (media, config) the
// snapshots COOP_RESTIC_KEEP keeps, plus those of every manifest whose pgBackRest backup set is still in
// the repository; the rest is forgotten, and a manifest goes with its expired backup set. The newest
// backup and an older restore point still restore afterwards.
import { readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackupRig } from "../../../src/local/backup-rig";
import { psqlAt } from "../../../src/local/postgres";
import { run } from "../../../src/local/run";
import { ok, restic, rigWithInstance } from "./rig-support";

interface Manifest {
  readonly id: string;
  readonly restorePoint: string;
  readonly backupLabel: string;
  readonly media: { readonly snapshot: string };
}

let rig: BackupRig;
// Every manifest a backup published, in order.
const made: Manifest[] = [];

beforeAll(async () => {
  rig = await rigWithInstance(5);
}, 300_000);
afterAll(async () => {
  await rig?.stop();
});

const manifestDir = () => join(rig.env.COOP_SPOOL_DIR, "manifests");
const latest = (): Manifest => JSON.parse(readFileSync(join(manifestDir(), "latest.json"), "utf8"));
const spoolManifests = () => readdirSync(manifestDir()).filter((f) => /^coop-.*\.json$/.test(f)).map((f) => f.replace(/\.json$/, "")).sort();

/** What each backup run printed, in order. */
const outputs: string[] = [];

/** One backup.sh run with the given keep rules; records the manifest it published. */
async function backup(type: "full" | "diff", keep: string): Promise<Manifest> {
  outputs.push(ok(await rig.script("backup.sh", { COOP_BACKUP_TYPE: type, COOP_RESTIC_KEEP: keep }), `${type} backup (${keep})`).output);
  const m = latest();
  made.push(m);
  return m;
}

/** prune reads the whole repository: it runs only after a forget that removed something, and leaves no mark. */
function pruned(output: string): boolean {
  expect(readdirSync(rig.env.COOP_SPOOL_DIR).filter((f) => f.startsWith("restic-prune-pending."))).toEqual([]);
  return /restic \S+: pruned/.test(output);
}

/** The manifest id tag of each snapshot of a kind in the rig's restic repository, sorted. */
async function snapshotIds(kind: "media" | "config"): Promise<string[]> {
  const r = await restic(rig, ["--no-lock", "snapshots", "--json", "--tag", `coop,${kind}`]);
  expect(r.code, r.stderr).toBe(0);
  const snaps = JSON.parse(r.stdout) as { tags: string[] }[];
  return snaps.map((s) => s.tags.find((t) => t.startsWith("coop-")) ?? "(no id)").sort();
}

/** The labels of the backup sets pgBackRest holds. */
async function pgbrLabels(): Promise<string[]> {
  const e = rig.env;
  const r = await run("runuser", ["-u", e.COOP_PG_OS_USER, "--", "pgbackrest", `--config=${e.COOP_PGBACKREST_CONFIG}`, `--stanza=${e.COOP_STANZA}`, "--output=json", "info"]);
  return (JSON.parse(r.stdout)[0].backup as { label: string }[]).map((b) => b.label);
}

const ids = (ms: Manifest[]) => ms.map((m) => m.id).sort();
const OLD_DAYS = ["2020-01-01", "2020-01-02", "2020-01-03"];

describe("restic retention in backup.sh", () => {
  // Three full backups, the least that makes pgBackRest (retention-full=2) expire a set: the first two
  // both stay restorable whatever the keep rules; the third expires the first, whose snapshots then go
  // by the keep rules, in the same run as snapshots no manifest names.
  it("every manifest whose backup set pgBackRest still holds keeps its media and config snapshots, whatever the keep rules", async () => {
    await backup("full", "--keep-last 1");
    await rig.sql("insert into tags (id, name, created_at, updated_at) values (9700, 'before-the-second-backup', now(), now())");
    await backup("full", "--keep-last 1");
    // Written after the second backup's restore point: a restore to that point must not hold it.
    await rig.sql("insert into tags (id, name, created_at, updated_at) values (9701, 'after-the-second-backup', now(), now())");
    // --keep-last 1 alone would forget the first backup's snapshots: its set is still in the repository.
    expect(await snapshotIds("media")).toEqual(ids(made));
    expect(await snapshotIds("config")).toEqual(ids(made));
    expect(spoolManifests()).toEqual(ids(made));
    expect(outputs.map(pruned), "nothing forgotten, nothing to prune").toEqual([false, false]);
  }, 600_000);

  it("once pgBackRest expires a backup set, its manifests' snapshots go by the keep rules, and the manifests too", async () => {
    // Left by a lost spool, say: media snapshots of three earlier days that no manifest here names (the
    // next test's point).
    for (const day of OLD_DAYS) {
      const r = await restic(rig, ["backup", "--quiet", "--host", "coop", "--tag", "coop", "--tag", "media", "--tag", `coop-${day.replaceAll("-", "")}T000000Z`, "--time", `${day} 12:00:00`, rig.mediaDir]);
      expect(r.code, r.stderr).toBe(0);
    }
    // The third full: with retention-full=2 it expires the first. --keep-daily 3 keeps today's newest (this
    // one), not the first backup of today: only the second backup's set keeps its snapshots.
    await backup("full", "--keep-daily 3");
    const have = await pgbrLabels();
    const [expired, live] = [made.slice(0, 1), made.slice(1)];
    for (const m of expired) expect(have, `${m.id}'s set ${m.backupLabel}`).not.toContain(m.backupLabel);
    for (const m of live) expect(have, `${m.id}'s set ${m.backupLabel}`).toContain(m.backupLabel);
    // Before the fix nothing was ever forgotten: the first backup's snapshots were still there.
    const ours = (got: string[]) => got.filter((id) => made.some((m) => m.id === id));
    expect(ours(await snapshotIds("media"))).toEqual(ids(live));
    expect(ours(await snapshotIds("config"))).toEqual(ids(live));
    expect(spoolManifests()).toEqual(ids(live));
    expect(pruned(outputs[outputs.length - 1]), "the run that forgot the expired set's snapshots pruned their data").toBe(true);
  }, 600_000);

  it("snapshots no restorable manifest names are forgotten per kind by the keep rules (--keep-daily, days by snapshot time)", async () => {
    // The previous test's run, with --keep-daily 3. Media: the two restorable manifests' (today: the
    // newest is also the daily rule's pick), then the newest of each of the two days before; the oldest
    // day is past three days. Config: only the restorable manifests'.
    const live = made.slice(1);
    expect(await snapshotIds("media")).toEqual([...ids(live), "coop-20200102T000000Z", "coop-20200103T000000Z"].sort());
    expect(await snapshotIds("config")).toEqual(ids(live));
  }, 600_000);

  it("after the expiry the drill verifies the newest backup, and an older restore point still restores from its own manifest", async () => {
    ok(await rig.script("drill.sh"), "drill");
    const result = JSON.parse(readFileSync(join(rig.env.COOP_DRILL_RESULTS_DIR, "last.json"), "utf8"));
    expect(result.ok).toBe(true);
    expect(result.manifest).toBe(latest().id);
    expect(result.verified.mediaFiles).toBeGreaterThan(0);

    const point = made[1];
    const dir = join(rig.dir, "restore-older-point");
    const port = rig.pg.port + 30;
    const r = ok(
      await rig.script("restore.sh", {
        COOP_RESTORE_TARGET: `name:${point.restorePoint}`,
        COOP_RESTORE_PG_DATA: join(dir, "data"),
        COOP_RESTORE_PORT: String(port),
        COOP_RESTORE_SOCKET: join(dir, "sock"),
        COOP_RESTORE_FILES_TO: join(dir, "files"),
      }),
      `restore to ${point.restorePoint}`,
    );
    // The manifest came from that point's config snapshot, which names the set to start from.
    expect(r.output).toContain(`from pgBackRest backup set ${point.backupLabel}`);
    expect(await psqlAt(rig.pg.binDir, join(dir, "sock"), port, rig.database, "select string_agg(id::text, ',' order by id) from tags where id in (9700, 9701)")).toBe("9700");
    await run("runuser", ["-u", rig.env.COOP_PG_OS_USER, "--", join(rig.pg.binDir, "pg_ctl"), "-D", join(dir, "data"), "-m", "fast", "-w", "stop"], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  }, 600_000);
});
