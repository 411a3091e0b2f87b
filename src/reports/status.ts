/**
 * `coopctl status`: the facts scripts/status.sh prints on each host (this file is the contract with it),
 * the thresholds that say when a person has to act, and the one-screen text. `evaluateStatus` is pure:
 * facts and thresholds in, problems out, most urgent first.
 */
import { alertsSchema, backupSchema } from "../config/schema";
import { compareHometown, compareVersions, parseHometown, parseVersion, type HometownVersion, type Version } from "./versions";

export interface BackupFacts {
  readonly manifest: string | null;
  /** End of the last complete backup (backup.sh's metric), else its manifest's time. */
  readonly finishedAt: string;
  readonly ageSeconds: number;
  readonly backupLabel: string | null;
  readonly sizeBytes: { readonly database: number | null; readonly repository: number | null; readonly media: number | null };
  readonly repositories: { readonly pgbackrest: readonly string[]; readonly restic: readonly string[] };
}

export interface DrillFacts {
  readonly ok: boolean;
  readonly reason: string | null;
  readonly finishedAt: string | null;
  readonly ageSeconds: number | null;
  readonly backupLabel: string | null;
  readonly ttrSeconds: Readonly<Record<string, number>> | null;
  readonly verified: { readonly tables?: Readonly<Record<string, number>>; readonly mediaFiles?: number; readonly mediaSampled?: number } | null;
}

export interface WalArchiveFacts {
  readonly archiveMode: string;
  readonly archivedCount: number;
  readonly lastArchivedAt: string | null;
  readonly secondsSinceLastArchived: number | null;
  readonly failedCount: number;
  readonly lastFailedAt: string | null;
  readonly failedSinceLastSuccess: boolean;
  readonly pendingSegments: number;
  /** Age of the oldest WAL segment waiting to be archived; 0 when none waits. */
  readonly lagSeconds: number;
}

export interface DiskFacts {
  readonly what: "data" | "repository";
  readonly path: string;
  readonly mount: string;
  readonly usePercent: number;
  readonly availBytes: number;
}

export interface CertificateFacts {
  readonly path: string;
  readonly subject: string | null;
  readonly notAfter: string | null;
  /** Whole days until expiry (negative: expired); null when the file cannot be read as a certificate. */
  readonly daysLeft: number | null;
}

/** One release of the app's upstream as status.sh reduces GitHub's list (no notes: only whether they mention security). */
export interface UpstreamRelease {
  readonly tag: string;
  /** published_at (a draft's created_at); ISO 8601. */
  readonly publishedAt: string;
  readonly prerelease: boolean;
  readonly draft: boolean;
  /** The notes mention security, a CVE or a GHSA id (mentionsSecurity in behind.ts, SECURITY_PATTERN). */
  readonly security: boolean;
  /** Seconds since publication when the facts were collected; null when the date cannot be read (a draft's). */
  readonly ageSeconds: number | null;
}

/** The releases of the deployed app's upstream, fetched by the host that runs the app. */
export interface UpstreamFacts {
  /** GitHub owner/name, e.g. mastodon/mastodon. */
  readonly repo: string;
  readonly url: string;
  /** Why the list could not be had (unreachable, an HTTP error, not a list of releases); null when it was. */
  readonly error: string | null;
  /** The first page (the newest 100); null with an error. */
  readonly releases: readonly UpstreamRelease[] | null;
}

/** What status.sh prints for one host; each fact is null when the host does not have it. */
export interface HostFacts {
  readonly host: string;
  readonly collectedAt: string;
  readonly backup: BackupFacts | null;
  readonly drill: DrillFacts | null;
  readonly walArchive: WalArchiveFacts | null;
  readonly disks: readonly DiskFacts[];
  readonly certificates: readonly CertificateFacts[];
  readonly maintenance: { readonly on: boolean; readonly since: string | null } | null;
  readonly appVersion: string | null;
  /** Null (or absent, from an older status.sh) without an app here or without alerts' upstream setting. */
  readonly upstream?: UpstreamFacts | null;
}

export interface StatusThresholds {
  readonly backupMaxAgeHours: number;
  readonly drillMaxAgeHours: number;
  readonly walMaxLagSeconds: number;
  readonly diskMaxPercent: number;
  readonly certMinDays: number;
  /** A security release missed longer than this after its publication needs a person. */
  readonly securityGraceHours: number;
}

