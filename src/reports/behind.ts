/**
 * `coopctl behind`: how far each deployed component is behind upstream. Pure functions of the deployed
 * versions, the fetched upstream data and `now`, so a test with recorded data and a fixed date can check
 * every number by hand.
 *
 * Definitions (printed with the report, so nobody has to read this file to trust it):
 * - releases behind: final (non-draft, non-pre-release) upstream releases published by `now` with a higher
 *   version than the deployed one, on any branch (a backport to the deployed branch counts; one to an older
 *   branch does not); Hometown's are ordered by the Hometown part, then the Mastodon base;
 * - days behind: calendar days (UTC) since the first of those was published; 0 when up to date;
 * - security release: one whose notes mention "security", a CVE or a GHSA advisory, or that Mastodon's
 *   update check marks `urgent`;
 * - cadence: median days between release days (releases on the same day, e.g. backports to several
 *   branches, count once) over the last 365 days.
 *
 * Upstream data that is missing or holds no final release is an error (`FetchError`, exit 3), never
 * "nothing newer": the comparison below refuses to run without something to compare against.
 */
import { calendarDays, FetchError, isoDay, textTable } from "./http";
import type { PostgresMajor, Release, UpdateNotice } from "./upstream";
import { compareHometown, compareVersions, formatVersion, parseHometown, parseVersion, type HometownVersion, type Version } from "./versions";

export interface DeployedVersions {
  readonly mastodon?: string;
  readonly hometown?: string;
  readonly synapse?: string;
  readonly postgres?: number | string;
}

export interface UpstreamData {
  readonly mastodonReleases?: readonly Release[];
  readonly hometownReleases?: readonly Release[];
  readonly synapseReleases?: readonly Release[];
  /** Update-check answers keyed by the version asked about (`4.3.8`, no `v`, no `+hometown`). */
  readonly updateNotices?: Readonly<Record<string, readonly UpdateNotice[]>>;
  readonly postgres?: readonly PostgresMajor[];
}

export type ComponentName = "mastodon" | "hometown" | "hometown-base" | "synapse" | "postgresql";

export interface MissedSecurityRelease {
  readonly version: string;
  readonly publishedAt: string | null;
  /** Why it counts: "release notes", "update check (urgent)" or "end of life". */
  readonly sources: readonly string[];
}

export interface Cadence {
  readonly windowDays: number;
  readonly releaseDays: number;
  /** Null with fewer than two release days in the window. */
  readonly medianDays: number | null;
}

export interface ComponentRow {
  readonly component: ComponentName;
  /** Which upstream the row compares against. */
  readonly upstream: string;
  readonly deployed: string;
  readonly latest: string | null;
  readonly behindUnit: "releases" | "majors";
  readonly behind: number;
  readonly daysBehind: number;
  readonly missedReleases: readonly string[];
  readonly securityMissed: readonly MissedSecurityRelease[];
  readonly cadence: Cadence | null;
  readonly notes: readonly string[];
}

export interface Recommendation {
  readonly schedule: "monthly" | "every two weeks";
  readonly lines: readonly string[];
}

export interface BehindReport {
  readonly generatedAt: string;
  readonly rows: readonly ComponentRow[];
  readonly securityReleaseMissed: boolean;
  readonly recommendation: Recommendation;
  readonly definitions: readonly string[];
}

export const CADENCE_WINDOW_DAYS = 365;
/** A monthly upgrade fits while it crosses at most this many releases of any one component. */
export const MAX_RELEASES_PER_UPGRADE = 3;
const DAYS_PER_MONTH = 365.25 / 12;
/** How soon a security release is applied; the hosts' daily check tells one older (alerts.securityGraceHours). */
export const SECURITY_GRACE_HOURS = 72;

