import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../../src/cli/status";
import { DEFAULT_THRESHOLDS, evaluateStatus, FactsError, formatStatus, parseFacts, RUNBOOKS, type HostFacts, type UpstreamRelease } from "../../../src/reports/status";
import { H, primary, secondary } from "../../support/status-facts";

const kinds = (hosts: HostFacts | HostFacts[], t = DEFAULT_THRESHOLDS) => evaluateStatus(hosts, t).map((p) => p.kind);

describe("evaluateStatus", () => {
  it("a healthy two-host instance needs nobody", () => {
    expect(evaluateStatus([primary(), secondary()])).toEqual([]);
  });

  it("the defaults are 26 h for backups, backup.drillMaxAgeHours (26) for drills, 300 s, 85 %, 14 days, 72 h for a security release", () => {
    expect(DEFAULT_THRESHOLDS).toEqual({ backupMaxAgeHours: 26, drillMaxAgeHours: 26, walMaxLagSeconds: 300, diskMaxPercent: 85, certMinDays: 14, securityGraceHours: 72 });
  });

  it("a failed drill comes first, with its reason and the restore runbook", () => {
    const failed = secondary({ drill: { ...(secondary().drill as NonNullable<HostFacts["drill"]>), ok: false, reason: "verify: row counts differ from the manifest: statuses: manifest 11, restored 10", verified: null } });
    const cert = primary({ certificates: [{ path: "/c.pem", subject: "CN = social.coop", notAfter: "2026-12-04T00:00:00Z", daysLeft: 2 }] });
    const problems = evaluateStatus([cert, failed]);
    expect(problems.map((p) => p.kind)).toEqual(["drill-failed", "certificate"]);
    expect(problems[0]).toMatchObject({ host: "secondary", runbook: "docs/runbooks/restore.md" });
    expect(problems[0].what).toBe("restore drill failed: verify: row counts differ from the manifest: statuses: manifest 11, restored 10");
  });

  it("judges the newest drill and the newest backup any host reports", () => {
    const oldFailed = primary({ drill: { ok: false, reason: "old", finishedAt: "2026-11-01T00:00:00Z", ageSeconds: 700 * H, backupLabel: null, ttrSeconds: null, verified: null } });
    expect(kinds([oldFailed, secondary()])).toEqual([]);
    expect(kinds([primary(), secondary({ backup: { ...(primary().backup as NonNullable<HostFacts["backup"]>), ageSeconds: 100 * H } })])).toEqual([]);
  });

  it("backup and drill age against their thresholds, on either side of the limit", () => {
    const backupAt = (hours: number) => primary({ backup: { ...(primary().backup as NonNullable<HostFacts["backup"]>), ageSeconds: hours * H } });
    expect(kinds([backupAt(26), secondary()])).toEqual([]);
    const old = evaluateStatus([backupAt(26.5), secondary()]);
    expect(old.map((p) => p.kind)).toEqual(["backup-old"]);
    expect(old[0]).toMatchObject({ value: 26.5, threshold: 26 });
    expect(kinds([backupAt(30), secondary()], { ...DEFAULT_THRESHOLDS, backupMaxAgeHours: 48 })).toEqual([]);
    const drillAt = (hours: number) => secondary({ drill: { ...(secondary().drill as NonNullable<HostFacts["drill"]>), ageSeconds: hours * H } });
    expect(kinds([primary(), drillAt(27)])).toEqual(["drill-old"]);
    expect(evaluateStatus([primary(), drillAt(27)])[0].what).toContain("backup.drillMaxAgeHours");
    expect(kinds([primary(), drillAt(27)], { ...DEFAULT_THRESHOLDS, drillMaxAgeHours: 48 })).toEqual([]);
  });

  it("no backup or no drill anywhere needs a person", () => {
    expect(kinds([primary({ backup: null }), secondary({ drill: null })])).toEqual(["backup-missing", "drill-missing"]);
  });

  it("WAL: lag above the threshold, failures since the last success, archiving off", () => {
    const wal = primary().walArchive as NonNullable<HostFacts["walArchive"]>;
    expect(kinds([primary({ walArchive: { ...wal, lagSeconds: 300, pendingSegments: 2 } }), secondary()])).toEqual([]);
    const lag = evaluateStatus([primary({ walArchive: { ...wal, lagSeconds: 301, pendingSegments: 2 } }), secondary()]);
    expect(lag.map((p) => p.kind)).toEqual(["wal-lag"]);
    expect(lag[0]).toMatchObject({ host: "primary", value: 301, threshold: 300 });
    // Failures followed by a success are over; failures after the last success are not.
    expect(kinds([primary({ walArchive: { ...wal, failedCount: 3, lastFailedAt: "2026-11-30T00:00:00Z" } }), secondary()])).toEqual([]);
    const failing = evaluateStatus([primary({ walArchive: { ...wal, failedCount: 3, lastFailedAt: "2026-12-01T11:59:30Z", failedSinceLastSuccess: true } }), secondary()]);
    expect(failing.map((p) => p.kind)).toEqual(["wal-failing"]);
    expect(failing[0].what).toContain("3 failures");
    expect(kinds([primary({ walArchive: { ...wal, archiveMode: "off" } }), secondary()])).toEqual(["wal-off"]);
  });

  it("disks above the threshold, one problem per filesystem naming each path on it", () => {
    const repo = { what: "repository", path: "/srv/backup/restic", mount: "/srv", usePercent: 86, availBytes: 1e9 } as const;
    const data = { what: "data", path: "/srv/postgresql/15/main", mount: "/srv", usePercent: 86, availBytes: 1e9 } as const;
    const problems = evaluateStatus([primary({ disks: [data, repo, { ...repo, path: "/var/backups", mount: "/", usePercent: 50 }] }), secondary()]);
    expect(problems.map((p) => p.kind)).toEqual(["disk"]);
    expect(problems[0].what).toBe("disk /srv (data /srv/postgresql/15/main, repository /srv/backup/restic) is 86% full (at most 85%)");
    expect(kinds([primary({ disks: [{ ...data, usePercent: 85 }] }), secondary()])).toEqual([]);
    expect(kinds([primary(), secondary()], { ...DEFAULT_THRESHOLDS, diskMaxPercent: 50 })).toEqual(["disk"]);
  });

  it("certificates within the threshold, expired or unreadable", () => {
    const cert = (daysLeft: number | null) => primary({ certificates: [{ path: "/c.pem", subject: daysLeft === null ? null : "CN = social.coop", notAfter: daysLeft === null ? null : "2026-12-10T00:00:00Z", daysLeft }] });
    expect(kinds([cert(14), secondary()])).toEqual([]);
    const soon = evaluateStatus([cert(13), secondary()]);
    expect(soon[0]).toMatchObject({ kind: "certificate", value: 13, threshold: 14, runbook: "docs/runbooks/tls.md" });
    expect(soon[0].what).toContain("CN = social.coop expires in 13 days");
    expect(evaluateStatus([cert(-2), secondary()])[0].what).toContain("expired 2 days ago");
    expect(evaluateStatus([cert(null), secondary()])[0].what).toBe("certificate /c.pem cannot be read");
  });

  it("maintenance mode is shown but is not by itself a problem", () => {
    const on = primary({ maintenance: { on: true, since: "upgrade since 2026-12-01T11:00:00Z" } });
    expect(evaluateStatus([on, secondary()])).toEqual([]);
    expect(formatStatus([on], [])).toContain("maintenance  ON (upgrade since 2026-12-01T11:00:00Z)");
  });
});