// The stack config's defaults: backup.drillMaxAgeHours (which the upgrade hops enforce) and the alerts
// thresholds the hosts' daily check (scripts/check.sh) uses.
const ALERT_DEFAULTS = alertsSchema.parse({});
export const DEFAULT_THRESHOLDS: StatusThresholds = {
  backupMaxAgeHours: ALERT_DEFAULTS.backupMaxAgeHours,
  drillMaxAgeHours: backupSchema.parse({}).drillMaxAgeHours,
  walMaxLagSeconds: ALERT_DEFAULTS.walMaxLagSeconds,
  diskMaxPercent: ALERT_DEFAULTS.diskMaxPercent,
  certMinDays: ALERT_DEFAULTS.certMinDays,
  securityGraceHours: ALERT_DEFAULTS.securityGraceHours,
};

export const RUNBOOKS = {
  restore: "docs/runbooks/restore.md",
  tls: "docs/runbooks/tls.md",
  operating: "docs/operating.md",
  security: "docs/runbooks/upgrade.md#a-security-release-is-missed",
  upstream: "docs/runbooks/upgrade.md#the-releases-could-not-be-read",
} as const;

export type ProblemKind =
  | "drill-failed" | "drill-missing" | "drill-old" | "backup-missing" | "backup-old" | "wal-failing" | "wal-lag" | "wal-off" | "disk" | "certificate"
  | "security-release" | "upstream-unreachable";

export interface Problem {
  readonly kind: ProblemKind;
  readonly host: string;
  /** One line: what is wrong, with its reason. */
  readonly what: string;
  readonly value: string | number | null;
  readonly threshold: string | number | null;
  readonly runbook: string;
}

/** Most urgent first: a backup nobody could restore outranks everything else. */
const URGENCY: readonly ProblemKind[] = ["drill-failed", "backup-missing", "drill-missing", "wal-failing", "wal-off", "security-release", "backup-old", "drill-old", "wal-lag", "disk", "certificate", "upstream-unreachable"];

const hours = (seconds: number) => Math.round((seconds / 3600) * 10) / 10;

function newest<T>(items: readonly { host: string; fact: T }[], age: (f: T) => number | null): { host: string; fact: T } | undefined {
  return [...items].sort((a, b) => (age(a.fact) ?? Infinity) - (age(b.fact) ?? Infinity))[0];
}

/**
 * The final releases newer than `deployed` (ordered as coopctl behind orders them: by version number, a
 * Hometown tag by its Hometown part, then its Mastodon base), or why they cannot be told. Pre-releases
 * (the flag or a beta/rc tag), drafts and tags of another form are left out.
 */
export function newerReleases(deployed: string, releases: readonly UpstreamRelease[]): { newer: UpstreamRelease[] } | { reason: string } {
  // One way to read and order tags: a Hometown deployment against Hometown tags, any other against version tags.
  const hometown = parseHometown(deployed);
  const read = hometown
    ? (tag: string) => {
        const h = parseHometown(tag);
        return h && h.base.pre === null && h.fork.pre === null ? h : null;
      }
    : (tag: string) => {
        const v = parseVersion(tag);
        return v && v.pre === null ? v : null;
      };
  type Read = NonNullable<ReturnType<typeof read>>;
  const compare = (a: Read, b: Read): number => (hometown ? compareHometown(a as HometownVersion, b as HometownVersion) : compareVersions(a as Version, b as Version));
  const mine: Read | null = hometown ?? parseVersion(deployed);
  if (mine === null) return { reason: `the deployed ${deployed} is not a release tag like v4.3.8 or v4.5.11+hometown-1.2.1` };
  const finals = releases.flatMap((r) => {
    const v = r.draft || r.prerelease ? null : read(r.tag);
    return v ? [{ r, v }] : [];
  });
  if (finals.length === 0) {
    return { reason: `none of the ${releases.length} releases listed is a final release with a version tag, so there is nothing to compare ${deployed} with (missing data, not "nothing newer")` };
  }
  return { newer: finals.filter((f) => compare(f.v, mine) > 0).sort((a, b) => compare(a.v, b.v)).map((f) => f.r) };
}