export const DEFINITIONS: readonly string[] = [
  "behind: final upstream releases published by the report date with a higher version than the deployed one (pre-releases and drafts excluded; Hometown ordered by its own part, then its Mastodon base); for PostgreSQL, newer major versions",
  "days: calendar days (UTC) since the first of those was published",
  "security: notes mention security, a CVE or a GHSA advisory, or Mastodon's update check marks the release urgent; for PostgreSQL, a major past its end of life",
  `cadence: median days between release days over the last ${CADENCE_WINDOW_DAYS} days (same-day releases count once)`,
];

/** A deployed version that cannot be read; the CLI reports it as a usage error (exit 2). */
export class VersionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "VersionError";
  }
}

/**
 * "security", a CVE id or a GHSA id as a word, in any case: JavaScript's `/\bsecurity\b|\bCVE-\d{4}-\d{4,}\b|\bGHSA(-[0-9a-z]{4}){3}\b/i`
 * spelt out in ASCII (word edges as look-arounds, letters as classes, no flag), because the hosts' daily
 * check reads the same text with jq (scripts/status.sh), whose regular expressions count é as a word
 * character, ſ as an s and other digits as \d. test/integration/check.test.ts holds the two to one answer.
 */
const W = "(?<![A-Za-z0-9_])";
const E = "(?![A-Za-z0-9_])";
export const SECURITY_PATTERN =
  `${W}[Ss][Ee][Cc][Uu][Rr][Ii][Tt][Yy]${E}|${W}[Cc][Vv][Ee]-[0-9]{4}-[0-9]{4,}${E}|${W}[Gg][Hh][Ss][Aa](-[0-9A-Za-z]{4}){3}${E}`;
const SECURITY_TEXT = new RegExp(SECURITY_PATTERN);

export function mentionsSecurity(body: string): boolean {
  return SECURITY_TEXT.test(body);
}

/** The version a Mastodon server sends to the update check: no `v`, no `+suffix`. */
export function updateCheckVersion(tag: string): string {
  return tag.replace(/^v/, "").split("+")[0];
}

interface Parsed<V> {
  readonly release: Release;
  readonly version: V;
}

/** How one upstream's tags are read and ordered. */
interface TagOrder<V> {
  readonly parse: (tag: string) => V | null;
  readonly compare: (a: V, b: V) => number;
  /** A tag that says beta or rc: GitHub's prerelease flag is set by hand, the tag is the authority. */
  readonly isPre: (v: V) => boolean;
  /** For the note when the deployed tag is not among the releases: "comparing by <by>". */
  readonly by: string;
}

const VERSION_TAGS: TagOrder<Version> = {
  parse: parseVersion, compare: compareVersions, isPre: (v) => v.pre !== null, by: "version number",
};
const HOMETOWN_TAGS: TagOrder<HometownVersion> = {
  parse: parseHometown, compare: compareHometown, isPre: (v) => v.base.pre !== null || v.fork.pre !== null,
  by: "Hometown part, then Mastodon base",
};

function finalReleases<V>(releases: readonly Release[], order: TagOrder<V>): Parsed<V>[] {
  const out: Parsed<V>[] = [];
  for (const release of releases) {
    if (release.draft || release.prerelease) continue;
    const version = order.parse(release.tag);
    if (version === null || order.isPre(version)) continue;
    out.push({ release, version });
  }
  return out;
}

/** Whether `date` (an ISO date or date-time, checked when read) is not after `now`. */
function notAfter(date: string, now: Date): boolean {
  return Date.parse(date) <= now.getTime();
}

export function cadence(releases: readonly Release[], now: Date): Cadence {
  const days = new Set<string>();
  for (const r of releases) {
    const age = calendarDays(r.publishedAt, now);
    if (age >= 0 && age <= CADENCE_WINDOW_DAYS) days.add(isoDay(r.publishedAt));
  }
  const sorted = [...days].sort();
  const gaps = sorted.slice(1).map((d, i) => calendarDays(sorted[i], d)).sort((a, b) => a - b);
  return { windowDays: CADENCE_WINDOW_DAYS, releaseDays: sorted.length, medianDays: median(gaps) };
}

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function earliest(releases: readonly Release[]): Release | null {
  let first: Release | null = null;
  for (const r of releases) if (first === null || Date.parse(r.publishedAt) < Date.parse(first.publishedAt)) first = r;
  return first;
}

