// The hosts' daily check (scripts/check.sh) judges one host's facts with the rules of `coopctl status`
// (src/reports/status.ts): the same problems, with the same words, on the same facts, at the thresholds
// either side of each limit. Then check.sh end to end on this machine: its facts through status.sh, each
// problem told through alert.sh to a real SMTP listener, and its exit status.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_THRESHOLDS, evaluateStatus, type HostFacts, type StatusThresholds } from "../../src/reports/status";
import { makeTempDir, run, type TempDir } from "../../src/local";
import { H, primary, secondary } from "../support/status-facts";
import { startSmtpListener, type SmtpListener } from "../support/smtp-listener";

const SCRIPTS = resolve(__dirname, "../../scripts");
let tmp: TempDir;
let smtp: SmtpListener;

beforeAll(async () => {
  tmp = makeTempDir("coop-check-");
  smtp = await startSmtpListener();
});
afterAll(async () => {
  await smtp?.close();
  tmp?.remove();
});

function thresholdEnv(t: StatusThresholds): Record<string, string> {
  return {
    COOP_CHECK_BACKUP_MAX_AGE_HOURS: String(t.backupMaxAgeHours),
    COOP_CHECK_DRILL_MAX_AGE_HOURS: String(t.drillMaxAgeHours),
    COOP_CHECK_WAL_MAX_LAG_SECONDS: String(t.walMaxLagSeconds),
    COOP_CHECK_DISK_MAX_PERCENT: String(t.diskMaxPercent),
    COOP_CHECK_CERT_MIN_DAYS: String(t.certMinDays),
  };
}

let n = 0;
async function judged(facts: HostFacts, t: StatusThresholds = DEFAULT_THRESHOLDS): Promise<{ kind: string; what: string }[]> {
  const file = join(tmp.path, `facts-${n++}.json`);
  writeFileSync(file, JSON.stringify(facts));
  const r = await run("bash", [join(SCRIPTS, "check.sh"), "--judge", file], { env: { ...thresholdEnv(t), COOP_ALERT_DIR: join(tmp.path, "none") }, allowFailure: true });
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim().split("\n").filter(Boolean).map((l) => {
    const { kind, what } = JSON.parse(l) as { kind: string; what: string };
    return { kind, what };
  });
}

/** coopctl status's answer for one host, without what only all hosts together can tell. */
function statusOf(facts: HostFacts, t: StatusThresholds = DEFAULT_THRESHOLDS): { kind: string; what: string }[] {
  return evaluateStatus([facts], t)
    .filter((p) => !p.kind.endsWith("-missing"))
    .map((p) => ({ kind: p.kind, what: p.what }));
}

const drill = secondary().drill as NonNullable<HostFacts["drill"]>;
const backup = primary().backup as NonNullable<HostFacts["backup"]>;
const wal = primary().walArchive as NonNullable<HostFacts["walArchive"]>;

const CASES: [string, HostFacts, StatusThresholds?][] = [
  ["a healthy database host", primary()],
  ["a healthy repository host", secondary()],
  ["a failed drill", secondary({ drill: { ...drill, ok: false, reason: "restore: pgBackRest restore failed" } })],
  ["a failed drill with no reason", secondary({ drill: { ...drill, ok: false, reason: null } })],
  ["a drill just inside its age", secondary({ drill: { ...drill, ageSeconds: 26 * H } })],
  ["a drill just past its age", secondary({ drill: { ...drill, ageSeconds: 26 * H + 1 } })],
  ["a drill of unknown age", secondary({ drill: { ...drill, ageSeconds: null } })],
  ["a drill old by a lower threshold", secondary({ drill: { ...drill, ageSeconds: 13 * H } }), { ...DEFAULT_THRESHOLDS, drillMaxAgeHours: 12 }],
  ["a backup just inside its age", primary({ backup: { ...backup, ageSeconds: 26 * H } })],
  ["a backup past its age", primary({ backup: { ...backup, ageSeconds: 30.25 * H } })],
  ["WAL archiving off", primary({ walArchive: { ...wal, archiveMode: "off" } })],
  ["WAL archiving failing and lagging", primary({ walArchive: { ...wal, failedCount: 4, lastFailedAt: "2026-12-01T11:00:00Z", failedSinceLastSuccess: true, lagSeconds: 900, pendingSegments: 7 } })],
  ["WAL lag at the limit", primary({ walArchive: { ...wal, lagSeconds: 300, pendingSegments: 1 } })],
  ["two paths on one full disk, one on a fine one", secondary({ disks: [
    { what: "repository", path: "/srv/backup/pgbackrest", mount: "/srv", usePercent: 91, availBytes: 1e9 },
    { what: "repository", path: "/srv/backup/restic", mount: "/srv", usePercent: 91, availBytes: 1e9 },
    { what: "data", path: "/", mount: "/", usePercent: 85, availBytes: 9e9 },
  ] })],
  ["a certificate expiring, one expired, one unreadable", primary({ certificates: [
    { path: "/etc/letsencrypt/live/a/fullchain.pem", subject: "CN = a.social.coop", notAfter: "2026-12-05T00:00:00Z", daysLeft: 3 },
    { path: "/etc/letsencrypt/live/b/fullchain.pem", subject: null, notAfter: "2026-11-20T00:00:00Z", daysLeft: -11 },
    { path: "/etc/letsencrypt/live/c/fullchain.pem", subject: null, notAfter: null, daysLeft: null },
    { path: "/etc/letsencrypt/live/d/fullchain.pem", subject: "CN = d", notAfter: "2027-01-01T00:00:00Z", daysLeft: 14 },
  ] })],
];