/** A missed security release on one host (the one running the app), or the reason it cannot be told. */
function upstreamProblems(h: HostFacts, thresholds: StatusThresholds): Problem[] {
  const u = h.upstream;
  if (!u || h.appVersion === null) return [];
  const cannot = (reason: string): Problem[] => [{
    kind: "upstream-unreachable", host: h.host, what: `cannot check ${u.repo} for a security release missed by the deployed ${h.appVersion}: ${reason}`,
    value: null, threshold: null, runbook: RUNBOOKS.upstream,
  }];
  if (u.error !== null || u.releases === null) return cannot(u.error ?? "no releases list");
  const judged = newerReleases(h.appVersion, u.releases);
  if ("reason" in judged) return cannot(judged.reason);
  const missed = judged.newer.filter((r) => r.security && r.ageSeconds !== null && r.ageSeconds > thresholds.securityGraceHours * 3600);
  if (missed.length === 0) return [];
  const one = missed.length === 1;
  const list = missed.map((r) => `${r.tag} (published ${r.publishedAt.slice(0, 10)})`).join(", ");
  return [{
    kind: "security-release", host: h.host,
    what: `missed security release${one ? "" : "s"} of ${u.repo}: ${list} ${one ? "is" : "are"} newer than the deployed ${h.appVersion} ` +
      `and out for more than ${thresholds.securityGraceHours} h (alerts.securityGraceHours)`,
    value: missed[missed.length - 1].tag, threshold: thresholds.securityGraceHours, runbook: RUNBOOKS.security,
  }];
}

/**
 * The problems of an instance whose hosts reported `facts` (one entry per host). The backup and the drill
 * are judged on the newest one any host reports (the manifest lives on the database host, the drill on
 * the repository host); WAL, disks and certificates on every host that reports them.
 */