interface Comparison<V> {
  /** Every final release fetched, also those published after `now`. */
  readonly finals: readonly Parsed<V>[];
  /** Final releases published by `now` with a higher version than the deployed one, in version order. */
  readonly newer: readonly Parsed<V>[];
  /** The highest final release published by `now`. */
  readonly latest: Parsed<V> | null;
  readonly daysBehind: number;
  readonly cadence: Cadence;
  readonly notes: readonly string[];
}

/**
 * The one comparison of a deployed tag with an upstream's GitHub releases (Mastodon, Synapse, Hometown,
 * Hometown's Mastodon base). With no final release to compare against (the list missing, empty, or only
 * pre-releases and unreadable tags) it throws: that is an upstream error, not "nothing newer".
 */
function compareTags<V>(args: {
  repo: string;
  releases: readonly Release[] | undefined;
  deployedTag: string;
  deployed: V;
  order: TagOrder<V>;
  now: Date;
}): Comparison<V> {
  const { order, now } = args;
  const fetched = args.releases ?? [];
  const finals = finalReleases(fetched, order);
  if (finals.length === 0) {
    const what = args.releases === undefined ? "none were fetched"
      : fetched.length === 0 ? "GitHub listed none"
        : `none of the ${fetched.length} listed is a final release with a version tag`;
    throw new FetchError(`GitHub releases of ${args.repo}: ${what}, so there is nothing to compare ${args.deployedTag} with ` +
      `(missing data, not "nothing newer"). Fix: check that https://github.com/${args.repo}/releases lists releases ` +
      "(a renamed or moved repository) and that COOP_GITHUB_API points at the GitHub API, then re-run.");
  }
  const known = finals.filter((p) => notAfter(p.release.publishedAt, now)).sort((a, b) => order.compare(a.version, b.version));
  const newer = known.filter((p) => order.compare(p.version, args.deployed) > 0);
  const notes: string[] = [];
  if (!known.some((p) => order.compare(p.version, args.deployed) === 0)) {
    notes.push(`${args.deployedTag} is not among the upstream releases fetched; comparing by ${order.by}`);
  }
  const first = earliest(newer.map((p) => p.release));
  return {
    finals,
    newer,
    latest: known.length > 0 ? known[known.length - 1] : null,
    daysBehind: first ? Math.max(0, calendarDays(first.publishedAt, now)) : 0,
    cadence: cadence(known.map((p) => p.release), now),
    notes,
  };
}

/**
 * A deployed Mastodon or Synapse tag (or the Mastodon base of a Hometown tag) against its upstream.
 * `notices` are the update check's answer for the deployed version.
 */
