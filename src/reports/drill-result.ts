/**
 * The result a restore drill (scripts/drill.sh) writes, one JSON file per drill. `coopctl drill-report`
 * reads a folder of them; this file is the contract between the two.
 */

export interface DrillPhaseSeconds {
  /** Fetching the backup (pgBackRest restore's transfer, restic restore of the media sample). */
  readonly fetch: number;
  /** Writing the restored cluster and files into the scratch location. */
  readonly restore: number;
  /** WAL replay up to the restore point. */
  readonly replay: number;
  /** pg_amcheck, row counts, media hashes. */
  readonly verify: number;
  /** Wall-clock time from start to verified; at least the sum of the phases. */
  readonly total: number;
}

export interface DrillResult {
  /** ISO 8601 time the drill finished, e.g. "2026-09-01T03:12:44Z". */
  readonly finishedAt: string;
  /** True only when the restore was verified; a backup exists only if it was restored. */
  readonly ok: boolean;
  /** pgBackRest stanza, e.g. "socialcoop". */
  readonly stanza: string;
  /** pgBackRest backup label restored, e.g. "20260901-030001F"; null when the drill failed before it knew. */
  readonly backupLabel: string | null;
  readonly ttrSeconds: DrillPhaseSeconds;
  /** What the drill verified; null when it failed (a failed drill verified nothing). */
  readonly verified: {
    /** Row counts of the key tables in the restored database, by table name. */
    readonly tables: Readonly<Record<string, number>>;
    /** Media files in the restored snapshot (a sample of them compared by hash). */
    readonly mediaFiles: number;
  } | null;
  /** Why the drill failed; present when `ok` is false. */
  readonly reason?: string;
}

export const PHASES = ["fetch", "restore", "replay", "verify"] as const;

/** Every problem of one parsed file, each naming the field; empty when it is a valid `DrillResult`. */
export function drillResultProblems(value: unknown): string[] {
  const problems: string[] = [];
  const v = value as Record<string, unknown> | null;
  if (typeof v !== "object" || v === null || Array.isArray(v)) return ["expected a JSON object"];
  if (typeof v.finishedAt !== "string" || Number.isNaN(Date.parse(v.finishedAt))) problems.push("finishedAt: expected an ISO 8601 time");
  if (typeof v.ok !== "boolean") problems.push("ok: expected true or false");
  if (typeof v.stanza !== "string") problems.push("stanza: expected a string");
  if (typeof v.backupLabel !== "string" && !(v.ok === false && v.backupLabel === null)) problems.push("backupLabel: expected a string");
  const ttr = v.ttrSeconds as Record<string, unknown> | undefined;
  if (typeof ttr !== "object" || ttr === null) problems.push("ttrSeconds: expected an object");
  else for (const k of [...PHASES, "total"]) if (!isCount(ttr[k], true)) problems.push(`ttrSeconds.${k}: expected seconds (a number ≥ 0)`);
  const verified = v.verified as Record<string, unknown> | null | undefined;
  if (verified === null && v.ok === true) problems.push("verified: a passed drill must say what it verified");
  else if (verified !== null && (typeof verified !== "object" || Array.isArray(verified))) problems.push("verified: expected an object, or null for a failed drill");
  else if (verified) {
    const tables = verified.tables as Record<string, unknown> | undefined;
    if (typeof tables !== "object" || tables === null) problems.push("verified.tables: expected an object of row counts");
    else for (const [k, n] of Object.entries(tables)) if (!isCount(n, false)) problems.push(`verified.tables.${k}: expected a row count`);
    if (!isCount(verified.mediaFiles, false)) problems.push("verified.mediaFiles: expected a count");
  }
  if (v.reason !== undefined && typeof v.reason !== "string") problems.push("reason: expected a string");
  if (v.ok === false && typeof v.reason !== "string") problems.push("reason: a failed drill must say why");
  return problems;
}

function isCount(x: unknown, fractional: boolean): boolean {
  return typeof x === "number" && Number.isFinite(x) && x >= 0 && (fractional || Number.isInteger(x));
}
