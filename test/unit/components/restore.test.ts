import { describe, expect, it } from "vitest";
import { verifiedBackup } from "../../../components/restore";

// What read-prod-backups.sh prints: pgBackRest 2.45's `--output=json info` (cut to what the program
// reads, and a field it does not) and drill.sh's last-verified.json.
const report = (labels: string[], verified: object | null, name = "main") =>
  JSON.stringify({ info: [{ name, status: { code: 0 }, backup: labels.map((label) => ({ label, type: "incr" })) }], verified });
const FULL = "20261202-100000F";
const INCR = "20261202-100000F_20261202-120000I";
const drilled = (backupLabel: string, restorePoint = "coop-20261202T120000Z") => ({ finishedAt: "2026-12-02T12:05:00Z", stanza: "main", backupLabel, restorePoint });

describe("verifiedBackup: which of prod's backups alpha follows", () => {
  it("is the one the last passing drill verified, to its restore point, even when a newer set waits for its drill", () => {
    expect(verifiedBackup(report([FULL, INCR], drilled(FULL)), "main", "prod")).toEqual({ label: FULL, restorePoint: "coop-20261202T120000Z" });
    expect(verifiedBackup(report([FULL, INCR], drilled(INCR, "coop-b")), "main", "prod").label).toBe(INCR);
  });

  it("refuses, with the fix, before any drill has passed or once the verified set has expired", () => {
    expect(() => verifiedBackup(report([FULL], null), "main", "stack prod's repository host")).toThrow(
      /stack prod's repository host: no backup of stanza "main" has passed a restore drill yet.*sudo systemctl start coop-drill\.service/,
    );
    expect(() => verifiedBackup(report([INCR], drilled(FULL)), "main", "prod")).toThrow(/\(20261202-100000F\) is no longer in its repository: every drill since has failed.*docs\/runbooks\/alerts\.md/);
  });

  it("refuses another stanza, a restore point that is no name, and what is not JSON", () => {
    expect(() => verifiedBackup(report([FULL], drilled(FULL), "other"), "main", "prod")).toThrow(/prod has no stanza "main"/);
    expect(() => verifiedBackup(report([FULL], drilled(FULL, "x; rm -rf /")), "main", "prod")).toThrow(/is not a restore point name/);
    expect(() => verifiedBackup("coop-repo-reader: refused", "main", "prod")).toThrow(/prod: what its backups report is not JSON: coop-repo-reader: refused/);
  });
});
