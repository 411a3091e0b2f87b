// A corrupted backup must fail the drill with a message that names what is wrong.
import { mkdirSync, openSync, readFileSync, readSync, readdirSync, statSync, unlinkSync, writeFileSync, writeSync, closeSync } from "node:fs";
import { basename, join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackupRig } from "../../../src/local/backup-rig";
import { main as drillReport } from "../../../src/cli/drill-report";
import { ok, restic, rigWithInstance } from "./rig-support";

let rig: BackupRig;
beforeAll(async () => {
  rig = await rigWithInstance(5);
  ok(await rig.script("backup.sh"), "backup");
  ok(await rig.script("drill.sh"), "drill of the intact backup");
});
afterAll(async () => {
  await rig?.stop();
});

/** `coopctl drill-report` over the results drill.sh really wrote on this rig. */
async function report(): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await drillReport(["--dir", rig.env.COOP_DRILL_RESULTS_DIR], { out: (t) => (out += t), err: (t) => (err += t), env: {} });
  return { code, out, err };
}

async function failedDrill(): Promise<string> {
  const r = await rig.script("drill.sh");
  expect(r.code, r.output.slice(-2000)).not.toBe(0);
  const result = JSON.parse(readFileSync(join(rig.env.COOP_DRILL_RESULTS_DIR, "last.json"), "utf8"));
  expect(result.ok).toBe(false);
  expect(r.output).toContain(result.reason);
  return result.reason as string;
}

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

function flipByte(path: string, at: number): void {
  const fd = openSync(path, "r+");
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b[0] ^= 0xff;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

describe("the drill catches corruption", () => {
  it("a manifest whose row count is off by one fails, naming the table and both counts", async () => {
    const manifest = JSON.parse(readFileSync(join(rig.env.COOP_SPOOL_DIR, "staged", "manifest.json"), "utf8"));
    const real = manifest.tables.statuses as number;
    manifest.tables.statuses = real + 1;
    const dir = join(rig.dir, "tampered");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
    const snap = await restic(rig, ["backup", "--json", "--host", "coop", "--tag", "coop", "--tag", "config", dir]);
    expect(snap.code, snap.stderr).toBe(0);
    const reason = await failedDrill();
    expect(reason).toContain(`row counts differ from the manifest: statuses: manifest ${real + 1}, restored ${real}`);
    // The report reads drill.sh's own failed result: it says which drill failed and why, and exits 1.
    const failed = await report();
    expect(failed.err, "no result file skipped").toBe("");
    expect(failed.code).toBe(1);
    expect(failed.out).toMatch(/2 drills, 1 failed/);
    expect(failed.out).toContain(reason);
    expect(failed.out).toContain("NEWEST DRILL FAILED");
    const id = JSON.parse(snap.stdout.trim().split("\n").pop() as string).snapshot_id as string;
    expect((await restic(rig, ["forget", id])).code).toBe(0);
  });

  it("a flipped byte in a pgBackRest backup file fails, naming the file", async () => {
    const backupDir = join(rig.pgbackrestRepoDir, "backup", "main");
    const label = readdirSync(backupDir).find((n) => /^\d{8}-\d{6}F$/.test(n)) as string;
    const relfiles = files(join(backupDir, label, "pg_data", "base")).sort((a, b) => statSync(b).size - statSync(a).size);
    const victim = relfiles[0];
    const at = Math.floor(statSync(victim).size / 2);
    flipByte(victim, at);
    try {
      const reason = await failedDrill();
      expect(reason).toMatch(/^restore: pgBackRest restore failed/);
      const name = relative(join(backupDir, label, "pg_data"), victim).replace(/\.(gz|lz4|zst|bz2)$/, "");
      expect(reason).toContain(name);
    } finally {
      flipByte(victim, at);
    }
    ok(await rig.script("drill.sh"), "drill after repairing the byte");
    const passed = await report();
    expect(passed.err, "no result file skipped").toBe("");
    expect(passed.out).toMatch(/4 drills, 2 failed/);
    expect(passed.out).toContain("newest drill verified");
    expect(passed.code).toBe(0);
  });

  it("a deleted restic pack fails, naming the missing pack", async () => {
    const packs = files(join(rig.resticRepoDir, "data"));
    expect(packs.length).toBeGreaterThan(0);
    const victim = packs.sort((a, b) => statSync(b).size - statSync(a).size)[0];
    unlinkSync(victim);
    const reason = await failedDrill();
    expect(reason).toMatch(/restic/);
    expect(reason).toContain(basename(victim).slice(0, 8));
  });
});