function compareWithUpstream(args: {
  component: ComponentName;
  upstream: string;
  deployedTag: string;
  deployed: Version;
  releases: readonly Release[] | undefined;
  notices: readonly UpdateNotice[];
  now: Date;
}): ComponentRow {
  const c = compareTags({ repo: args.upstream, releases: args.releases, deployedTag: args.deployedTag, deployed: args.deployed, order: VERSION_TAGS, now: args.now });
  const security = new Map<string, { publishedAt: string | null; sources: string[] }>();
  for (const p of c.newer) {
    if (mentionsSecurity(p.release.body)) security.set(formatVersion(p.version), { publishedAt: p.release.publishedAt, sources: ["release notes"] });
  }
  const released = new Map(c.finals.map((p) => [formatVersion(p.version), p.release]));
  for (const n of args.notices) {
    const v = parseVersion(n.version);
    if (!n.urgent || v === null || compareVersions(v, args.deployed) <= 0) continue;
    const key = formatVersion(v);
    const release = released.get(key);
    // Today's update check also names releases that came after a `--now` in the past.
    if (release && !notAfter(release.publishedAt, args.now)) continue;
    const entry = security.get(key) ?? { publishedAt: release?.publishedAt ?? null, sources: [] };
    entry.sources.push("update check (urgent)");
    security.set(key, entry);
  }
  return {
    component: args.component,
    upstream: args.upstream,
    deployed: args.deployedTag,
    latest: c.latest?.release.tag ?? null,
    behindUnit: "releases",
    behind: c.newer.length,
    daysBehind: c.daysBehind,
    missedReleases: c.newer.map((p) => p.release.tag),
    securityMissed: [...security.entries()]
      .sort(([a], [b]) => compareVersions(parseVersion(a) as Version, parseVersion(b) as Version))
      .map(([version, e]) => ({ version: `v${version}`, publishedAt: e.publishedAt, sources: e.sources })),
    cadence: c.cadence,
    notes: c.notes,
  };
}

function hometownRow(deployedTag: string, releases: readonly Release[] | undefined, now: Date): ComponentRow {
  const deployed = parseHometown(deployedTag);
  if (deployed === null) throw new VersionError(`versions.hometown: ${JSON.stringify(deployedTag)} is not a Hometown tag like v4.5.11+hometown-1.2.1`);
  const upstream = "hometown-fork/hometown";
  const c = compareTags({ repo: upstream, releases, deployedTag, deployed, order: HOMETOWN_TAGS, now });
  const notes: string[] = [];
  const latest = c.latest?.version;
  if (latest) {
    notes.push(`Hometown part ${formatVersion(deployed.fork)} → ${formatVersion(latest.fork)}; ` +
      `Mastodon base ${formatVersion(deployed.base)} → ${formatVersion(latest.base)} in Hometown's latest release`);
    if (compareVersions(latest.fork, deployed.fork) > 0 && compareVersions(latest.base, deployed.base) < 0) {
      notes.push(`a newer Hometown exists: ${c.latest?.release.tag} has Hometown ${formatVersion(latest.fork)} (deployed ${formatVersion(deployed.fork)}), ` +
        `though on Mastodon ${formatVersion(latest.base)}, older than the deployed base ${formatVersion(deployed.base)}`);
    }
  }
  return {
    component: "hometown",
    upstream,
    deployed: deployedTag,
    latest: c.latest?.release.tag ?? null,
    behindUnit: "releases",
    behind: c.newer.length,
    daysBehind: c.daysBehind,
    missedReleases: c.newer.map((p) => p.release.tag),
    securityMissed: c.newer
      .filter((p) => mentionsSecurity(p.release.body))
      .map((p) => ({ version: p.release.tag, publishedAt: p.release.publishedAt, sources: ["release notes"] })),
    cadence: c.cadence,
    notes: [...notes, ...c.notes],
  };
}