export function evaluateStatus(facts: HostFacts | readonly HostFacts[], thresholds: StatusThresholds = DEFAULT_THRESHOLDS): Problem[] {
  const hosts: readonly HostFacts[] = Array.isArray(facts) ? facts : [facts as HostFacts];
  const problems: Problem[] = [];
  const allHosts = hosts.map((h) => h.host).join(", ");

  const drills = hosts.flatMap((h) => (h.drill ? [{ host: h.host, fact: h.drill }] : []));
  const drill = newest(drills, (d) => d.ageSeconds);
  if (!drill) {
    problems.push({ kind: "drill-missing", host: allHosts, what: "no restore drill result on any host: a backup nobody restored is not a backup; run the drill", value: null, threshold: null, runbook: RUNBOOKS.restore });
  } else {
    const d = drill.fact;
    if (!d.ok) {
      problems.push({ kind: "drill-failed", host: drill.host, what: `restore drill failed: ${d.reason ?? "no reason recorded"}`, value: d.finishedAt, threshold: null, runbook: RUNBOOKS.restore });
    }
    const limit = thresholds.drillMaxAgeHours * 3600;
    if (d.ageSeconds === null || d.ageSeconds > limit) {
      problems.push({ kind: "drill-old", host: drill.host, what: `last restore drill is ${d.ageSeconds === null ? "of unknown age" : `${hours(d.ageSeconds)} h old`} (at most ${thresholds.drillMaxAgeHours} h, backup.drillMaxAgeHours): upgrades refuse it`, value: d.ageSeconds === null ? null : hours(d.ageSeconds), threshold: thresholds.drillMaxAgeHours, runbook: RUNBOOKS.restore });
    }
  }

  const backups = hosts.flatMap((h) => (h.backup ? [{ host: h.host, fact: h.backup }] : []));
  const backup = newest(backups, (b) => b.ageSeconds);
  if (!backup) {
    problems.push({ kind: "backup-missing", host: allHosts, what: "no backup recorded on any host (no manifest, no pgBackRest backup)", value: null, threshold: null, runbook: RUNBOOKS.restore });
  } else if (backup.fact.ageSeconds > thresholds.backupMaxAgeHours * 3600) {
    problems.push({ kind: "backup-old", host: backup.host, what: `last backup is ${hours(backup.fact.ageSeconds)} h old (at most ${thresholds.backupMaxAgeHours} h)`, value: hours(backup.fact.ageSeconds), threshold: thresholds.backupMaxAgeHours, runbook: RUNBOOKS.restore });
  }

  for (const h of hosts) {
    problems.push(...upstreamProblems(h, thresholds));
    const w = h.walArchive;
    if (w) {
      if (w.archiveMode === "off") {
        problems.push({ kind: "wal-off", host: h.host, what: "WAL archiving is off: no point-in-time recovery since the last backup", value: w.archiveMode, threshold: "on", runbook: RUNBOOKS.restore });
      } else if (w.failedSinceLastSuccess) {
        problems.push({ kind: "wal-failing", host: h.host, what: `WAL archiving fails: ${w.failedCount} failures, the last at ${w.lastFailedAt ?? "?"} after the last success at ${w.lastArchivedAt ?? "never"}`, value: w.failedCount, threshold: 0, runbook: RUNBOOKS.restore });
      }
      if (w.lagSeconds > thresholds.walMaxLagSeconds) {
        problems.push({ kind: "wal-lag", host: h.host, what: `WAL archive lag ${w.lagSeconds} s, ${w.pendingSegments} segments waiting (at most ${thresholds.walMaxLagSeconds} s)`, value: w.lagSeconds, threshold: thresholds.walMaxLagSeconds, runbook: RUNBOOKS.restore });
      }
    }
    // One problem per filesystem, naming every path on it (the data and a repository often share one).
    const byMount = new Map<string, DiskFacts[]>();
    for (const d of h.disks) byMount.set(d.mount, [...(byMount.get(d.mount) ?? []), d]);
    for (const [mount, disks] of byMount) {
      const use = Math.max(...disks.map((d) => d.usePercent));
      if (use > thresholds.diskMaxPercent) {
        const paths = disks.map((d) => `${d.what} ${d.path}`).join(", ");
        problems.push({ kind: "disk", host: h.host, what: `disk ${mount} (${paths}) is ${use}% full (at most ${thresholds.diskMaxPercent}%)`, value: use, threshold: thresholds.diskMaxPercent, runbook: RUNBOOKS.operating });
      }
    }
    for (const c of h.certificates) {
      if (c.daysLeft === null) {
        problems.push({ kind: "certificate", host: h.host, what: `certificate ${c.path} cannot be read`, value: null, threshold: thresholds.certMinDays, runbook: RUNBOOKS.tls });
      } else if (c.daysLeft < thresholds.certMinDays) {
        const when = c.daysLeft < 0 ? `expired ${-c.daysLeft} days ago` : `expires in ${c.daysLeft} days`;
        problems.push({ kind: "certificate", host: h.host, what: `certificate ${c.subject ?? c.path} ${when} (${c.notAfter}; at least ${thresholds.certMinDays} days)`, value: c.daysLeft, threshold: thresholds.certMinDays, runbook: RUNBOOKS.tls });
      }
    }
  }
  return problems.sort((a, b) => URGENCY.indexOf(a.kind) - URGENCY.indexOf(b.kind));
}

// --- Reading status.sh's output ---

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === "string" ? v : null);

export class FactsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FactsError";
  }
}

function parseBackup(v: unknown, where: string): BackupFacts | null {
  if (v === null || v === undefined) return null;
  if (!isObj(v) || num(v.ageSeconds) === null || str(v.finishedAt) === null) throw new FactsError(`${where}.backup: expected an object with finishedAt and ageSeconds, or null`);
  const size = isObj(v.sizeBytes) ? v.sizeBytes : {};
  const repos = isObj(v.repositories) ? v.repositories : {};
  const list = (x: unknown) => (Array.isArray(x) ? x.filter((s): s is string => typeof s === "string") : []);
  return {
    manifest: str(v.manifest),
    finishedAt: str(v.finishedAt) ?? "",
    ageSeconds: num(v.ageSeconds) ?? 0,
    backupLabel: str(v.backupLabel),
    sizeBytes: { database: num(size.database), repository: num(size.repository), media: num(size.media) },
    repositories: { pgbackrest: list(repos.pgbackrest), restic: list(repos.restic) },
  };
}