describe("check.sh judges a host as coopctl status does", () => {
  for (const [name, facts, t] of CASES) {
    it(name, async () => {
      const expected = statusOf(facts, t);
      const got = await judged(facts, t);
      // Same problems and words; the order is status's urgency, which the daily check does not need.
      expect([...got].sort((a, b) => a.what.localeCompare(b.what))).toEqual([...expected].sort((a, b) => a.what.localeCompare(b.what)));
    });
  }

  it("the cases cover every kind a single host can show", () => {
    const seen = new Set(CASES.flatMap(([, f, t]) => statusOf(f, t).map((p) => p.kind)));
    expect([...seen].sort()).toEqual(["backup-old", "certificate", "disk", "drill-failed", "drill-old", "wal-failing", "wal-lag", "wal-off"]);
  });

  it("refuses a threshold that is not a number, and facts that are not status.sh's", async () => {
    const file = join(tmp.path, "ok.json");
    writeFileSync(file, JSON.stringify(primary()));
    const bad = await run("bash", [join(SCRIPTS, "check.sh"), "--judge", file], { env: { COOP_CHECK_DISK_MAX_PERCENT: "85%" }, allowFailure: true });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("COOP_CHECK_DISK_MAX_PERCENT must be a whole number (found '85%')");
    const junk = join(tmp.path, "junk.json");
    writeFileSync(junk, "not json");
    const r = await run("bash", [join(SCRIPTS, "check.sh"), "--judge", junk], { allowFailure: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("not status.sh's facts");
  });
});

describe("check.sh on this machine", () => {
  it("tells each problem it finds through alert.sh, once a day, and exits 3; with nothing wrong it exits 0", async () => {
    const alertDir = join(tmp.path, "alerts");
    const env = {
      COOP_ALERT_STACK: "wck", COOP_ALERT_EMAIL_TO: "ops@social.coop.test", COOP_ALERT_EMAIL_FROM: "alerts@social.coop.test",
      COOP_ALERT_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`, COOP_ALERT_SMTP_STARTTLS: "no", COOP_ALERT_DIR: alertDir,
      COOP_ALERT_STATE_DIR: join(tmp.path, "alert-state"), COOP_STATE_DIR: join(tmp.path, "state"), COOP_SCRIPTS_DIR: SCRIPTS,
      COOP_SYSTEMD_DIR: join(tmp.path, "systemd"), COOP_SKIP_SYSTEMCTL: "1", COOP_ALERT_HOST: "wck-primary.test",
      // status.sh: no PostgreSQL here, a drill result that failed, a data folder on this machine's disk.
      COOP_DRILL_RESULTS_DIR: join(tmp.path, "drills"), COOP_DATA_MOUNT: tmp.path, COOP_PG_SOCKET: join(tmp.path, "no-pg"),
      COOP_TLS_DIR: join(tmp.path, "no-tls"), COOP_SPOOL_DIR: join(tmp.path, "spool"),
    };
    mkdirSync(join(tmp.path, "systemd"), { recursive: true });
    mkdirSync(env.COOP_DRILL_RESULTS_DIR, { recursive: true });
    writeFileSync(join(env.COOP_DRILL_RESULTS_DIR, "last.json"), JSON.stringify({ ok: false, reason: "verify: 3 tables differ", finishedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z") }));
    const i = await run("bash", [join(SCRIPTS, "install-alerts.sh")], { env, allowFailure: true });
    expect(i.code, i.stderr).toBe(0);
    const units = ["coop-check.service", "coop-check.timer"];
    for (const u of units) expect(existsSync(join(env.COOP_SYSTEMD_DIR, u)), u).toBe(true);
    const first = await run("bash", [join(SCRIPTS, "check.sh")], { env, allowFailure: true });
    expect(first.code, first.stderr).toBe(3);
    const subjects = smtp.messages.map((m) => /^Subject: (.*)$/m.exec(m.data)?.[1]?.trim());
    expect(subjects).toContain("[wck] wck-primary.test: restore drill failed: verify: 3 tables differ");
    const mail = smtp.messages.find((m) => m.data.includes("restore drill failed"))?.data ?? "";
    expect(mail).toContain("docs/runbooks/alerts.md#a-restore-drill-failed");
    expect(mail).toContain("The daily check (check.sh) found");
    const count = smtp.messages.length;
    const again = await run("bash", [join(SCRIPTS, "check.sh")], { env, allowFailure: true });
    expect(again.code).toBe(3);
    expect(smtp.messages).toHaveLength(count);
    // Fixed: nothing to tell, exit 0.
    writeFileSync(join(env.COOP_DRILL_RESULTS_DIR, "last.json"), JSON.stringify({ ok: true, reason: null, finishedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z") }));
    const fine = await run("bash", [join(SCRIPTS, "check.sh")], { env: { ...env, COOP_CHECK_DISK_MAX_PERCENT: "99" }, allowFailure: true });
    expect(fine.code, fine.stderr).toBe(0);
    expect(fine.stderr).toContain("nothing needs a person on wck-primary.test");
  });
});
