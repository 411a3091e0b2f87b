import { describe, expect, it } from "vitest";
import { newestBackupLabel } from "../../../components/restore";

// pgBackRest 2.45's `--output=json info`, cut to what the program reads (and one field it does not).
const info = (backups: { label: string; stop: number }[], name = "main") =>
  JSON.stringify([{ name, status: { code: 0 }, backup: backups.map((b) => ({ label: b.label, type: "incr", timestamp: { start: b.stop - 5, stop: b.stop } })) }]);

describe("newestBackupLabel: which of prod's backup sets alpha follows", () => {
  it("is the set that finished last, whatever order the info lists them in", () => {
    const json = info([
      { label: "20261202-100000F", stop: 100 },
      { label: "20261202-100000F_20261202-120000I", stop: 300 },
      { label: "20261202-100000F_20261202-110000I", stop: 200 },
    ]);
    expect(newestBackupLabel(json, "main", "prod")).toBe("20261202-100000F_20261202-120000I");
  });

  it("names the source and the fix when the stanza has no backup yet, or is not there", () => {
    expect(() => newestBackupLabel(info([]), "main", "stack prod's repository host")).toThrow(/stack prod's repository host holds no backup of stanza "main" yet: run that stack's backup/);
    expect(() => newestBackupLabel(info([{ label: "x", stop: 1 }], "other"), "main", "prod")).toThrow(/prod has no stanza "main"/);
  });

  it("refuses what is not pgBackRest's JSON, quoting the start of it", () => {
    expect(() => newestBackupLabel("coop-repo-reader: refused", "main", "prod")).toThrow(/prod: pgBackRest's info is not JSON: coop-repo-reader: refused/);
  });
});