function parseDrill(v: unknown, where: string): DrillFacts | null {
  if (v === null || v === undefined) return null;
  if (!isObj(v) || typeof v.ok !== "boolean") throw new FactsError(`${where}.drill: expected an object with ok, or null`);
  const ttr = isObj(v.ttrSeconds) ? Object.fromEntries(Object.entries(v.ttrSeconds).flatMap(([k, s]) => (num(s) === null ? [] : [[k, num(s) as number]]))) : null;
  const verified = isObj(v.verified)
    ? {
        tables: isObj(v.verified.tables) ? Object.fromEntries(Object.entries(v.verified.tables).flatMap(([k, n]) => (num(n) === null ? [] : [[k, num(n) as number]]))) : undefined,
        mediaFiles: num(v.verified.mediaFiles) ?? undefined,
        mediaSampled: num(v.verified.mediaSampled) ?? undefined,
      }
    : null;
  return { ok: v.ok, reason: str(v.reason), finishedAt: str(v.finishedAt), ageSeconds: num(v.ageSeconds), backupLabel: str(v.backupLabel), ttrSeconds: ttr, verified };
}

function parseWal(v: unknown, where: string): WalArchiveFacts | null {
  if (v === null || v === undefined) return null;
  if (!isObj(v) || typeof v.archiveMode !== "string") throw new FactsError(`${where}.walArchive: expected an object with archiveMode, or null`);
  return {
    archiveMode: v.archiveMode,
    archivedCount: num(v.archivedCount) ?? 0,
    lastArchivedAt: str(v.lastArchivedAt),
    secondsSinceLastArchived: num(v.secondsSinceLastArchived),
    failedCount: num(v.failedCount) ?? 0,
    lastFailedAt: str(v.lastFailedAt),
    failedSinceLastSuccess: v.failedSinceLastSuccess === true,
    pendingSegments: num(v.pendingSegments) ?? 0,
    lagSeconds: num(v.lagSeconds) ?? 0,
  };
}

function parseUpstream(v: unknown, where: string): UpstreamFacts | null {
  if (v === null || v === undefined) return null;
  if (!isObj(v) || typeof v.repo !== "string") throw new FactsError(`${where}.upstream: expected an object with repo, or null`);
  const releases = Array.isArray(v.releases)
    ? v.releases.map((r, i) => {
        if (!isObj(r) || typeof r.tag !== "string" || typeof r.publishedAt !== "string") throw new FactsError(`${where}.upstream.releases[${i}]: expected {tag, publishedAt, security, ageSeconds}`);
        return { tag: r.tag, publishedAt: r.publishedAt, prerelease: r.prerelease === true, draft: r.draft === true, security: r.security === true, ageSeconds: num(r.ageSeconds) };
      })
    : null;
  return { repo: v.repo, url: str(v.url) ?? "", error: str(v.error) ?? (releases === null ? "no releases list" : null), releases };
}

/** One host's facts from status.sh's JSON; throws FactsError naming the field that is wrong. */
export function parseHostFacts(value: unknown, where = "facts"): HostFacts {
  if (!isObj(value) || typeof value.host !== "string") throw new FactsError(`${where}: expected status.sh's JSON object (with host)`);
  const disks = Array.isArray(value.disks) ? value.disks : [];
  const certs = Array.isArray(value.certificates) ? value.certificates : [];
  return {
    host: value.host,
    collectedAt: str(value.collectedAt) ?? "",
    backup: parseBackup(value.backup, where),
    drill: parseDrill(value.drill, where),
    walArchive: parseWal(value.walArchive, where),
    disks: disks.flatMap((d, i) => {
      if (!isObj(d) || num(d.usePercent) === null || typeof d.path !== "string") throw new FactsError(`${where}.disks[${i}]: expected {what, path, usePercent}`);
      return [{ what: d.what === "repository" ? "repository" : "data", path: d.path, mount: str(d.mount) ?? d.path, usePercent: num(d.usePercent) ?? 0, availBytes: num(d.availBytes) ?? 0 } as const];
    }),
    certificates: certs.flatMap((c, i) => {
      if (!isObj(c) || typeof c.path !== "string") throw new FactsError(`${where}.certificates[${i}]: expected {path, daysLeft}`);
      return [{ path: c.path, subject: str(c.subject), notAfter: str(c.notAfter), daysLeft: num(c.daysLeft) }];
    }),
    maintenance: isObj(value.maintenance) ? { on: value.maintenance.on === true, since: str(value.maintenance.since) } : null,
    appVersion: str(value.appVersion),
    // Left out when null, as the hosts without an app (and an older status.sh) report it.
    ...(value.upstream == null ? {} : { upstream: parseUpstream(value.upstream, where) }),
  };
}

