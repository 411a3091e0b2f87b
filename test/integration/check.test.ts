// The hosts' daily check (scripts/check.sh) judges one host's facts with the rules of `coopctl status`
// (src/reports/status.ts): the same problems, with the same words, on the same facts, at the thresholds
// either side of each limit. Then check.sh end to end on this machine: its facts through status.sh, each
// problem told through alert.sh to a real SMTP listener, and its exit status. The missed security release
// too: status.sh fetches the app's upstream releases from a loopback server standing for GitHub, and both
// judge them alike (coopctl behind's security rule, the grace period, pre-releases and drafts left out).
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mentionsSecurity, SECURITY_GRACE_HOURS, SECURITY_PATTERN } from "../../src/reports/behind";
import { DEFAULT_THRESHOLDS, evaluateStatus, RUNBOOKS, type HostFacts, type StatusThresholds, type UpstreamFacts } from "../../src/reports/status";
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
    COOP_CHECK_SECURITY_GRACE_HOURS: String(t.securityGraceHours),
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

const rel = (tag: string, ageHours: number | null, security: boolean, more: { prerelease?: boolean; draft?: boolean } = {}) => ({
  tag, publishedAt: ageHours === null ? "2026-12-01T12:00:00Z" : new Date(Date.parse("2026-12-01T12:00:00Z") - ageHours * H * 1000).toISOString().replace(/\.\d+Z$/, "Z"),
  prerelease: more.prerelease ?? false, draft: more.draft ?? false, security, ageSeconds: ageHours === null ? null : ageHours * H,
});
const upstream = (releases: UpstreamFacts["releases"], repo = "mastodon/mastodon", error: string | null = null): UpstreamFacts => ({
  repo, url: `https://api.github.com/repos/${repo}/releases?per_page=100`, error, releases,
});
const onApp = (version: string | null, u: UpstreamFacts | null) => primary({ appVersion: version, upstream: u });
const MIXED = [
  rel("v4.4.0-beta.1", 200, true, { prerelease: true }), rel("v4.4.0-rc.1", 150, true), rel("v4.3.11", null, true, { draft: true }),
  rel("v4.3.10", 72, true), rel("v4.3.9", 100, false), rel("v4.3.12", 73, true), rel("v4.3.7", 900, true), rel("v4.3.8", 800, false),
];
const HOMETOWN = [
  rel("v4.5.13+hometown-1.3.0", 100, false), rel("v4.6.0+hometown-1.2.1", 100, true), rel("v4.5.12+hometown-1.2.2", 100, true),
  rel("v4.6.0-beta.1+hometown-1.3.0", 100, true), rel("v4.4.5+hometown-1.2.0", 100, true), rel("v4.5.11+hometown-1.2.1", 300, false),
];

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
  ["an app with nothing newer upstream", onApp("v4.3.12", upstream(MIXED))],
  ["security releases past the grace period, one at it, pre-releases, a draft and older ones", onApp("v4.3.8", upstream(MIXED))],
  ["a grace period of 0 and one of 200 h", onApp("v4.3.8", upstream(MIXED)), { ...DEFAULT_THRESHOLDS, securityGraceHours: 0 }],
  ["a grace period longer than every release's age", onApp("v4.3.8", upstream(MIXED)), { ...DEFAULT_THRESHOLDS, securityGraceHours: 200 }],
  ["a deployed pre-release behind its final security release", onApp("v4.4.0-beta.2", upstream([rel("v4.4.0", 80, true), rel("v4.4.0-rc.1", 90, true)]))],
  ["a deployed tag without a patch number", onApp("v4.3", upstream([rel("v4.3.0", 80, true), rel("v4.3.1", 80, true)]))],
  ["Hometown ordered by its own part, then its Mastodon base", onApp("v4.5.11+hometown-1.2.1", upstream(HOMETOWN, "hometown-fork/hometown"))],
  ["Hometown tags are not compared with a Mastodon deployment", onApp("v4.3.8", upstream(HOMETOWN))],
  ["an upstream that could not be reached", onApp("v4.3.8", upstream(null, "mastodon/mastodon", "https://api.github.com/repos/mastodon/mastodon/releases?per_page=100 answered HTTP 403: API rate limit exceeded"))],
  ["an upstream listing no final release", onApp("v4.3.8", upstream([rel("v4.4.0-beta.1", 100, true, { prerelease: true }), rel("nightly", 100, true)]))],
  ["an upstream listing nothing", onApp("v4.3.8", upstream([]))],
  ["a deployed version that is no release tag", onApp("main-2026-12-01", upstream(MIXED))],
  ["upstream facts on a host without an app", onApp(null, upstream(MIXED))],
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
    expect([...seen].sort()).toEqual(["backup-old", "certificate", "disk", "drill-failed", "drill-old", "security-release", "upstream-unreachable", "wal-failing", "wal-lag", "wal-off"]);
  });

  it("a security release is told once past the grace period, with the versions, dates and runbook; pre-releases, drafts and older ones never", () => {
    const [p, ...rest] = evaluateStatus([onApp("v4.3.8", upstream(MIXED))]).filter((x) => x.kind === "security-release");
    expect(rest).toEqual([]);
    expect(p.what).toBe("missed security release of mastodon/mastodon: v4.3.12 (published 2026-11-28) is newer than the deployed v4.3.8 and out for more than 72 h (alerts.securityGraceHours)");
    expect(p.runbook).toBe("docs/runbooks/upgrade.md#a-security-release-is-missed");
    const all = evaluateStatus([onApp("v4.3.8", upstream(MIXED))], { ...DEFAULT_THRESHOLDS, securityGraceHours: 0 }).find((x) => x.kind === "security-release");
    expect(all?.what).toBe("missed security releases of mastodon/mastodon: v4.3.10 (published 2026-11-28), v4.3.12 (published 2026-11-28) are newer than the deployed v4.3.8 and out for more than 0 h (alerts.securityGraceHours)");
    expect(DEFAULT_THRESHOLDS.securityGraceHours).toBe(SECURITY_GRACE_HOURS);
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

// --- The releases as the host fetches them ---

interface Route { readonly status?: number; readonly body: string }
interface FakeGithub { readonly base: string; readonly requests: { url: string; accept: string | undefined }[]; close(): Promise<void> }

/** A loopback server answering GET /repos/{owner}/{repo}/releases as GitHub does, from `routes` (by path). */
async function fakeGithub(routes: Readonly<Record<string, Route>>): Promise<FakeGithub> {
  const requests: { url: string; accept: string | undefined }[] = [];
  const server: Server = createServer((req, res) => {
    requests.push({ url: req.url ?? "", accept: req.headers.accept });
    const route = routes[(req.url ?? "").split("?")[0]];
    res.writeHead(route?.status ?? (route ? 200 : 404), { "content-type": "application/json" });
    res.end(route?.body ?? JSON.stringify({ message: "Not Found" }));
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as AddressInfo;
  return { base: `http://127.0.0.1:${port}`, requests, close: () => new Promise<void>((ok) => server.close(() => ok())) };
}

/** A port nothing listens on: a server started and closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

const hoursAgo = (h: number) => new Date(Date.now() - h * H * 1000).toISOString().replace(/\.\d+Z$/, "Z");
/** Notes that test the security rule's edges: words, ids, case, and what only looks like them. */
const TRICKY_NOTES = [
  "Fixes a Security issue", "insecurity of the timeline", "security_fix", "ésecurity", "日本security", "ſecurity advisory",
  "CVE-2026-12345", "cve-2026-1234", "CVE-26-1234", "xCVE-2026-12345", "CVE-2026-١٢٣٤", "GHSA-abcd-efgh-1234", "GHSA-ABCD-EFGH-1234x", "ghsa-abcd-efgh",
  "SECURITY.md updated", "no notes at all", "",
];
/** GitHub's list: a security release past the grace period, a non-security one, a pre-release, a draft, an older one, one within the grace period. */
function releasesFixture(): unknown[] {
  const gh = (tag: string, ageHours: number, body: string | null, more: Record<string, unknown> = {}) => ({
    url: `https://api.github.com/repos/mastodon/mastodon/releases/${tag}`, tag_name: tag, name: tag, draft: false, prerelease: false,
    created_at: hoursAgo(ageHours + 1), published_at: hoursAgo(ageHours), body, html_url: `https://github.com/mastodon/mastodon/releases/tag/${tag}`, ...more,
  });
  return [
    gh("v4.4.0-beta.1", 30, "Security fixes for the beta", { prerelease: true }),
    gh("v4.3.11", 2, "Fixes GHSA-abcd-efgh-1234 (within the grace period)"),
    gh("v4.3.12", 0, "security", { draft: true, published_at: null }),
    gh("v4.3.10", 100, "## Security\n\nFixes CVE-2026-12345."),
    gh("v4.3.9", 200, "Bug fixes only"),
    gh("v4.3.7", 900, "Security fix (older than the deployed release)"),
    ...TRICKY_NOTES.map((body, i) => gh(`v3.0.${i}`, 2000 + i, body)),
    gh("v2.0.0", 3000, null),
  ];
}

describe("status.sh fetches the app's upstream releases, and check.sh judges them as coopctl status does", () => {
  let github: FakeGithub;
  let app: string;
  beforeAll(async () => {
    const recorded = (f: string) => readFileSync(resolve(__dirname, "../fixtures/api/github", f), "utf8");
    github = await fakeGithub({
      "/repos/mastodon/mastodon/releases": { body: JSON.stringify(releasesFixture()) },
      "/repos/recorded/mastodon/releases": { body: recorded("mastodon-mastodon.page1.json") },
      "/repos/hometown-fork/hometown/releases": { body: recorded("hometown-fork-hometown.page1.json") },
      "/repos/limited/mastodon/releases": { status: 403, body: JSON.stringify({ message: "API rate limit exceeded for 203.0.113.11." }) },
      "/repos/object/mastodon/releases": { body: JSON.stringify({ releases: [] }) },
      "/repos/garbled/mastodon/releases": { body: "<html>a captive portal</html>" },
      "/repos/baddate/mastodon/releases": { body: JSON.stringify([{ tag_name: "v4.3.9", published_at: "yesterday", draft: false, prerelease: false, body: "" }]) },
    });
    app = join(tmp.path, "app");
    mkdirSync(join(app, "releases", "v4.3.8"), { recursive: true });
    symlinkSync("releases/v4.3.8", join(app, "current"));
  });
  afterAll(async () => {
    await github?.close();
  });

  /** status.sh on this machine with an app deployed at `tag` and the upstream `repo` on `base`. */
  async function facts(repo: string, base = github.base, appRoot = app): Promise<HostFacts> {
    const env = {
      COOP_APP_ROOT: appRoot, COOP_CHECK_UPSTREAM_REPO: repo, COOP_CHECK_RELEASES_API: base, COOP_ALERT_DIR: join(tmp.path, "none"),
      COOP_PG_SOCKET: join(tmp.path, "no-pg"), COOP_TLS_DIR: join(tmp.path, "no-tls"), COOP_SPOOL_DIR: join(tmp.path, "spool"),
      COOP_DRILL_RESULTS_DIR: join(tmp.path, "no-drills"), COOP_DATA_MOUNT: tmp.path,
    };
    const r = await run("bash", [join(SCRIPTS, "status.sh")], { env, allowFailure: true });
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as HostFacts;
  }

  it("asks GitHub's releases API for 100 releases and keeps of each what the judging reads, the notes' security as coopctl behind reads them", async () => {
    const f = await facts("mastodon/mastodon");
    expect(github.requests.at(-1)).toEqual({ url: "/repos/mastodon/mastodon/releases?per_page=100", accept: "application/vnd.github+json" });
    expect(f.appVersion).toBe("v4.3.8");
    expect(f.upstream?.error).toBeNull();
    const fixture = releasesFixture() as { tag_name: string; body: string | null }[];
    expect(f.upstream?.releases?.map((r) => r.tag)).toEqual(fixture.map((r) => r.tag_name));
    // The same rule on every note, the tricky ones included.
    expect(f.upstream?.releases?.map((r) => [r.tag, r.security])).toEqual(fixture.map((r) => [r.tag_name, mentionsSecurity(r.body ?? "")]));
    expect(readFileSync(join(SCRIPTS, "status.sh"), "utf8")).toContain(`readonly SECURITY_PATTERN='${SECURITY_PATTERN}'`);
    const draft = f.upstream?.releases?.find((r) => r.tag === "v4.3.12");
    expect(draft).toMatchObject({ draft: true, security: true });
    // And on real notes: the recorded page of Mastodon's releases.
    const recorded = await facts("recorded/mastodon");
    const notes = JSON.parse(readFileSync(resolve(__dirname, "../fixtures/api/github/mastodon-mastodon.page1.json"), "utf8")) as { body: string }[];
    expect(recorded.upstream?.releases?.map((r) => r.security)).toEqual(notes.map((n) => mentionsSecurity(n.body)));
  });

  it("the problem names the missed version, its date, the deployed one; the grace period holds back the newest, pre-releases and drafts never count", async () => {
    const f = await facts("mastodon/mastodon");
    for (const t of [DEFAULT_THRESHOLDS, { ...DEFAULT_THRESHOLDS, securityGraceHours: 1 }, { ...DEFAULT_THRESHOLDS, securityGraceHours: 150 }]) {
      const got = (await judged(f, t)).filter((p) => p.kind === "security-release");
      expect(got).toEqual(statusOf(f, t).filter((p) => p.kind === "security-release"));
    }
    const day = (h: number) => hoursAgo(h).slice(0, 10);
    expect(await judged(f)).toEqual([{ kind: "security-release", what: `missed security release of mastodon/mastodon: v4.3.10 (published ${day(100)}) is newer than the deployed v4.3.8 and out for more than 72 h (alerts.securityGraceHours)` }]);
    expect(await judged(f, { ...DEFAULT_THRESHOLDS, securityGraceHours: 1 })).toEqual([{ kind: "security-release",
      what: `missed security releases of mastodon/mastodon: v4.3.10 (published ${day(100)}), v4.3.11 (published ${day(2)}) are newer than the deployed v4.3.8 and out for more than 1 h (alerts.securityGraceHours)` }]);
    expect(await judged(f, { ...DEFAULT_THRESHOLDS, securityGraceHours: 150 })).toEqual([]);
    expect(evaluateStatus([f]).find((p) => p.kind === "security-release")?.runbook).toBe(RUNBOOKS.security);
  });

  it("Hometown's recorded releases and Mastodon's are judged alike", async () => {
    for (const [repo, tag] of [["hometown-fork/hometown", "v4.5.11+hometown-1.2.1"], ["hometown-fork/hometown", "v4.3.8+hometown-1.2.0"], ["recorded/mastodon", "v4.4.2"], ["recorded/mastodon", "v4.5.13"]]) {
      const root = join(tmp.path, `app-${tag}`);
      mkdirSync(join(root, "releases", tag), { recursive: true });
      if (!existsSync(join(root, "current"))) symlinkSync(`releases/${tag}`, join(root, "current"));
      const f = await facts(repo, github.base, root);
      expect(await judged(f), `${repo} ${tag}`).toEqual(statusOf(f));
    }
    const hometown = await facts("hometown-fork/hometown", github.base, join(tmp.path, "app-v4.5.11+hometown-1.2.1"));
    expect((await judged(hometown)).map((p) => p.what)).toEqual([expect.stringContaining("v4.5.12+hometown-1.2.1 (published 2026-")]);
  });

  it("an API that cannot be reached, refuses, or answers something else is a problem of its own, never nothing newer", async () => {
    const port = await closedPort();
    const cases: [string, string, RegExp][] = [
      ["mastodon/mastodon", `http://127.0.0.1:${port}`, /could not be reached \(curl exit 7: /],
      ["limited/mastodon", github.base, /answered HTTP 403: API rate limit exceeded for 203\.0\.113\.11\.$/],
      ["missing/mastodon", github.base, /answered HTTP 404: Not Found$/],
      ["object/mastodon", github.base, /did not answer with GitHub's list of releases: expected a JSON array of releases, found object$/],
      ["garbled/mastodon", github.base, /did not answer with GitHub's list of releases: /],
      ["baddate/mastodon", github.base, /release v4\.3\.9 has published_at "yesterday", not an ISO 8601 date-time$/],
      ["not a repo", github.base, /COOP_CHECK_UPSTREAM_REPO must be a GitHub owner\/name/],
    ];
    for (const [repo, base, error] of cases) {
      const f = await facts(repo, base);
      expect(f.upstream?.error, repo).toMatch(error);
      expect(f.upstream?.releases).toBeNull();
      const got = await judged(f);
      expect(got).toEqual(statusOf(f));
      expect(got).toEqual([{ kind: "upstream-unreachable", what: `cannot check ${repo} for a security release missed by the deployed v4.3.8: ${f.upstream?.error}` }]);
    }
  });

  it("no upstream setting, or no app on the host: no fetch and no upstream fact", async () => {
    const before = github.requests.length;
    expect((await facts("")).upstream).toBeNull();
    expect((await facts("mastodon/mastodon", github.base, join(tmp.path, "no-app"))).upstream).toBeNull();
    expect(github.requests.length).toBe(before);
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

  it("tells a missed security release of the app (the upstream from alert.env), once a day, and an unreachable upstream as a problem of its own", async () => {
    const github = await fakeGithub({ "/repos/mastodon/mastodon/releases": { body: JSON.stringify(releasesFixture()) } });
    try {
      const dir = join(tmp.path, "sec");
      const appRoot = join(dir, "app");
      mkdirSync(join(appRoot, "releases", "v4.3.8"), { recursive: true });
      symlinkSync("releases/v4.3.8", join(appRoot, "current"));
      mkdirSync(join(dir, "systemd"), { recursive: true });
      const env = {
        COOP_ALERT_STACK: "wsec", COOP_ALERT_EMAIL_TO: "ops@social.coop.test", COOP_ALERT_EMAIL_FROM: "alerts@social.coop.test",
        COOP_ALERT_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`, COOP_ALERT_SMTP_STARTTLS: "no", COOP_ALERT_DIR: join(dir, "alerts"),
        COOP_ALERT_STATE_DIR: join(dir, "alert-state"), COOP_STATE_DIR: join(dir, "state"), COOP_SCRIPTS_DIR: SCRIPTS,
        COOP_SYSTEMD_DIR: join(dir, "systemd"), COOP_SKIP_SYSTEMCTL: "1", COOP_ALERT_HOST: "wsec-primary.test",
        COOP_APP_ROOT: appRoot, COOP_DATA_MOUNT: dir, COOP_PG_SOCKET: join(dir, "no-pg"), COOP_TLS_DIR: join(dir, "no-tls"),
        COOP_SPOOL_DIR: join(dir, "spool"), COOP_DRILL_RESULTS_DIR: join(dir, "drills"), COOP_CHECK_DISK_MAX_PERCENT: "99",
      };
      // The upstream and its API reach the check through alert.env only, as install-alerts.sh writes them from stack config.
      const install = { ...env, COOP_CHECK_UPSTREAM_REPO: "mastodon/mastodon", COOP_CHECK_RELEASES_API: github.base };
      const i = await run("bash", [join(SCRIPTS, "install-alerts.sh")], { env: install, allowFailure: true });
      expect(i.code, i.stderr).toBe(0);
      const alertEnv = readFileSync(join(env.COOP_ALERT_DIR, "alert.env"), "utf8");
      expect(alertEnv).toContain('COOP_CHECK_UPSTREAM_REPO="${COOP_CHECK_UPSTREAM_REPO:-mastodon/mastodon}"');
      expect(alertEnv).toContain('COOP_CHECK_SECURITY_GRACE_HOURS="${COOP_CHECK_SECURITY_GRACE_HOURS:-72}"');
      // Installed twice, the same files: nothing changes.
      const again = await run("bash", [join(SCRIPTS, "install-alerts.sh")], { env: install, allowFailure: true });
      expect(again.code, again.stderr).toBe(0);
      expect(readFileSync(join(env.COOP_ALERT_DIR, "alert.env"), "utf8")).toBe(alertEnv);

      const before = smtp.messages.length;
      const first = await run("bash", [join(SCRIPTS, "check.sh")], { env, allowFailure: true });
      expect(first.code, first.stderr).toBe(3);
      const told = smtp.messages.slice(before);
      expect(told).toHaveLength(1);
      const mail = told[0].data;
      expect(mail).toMatch(/^Subject: \[wsec\] wsec-primary\.test: missed security release of mastodon\/mastodon: v4\.3\.10 \(published \d{4}-\d\d-\d\d\) is newer than the deployed v4\.3\.8/m);
      expect(mail).toContain("What to do: follow docs/runbooks/upgrade.md#a-security-release-is-missed");
      // Within the grace period, a pre-release, a draft: none of them is in what was told (the facts below it list every release).
      expect(/^Subject: (.*)$/m.exec(mail)?.[1]).not.toMatch(/v4\.3\.11|v4\.4\.0-beta\.1|v4\.3\.12/);
      const second = await run("bash", [join(SCRIPTS, "check.sh")], { env, allowFailure: true });
      expect(second.code).toBe(3);
      expect(smtp.messages.length).toBe(before + 1);

      // GitHub out of reach: its own problem, told (once), never a silent pass or a failed check.
      const port = await closedPort();
      const cut = { ...env, COOP_CHECK_RELEASES_API: `http://127.0.0.1:${port}` };
      const down = await run("bash", [join(SCRIPTS, "check.sh")], { env: cut, allowFailure: true });
      expect(down.code, down.stderr).toBe(3);
      const unreachable = smtp.messages.slice(before + 1);
      expect(unreachable).toHaveLength(1);
      expect(unreachable[0].data).toMatch(/^Subject: \[wsec\] wsec-primary\.test: cannot check mastodon\/mastodon for a security release missed by the deployed v4\.3\.8: /m);
      expect(unreachable[0].data).toContain("What to do: follow docs/runbooks/upgrade.md#the-releases-could-not-be-read");
      const downAgain = await run("bash", [join(SCRIPTS, "check.sh")], { env: cut, allowFailure: true });
      expect(downAgain.code).toBe(3);
      expect(smtp.messages.length).toBe(before + 2);
    } finally {
      await github.close();
    }
  });
});