describe("formatStatus", () => {
  it("puts the problems first, each with its runbook, then every host's facts", () => {
    const hosts = [primary({ backup: null }), secondary()];
    const text = formatStatus(hosts, evaluateStatus(hosts));
    const lines = text.split("\n");
    expect(lines.slice(0, 3)).toEqual([
      "NEEDS A PERSON: 1 problem",
      "  ✗ [primary, secondary] no backup recorded on any host (no manifest, no pgBackRest backup)",
      "      runbook: docs/runbooks/restore.md",
    ]);
    expect(text).toContain("host secondary");
    expect(text).toMatch(/drill +ok, 6\.3 h ago; TTR fetch 60\.0 s, restore 300\.0 s, replay 40\.0 s, verify 200\.0 s, total 600\.0 s; verified 1 tables, 4000 media files \(20 hashed\)/);
    expect(formatStatus([primary(), secondary()], [])).toMatch(/^OK: nothing needs a person\n/);
    expect(formatStatus([primary()], [])).toContain("backup       9 h ago (2026-12-01T03:20:00Z), 20261201-031501F; database 4.7 GiB, media 18.6 GiB; repositories pgbackrest repo1, restic sftp:coop-backup@10.0.0.2:/srv/backup/restic");
  });
});

describe("parseFacts", () => {
  it("reads one host's object or an array of them, and names what is wrong", () => {
    expect(parseFacts(JSON.stringify(primary()))).toEqual([primary()]);
    expect(parseFacts(JSON.stringify([primary(), secondary()])).map((h) => h.host)).toEqual(["primary", "secondary"]);
    expect(() => parseFacts("{")).toThrow(FactsError);
    expect(() => parseFacts(JSON.stringify({ ...primary(), drill: { reason: "x" } }), "f.json")).toThrow("f.json.drill: expected an object with ok, or null");
    expect(() => parseFacts(JSON.stringify([primary(), { nohost: 1 }]), "f.json")).toThrow("f.json[1]: expected status.sh's JSON object (with host)");
  });
});