/** A file or a remote run holds one host's object or an array of them. */
export function parseFacts(text: string, where = "facts"): HostFacts[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new FactsError(`${where}: not JSON (${(e as Error).message})`);
  }
  return Array.isArray(value) ? value.map((v, i) => parseHostFacts(v, `${where}[${i}]`)) : [parseHostFacts(value, where)];
}

// --- Output ---

function bytes(n: number | null): string {
  if (n === null) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

function age(seconds: number | null): string {
  if (seconds === null) return "age unknown";
  if (seconds < 120) return `${Math.round(seconds)} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return `${hours(seconds)} h ago`;
}

/** The one screen: problems first (each with its runbook), then each host's facts. */
export function formatStatus(hosts: readonly HostFacts[], problems: readonly Problem[]): string {
  const lines: string[] = [];
  if (problems.length === 0) lines.push("OK: nothing needs a person");
  else {
    lines.push(`NEEDS A PERSON: ${problems.length} problem${problems.length === 1 ? "" : "s"}`);
    for (const p of problems) lines.push(`  ✗ [${p.host}] ${p.what}`, `      runbook: ${p.runbook}`);
  }
  for (const h of hosts) {
    lines.push("", `host ${h.host} (facts at ${h.collectedAt})`);
    const b = h.backup;
    lines.push(
      b
        ? `  backup       ${age(b.ageSeconds)} (${b.finishedAt}), ${b.backupLabel ?? "?"}; database ${bytes(b.sizeBytes.database)}, media ${bytes(b.sizeBytes.media)}; repositories ${[...b.repositories.pgbackrest.map((r) => `pgbackrest ${r}`), ...b.repositories.restic.map((r) => `restic ${r}`)].join(", ") || "?"}`
        : "  backup       none on this host",
    );
    const d = h.drill;
    if (d) {
      const ttr = d.ttrSeconds ? Object.entries(d.ttrSeconds).map(([k, s]) => `${k} ${s.toFixed(1)} s`).join(", ") : "?";
      const verified = d.verified ? `; verified ${Object.keys(d.verified.tables ?? {}).length} tables, ${d.verified.mediaFiles ?? "?"} media files (${d.verified.mediaSampled ?? "?"} hashed)` : "";
      lines.push(`  drill        ${d.ok ? "ok" : `FAILED: ${d.reason ?? "?"}`}, ${age(d.ageSeconds)}; TTR ${ttr}${verified}`);
    } else lines.push("  drill        none on this host");
    const w = h.walArchive;
    lines.push(w ? `  WAL archive  ${w.archiveMode === "off" ? "OFF" : `lag ${w.lagSeconds} s (${w.pendingSegments} waiting), last archived ${w.lastArchivedAt ?? "never"}, ${w.failedCount} failures${w.failedSinceLastSuccess ? " since the last success" : ""}`}` : "  WAL archive  no PostgreSQL answering on this host");
    for (const disk of h.disks) lines.push(`  disk         ${disk.usePercent}% of ${disk.mount} (${disk.what} ${disk.path}), ${bytes(disk.availBytes)} free`);
    for (const c of h.certificates) lines.push(`  certificate  ${c.subject ?? c.path}: ${c.daysLeft === null ? "cannot be read" : `${c.daysLeft} days left (${c.notAfter})`}`);
    lines.push(`  maintenance  ${h.maintenance?.on ? `ON (${h.maintenance.since ?? "?"})` : h.maintenance ? "off" : "?"}`);
    lines.push(`  app          ${h.appVersion ?? "no current release on this host"}`);
    const u = h.upstream;
    if (u) {
      const newer = u.releases && h.appVersion ? newerReleases(h.appVersion, u.releases) : null;
      const said = u.error !== null ? `cannot be read: ${u.error}`
        : newer === null ? "?"
          : "reason" in newer ? newer.reason
            : newer.newer.length === 0 ? "nothing newer"
              : `${newer.newer.length} newer (${newer.newer.filter((r) => r.security).length} security), the newest ${newer.newer[newer.newer.length - 1].tag}`;
      lines.push(`  upstream     ${u.repo}: ${said}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** The --json output: problems first, then the facts as the hosts reported them. */
export function statusJson(hosts: readonly HostFacts[], problems: readonly Problem[], thresholds: StatusThresholds): string {
  return `${JSON.stringify({ ok: problems.length === 0, problems, thresholds, hosts }, null, 2)}\n`;
}