function postgresRow(deployedRaw: number | string, majors: readonly PostgresMajor[] | undefined, now: Date): ComponentRow {
  const text = String(deployedRaw);
  const m = /^(\d+)(?:\.(\d+))?$/.exec(text);
  if (!m) throw new VersionError(`versions.postgres: ${JSON.stringify(text)} is not a PostgreSQL version like 15 or 15.8`);
  const major = Number(m[1]);
  const minor = m[2] === undefined ? null : Number(m[2]);
  const numeric = (majors ?? []).filter((v) => /^\d+$/.test(v.major));
  if (numeric.length === 0) {
    throw new FetchError(`PostgreSQL versions: ${majors === undefined ? "none were fetched" : "versions.json lists no major version from 10 on"}, ` +
      `so there is nothing to compare ${text} with (missing data, not "nothing newer"). Fix: check COOP_POSTGRES_VERSIONS_URL, then re-run.`);
  }
  const mine = numeric.find((v) => Number(v.major) === major);
  // versions.json holds no history: a major counts from its first release, so `--now` in the past leaves later ones out.
  const released = numeric.filter((v) => notAfter(v.firstRelDate, now));
  const newerMajors = released.filter((v) => Number(v.major) > major).sort((a, b) => Number(a.major) - Number(b.major));
  const current = released.find((v) => v.current) ?? [...released].sort((a, b) => Number(b.major) - Number(a.major))[0];
  const notes: string[] = [];
  const security: MissedSecurityRelease[] = [];
  let daysBehind = 0;
  if (mine) {
    const eolPassed = !mine.supported || (mine.eolDate !== "" && calendarDays(mine.eolDate, now) >= 0);
    if (eolPassed) {
      security.push({ version: `${major} (end of life ${mine.eolDate})`, publishedAt: null, sources: ["end of life"] });
      notes.push(`PostgreSQL ${major} reached end of life on ${mine.eolDate} and gets no more security fixes: plan the major upgrade now`);
    } else {
      notes.push(`PostgreSQL ${major} is supported until ${mine.eolDate} (${calendarDays(now, mine.eolDate)} days)`);
    }
    if (minor !== null && minor < Number(mine.latestMinor)) {
      notes.push(`${major}.${minor} → ${major}.${mine.latestMinor}: ${Number(mine.latestMinor) - minor} minor releases behind; minor releases usually carry security fixes, read https://www.postgresql.org/support/security/`);
      if (newerMajors.length === 0) daysBehind = Math.max(0, calendarDays(mine.relDate, now));
    }
  } else {
    notes.push(`PostgreSQL ${major} is not listed in versions.json`);
  }
  if (newerMajors.length > 0) daysBehind = Math.max(0, calendarDays(newerMajors[0].firstRelDate, now));
  notes.push("PostgreSQL publishes minor releases quarterly (February, May, August, November); versions.json holds no history, so no cadence is computed");
  return {
    component: "postgresql",
    upstream: "postgresql.org",
    deployed: text,
    latest: current ? `${current.major}.${current.latestMinor}` : null,
    behindUnit: "majors",
    behind: newerMajors.length,
    daysBehind,
    missedReleases: newerMajors.map((v) => `${v.major}.${v.latestMinor}`),
    securityMissed: security,
    cadence: null,
    notes: mine ? [`latest in ${major}: ${major}.${mine.latestMinor}`, ...notes] : notes,
  };
}

export function recommend(rows: readonly ComponentRow[]): Recommendation {
  const lines: string[] = [];
  let fits = true;
  const seen = new Set<string>();
  for (const row of rows) {
    const median = row.cadence?.medianDays;
    if (median == null || median <= 0 || seen.has(row.upstream)) continue;
    seen.add(row.upstream);
    const perMonth = DAYS_PER_MONTH / median;
    if (perMonth > MAX_RELEASES_PER_UPGRADE) fits = false;
    lines.push(`${row.upstream}: a release every ${median} days (median), about ${perMonth.toFixed(1)} per monthly upgrade`);
  }
  const schedule = fits ? "monthly" : "every two weeks";
  return {
    schedule,
    lines: [
      fits
        ? `upgrade monthly (one evening, e.g. the first Tuesday): every upstream releases at most ${MAX_RELEASES_PER_UPGRADE} times a month, few enough to read the notes of all in one sitting`
        : `upgrade every two weeks: some upstream releases more than ${MAX_RELEASES_PER_UPGRADE} times a month, too many release notes for one monthly evening`,
      ...lines,
      `security releases do not wait for the schedule: apply them within ${SECURITY_GRACE_HOURS} hours (this command exits 1 while one is missed)`,
    ],
  };
}