describe("the app's upstream releases", () => {
  const release = (tag: string, ageHours: number, security: boolean) =>
    ({ tag, publishedAt: "2026-11-20T08:00:00Z", prerelease: false, draft: false, security, ageSeconds: ageHours * H });
  const onApp = (releases: UpstreamRelease[] | null, error: string | null = null): HostFacts =>
    ({ ...primary(), upstream: { repo: "mastodon/mastodon", url: "https://api.github.com/repos/mastodon/mastodon/releases?per_page=100", error, releases } });

  it("status.sh's upstream fact is read, and its absence (an older status.sh) is no upstream", () => {
    const [read] = parseFacts(JSON.stringify(onApp([release("v4.3.9", 100, true)])));
    expect(read.upstream?.releases).toEqual([release("v4.3.9", 100, true)]);
    const { upstream: _gone, ...older } = read;
    expect(parseFacts(JSON.stringify(older))[0].upstream ?? null).toBeNull();
    expect(parseFacts(JSON.stringify({ ...older, upstream: null }))[0].upstream ?? null).toBeNull();
    expect(() => parseFacts(JSON.stringify({ ...primary(), upstream: { repo: "mastodon/mastodon", releases: [{ tag: 1 }] } }))).toThrow(/upstream\.releases\[0\]/);
    expect(() => parseFacts(JSON.stringify({ ...primary(), upstream: "mastodon" }))).toThrow(/facts\.upstream: expected an object with repo/);
  });

  it("a missed security release ranks after a failed drill and before an old backup; the screen shows the upstream line", () => {
    const facts = onApp([release("v4.3.9", 100, true), release("v4.3.10", 10, false)]);
    const problems = evaluateStatus([facts, secondary()]);
    expect(problems.map((p) => p.kind)).toEqual(["security-release"]);
    expect(problems[0]).toMatchObject({ host: "primary", value: "v4.3.9", threshold: 72, runbook: "docs/runbooks/upgrade.md#a-security-release-is-missed" });
    const screen = formatStatus([facts], problems);
    expect(screen).toContain("  ✗ [primary] missed security release of mastodon/mastodon: v4.3.9 (published 2026-11-20) is newer than the deployed v4.3.8 and out for more than 72 h");
    expect(screen).toContain("      runbook: docs/runbooks/upgrade.md#a-security-release-is-missed");
    expect(screen).toContain("  upstream     mastodon/mastodon: 2 newer (1 security), the newest v4.3.10");
    expect(formatStatus([onApp(null, "https://api.github.com/… answered HTTP 403")], [])).toContain("  upstream     mastodon/mastodon: cannot be read: https://api.github.com/… answered HTTP 403");
    expect(formatStatus([primary()], [])).not.toContain("upstream");
  });

  it("the runbook sections named for them exist", () => {
    const headings = readFileSync(path.join(__dirname, "../../../docs/runbooks/upgrade.md"), "utf8").split("\n")
      .filter((l) => /^#{2,3} /.test(l)).map((l) => l.replace(/^#+ /, "").toLowerCase().replace(/[^a-z0-9 -]/g, "").replace(/ /g, "-"));
    for (const section of [RUNBOOKS.security, RUNBOOKS.upstream]) expect(headings).toContain(section.split("#")[1]);
  });

  it("an unreachable upstream is a problem of its own, with its runbook section", () => {
    const [p] = evaluateStatus([onApp(null, "… could not be reached (curl exit 6: Could not resolve host: api.github.com)"), secondary()]);
    expect(p).toMatchObject({ kind: "upstream-unreachable", runbook: "docs/runbooks/upgrade.md#the-releases-could-not-be-read" });
    expect(p.what).toBe("cannot check mastodon/mastodon for a security release missed by the deployed v4.3.8: … could not be reached (curl exit 6: Could not resolve host: api.github.com)");
  });
});

describe("coopctl status", () => {
  async function run(argv: string[]) {
    let out = "";
    let err = "";
    const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t), env: {} });
    return { code, out, err };
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "coopctl-status-"));
  const file = (name: string, value: unknown) => {
    const p = path.join(dir, name);
    writeFileSync(p, typeof value === "string" ? value : JSON.stringify(value));
    return p;
  };

  it("exits 0 on healthy facts and 1 with the reason first when a threshold flag is crossed", async () => {
    const healthy = file("healthy.json", [primary(), secondary()]);
    expect((await run(["--facts", healthy])).code).toBe(0);
    const r = await run(["--facts", healthy, "--disk-max-percent", "50"]);
    expect(r.code).toBe(1);
    expect(r.out.split("\n")[1]).toBe("  ✗ [secondary] disk /srv (repository /srv/backup/pgbackrest) is 60% full (at most 50%)");
    const j = await run(["--facts", healthy, "--cert-min-days", "90", "--json"]);
    expect(j.code).toBe(1);
    expect(JSON.parse(j.out)).toMatchObject({ ok: false, thresholds: { certMinDays: 90 }, problems: [{ kind: "certificate", host: "primary" }] });
  });

  it("two --facts files are one instance: the backup from one host, the drill from the other", async () => {
    expect((await run(["--facts", file("p.json", primary()), "--facts", file("s.json", secondary())])).code).toBe(0);
    expect((await run(["--facts", file("p2.json", primary())])).code).toBe(1);
  });

  /** `coopctl status --stack test --json` on the healthy facts, with a stack file holding `config`. */
  async function withStackFile(config: string): Promise<{ code: number; json: { thresholds: Record<string, number>; problems: { kind: string }[] } }> {
    const root = mkdtempSync(path.join(os.tmpdir(), "coopctl-status-root-"));
    writeFileSync(path.join(root, "Pulumi.test.yaml"), `config:\n${config}`);
    let out = "";
    const code = await main(["--facts", file("stack.json", [primary(), secondary()]), "--stack", "test", "--json"], { out: (t) => (out += t), err: () => undefined, env: {}, rootDir: root });
    return { code, json: JSON.parse(out) };
  }

  it("--stack reads backup.drillMaxAgeHours from the stack file", async () => {
    const { code, json } = await withStackFile("  socialcoop:backup:\n    drillMaxAgeHours: 4\n");
    expect(code).toBe(1);
    expect(json).toMatchObject({ thresholds: { drillMaxAgeHours: 4 }, problems: [{ kind: "drill-old" }] });
  });

  it("--stack reads the alerts thresholds the hosts' daily check uses", async () => {
    const { code, json } = await withStackFile("  socialcoop:alerts:\n    diskMaxPercent: 50\n    backupMaxAgeHours: 8\n");
    expect(code).toBe(1);
    expect(json.thresholds).toMatchObject({ diskMaxPercent: 50, backupMaxAgeHours: 8, certMinDays: 14, securityGraceHours: 72 });
    // The repository host's disk is 60 % full and the backup 9 h old.
    expect(json.problems.map((p) => p.kind).sort()).toEqual(["backup-old", "disk"]);
  });

  it("wrong usage exits 2 with the usage", async () => {
    for (const argv of [[], ["--bogus"], ["--facts", "x.json", "--disk-max-percent", "lots"], ["--host", "coop@10.0.0.1"], ["--facts"]]) {
      const r = await run(argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.err).toContain("usage: coopctl status");
    }
    const missing = await run(["--facts", path.join(dir, "nope.json")]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain("nope.json");
    const broken = await run(["--facts", file("broken.json", "{not json")]);
    expect(broken.code).toBe(2);
    const help = await run(["--help"]);
    expect(help.code).toBe(0);
    expect(help.out).toContain("--disk-max-percent");
    expect(help.out).toContain("--security-grace-hours [72]");
  });

  it("--security-grace-hours and alerts.securityGraceHours set how long a security release may stay missed", async () => {
    const missed = { ...primary(), upstream: { repo: "mastodon/mastodon", url: "u", error: null,
      releases: [{ tag: "v4.3.9", publishedAt: "2026-11-28T12:00:00Z", prerelease: false, draft: false, security: true, ageSeconds: 80 * H }] } };
    const facts = file("missed.json", [missed, secondary()]);
    expect((await run(["--facts", facts])).code).toBe(1);
    expect((await run(["--facts", facts, "--security-grace-hours", "96"])).code).toBe(0);
    const root = mkdtempSync(path.join(os.tmpdir(), "coopctl-status-root-"));
    writeFileSync(path.join(root, "Pulumi.test.yaml"), "config:\n  socialcoop:alerts:\n    securityGraceHours: 96\n");
    let out = "";
    const code = await main(["--facts", facts, "--stack", "test", "--json"], { out: (t) => (out += t), err: () => undefined, env: {}, rootDir: root });
    expect(code).toBe(0);
    expect(JSON.parse(out).thresholds.securityGraceHours).toBe(96);
  });
});