export function buildBehindReport(deployed: DeployedVersions, upstream: UpstreamData, now: Date): BehindReport {
  const rows: ComponentRow[] = [];
  const notices = upstream.updateNotices ?? {};
  if (deployed.mastodon) {
    const version = parseVersion(deployed.mastodon);
    if (version === null) throw new VersionError(`versions.mastodon: ${JSON.stringify(deployed.mastodon)} is not a release tag like v4.3.8`);
    rows.push(compareWithUpstream({
      component: "mastodon", upstream: "mastodon/mastodon", deployedTag: deployed.mastodon, deployed: version,
      releases: upstream.mastodonReleases, notices: notices[updateCheckVersion(deployed.mastodon)] ?? [], now,
    }));
  }
  if (deployed.hometown) {
    rows.push(hometownRow(deployed.hometown, upstream.hometownReleases, now));
    const base = parseHometown(deployed.hometown)?.base as Version;
    const baseText = updateCheckVersion(deployed.hometown);
    rows.push(compareWithUpstream({
      component: "hometown-base", upstream: "mastodon/mastodon", deployedTag: baseText, deployed: base,
      releases: upstream.mastodonReleases, notices: notices[baseText] ?? [], now,
    }));
  }
  if (deployed.synapse) {
    const version = parseVersion(deployed.synapse);
    if (version === null) throw new VersionError(`versions.synapse: ${JSON.stringify(deployed.synapse)} is not a release tag like v1.120.0`);
    rows.push(compareWithUpstream({
      component: "synapse", upstream: "element-hq/synapse", deployedTag: deployed.synapse, deployed: version,
      releases: upstream.synapseReleases, notices: [], now,
    }));
  }
  if (deployed.postgres !== undefined) rows.push(postgresRow(deployed.postgres, upstream.postgres, now));
  return {
    generatedAt: now.toISOString(),
    rows,
    securityReleaseMissed: rows.some((r) => r.securityMissed.length > 0),
    recommendation: recommend(rows),
    definitions: DEFINITIONS,
  };
}

const LABELS: Record<ComponentName, string> = {
  mastodon: "mastodon",
  hometown: "hometown",
  "hometown-base": "  mastodon base",
  synapse: "synapse",
  postgresql: "postgresql",
};

export function formatBehindReport(report: BehindReport, stack: string): string {
  const header = ["component", "deployed", "latest", "behind", "days", "security", "cadence"];
  const body = report.rows.map((r) => [
    LABELS[r.component],
    r.deployed,
    r.latest ?? "?",
    r.behindUnit === "majors" ? `${r.behind} major${r.behind === 1 ? "" : "s"}` : String(r.behind),
    String(r.daysBehind),
    String(r.securityMissed.length),
    r.cadence?.medianDays == null ? "-" : `${r.cadence.medianDays} d (${r.cadence.releaseDays} release days)`,
  ]);
  const out = [
    `coopctl behind: stack ${stack}, ${isoDay(report.generatedAt)}`,
    "",
    textTable([header, ...body], new Set([3, 4, 5])),
    "",
  ];
  const details = report.rows.filter((r) => r.notes.length > 0 || r.securityMissed.length > 0);
  for (const r of details) {
    out.push(`${r.component === "hometown-base" ? "hometown's mastodon base" : r.component} (${r.upstream}):`);
    for (const s of r.securityMissed) out.push(`  security: ${s.version}${s.publishedAt ? ` (${isoDay(s.publishedAt)})` : ""} from ${s.sources.join(" and ")}`);
    for (const n of r.notes) out.push(`  ${n}`);
  }
  out.push("", `recommended schedule: ${report.recommendation.schedule}`);
  for (const line of report.recommendation.lines) out.push(`  ${line}`);
  out.push("", "definitions:");
  for (const d of report.definitions) out.push(`  ${d}`);
  out.push("", report.securityReleaseMissed ? "RESULT: a security release is missed (exit 1)" : "RESULT: no missed security release");
  return out.join("\n") + "\n";
}
