/**
 * `coopctl drill-report`: the history of restore drills as a text table and a hand-written SVG chart
 * (time to restore stacked by phase; verified row and file counts on a log scale).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { drillResultProblems, PHASES, type DrillResult } from "./drill-result";
import { median } from "./behind";
import { textTable } from "./http";

export interface LoadedDrills {
  readonly results: readonly DrillResult[];
  /** One line per unreadable or invalid file, naming the file and the fields. */
  readonly problems: readonly string[];
  /**
   * An unreadable or invalid file written after the newest valid result finished: the newest drill's
   * outcome is then unknown, and the report must not call it verified.
   */
  readonly unreadableNewer?: string;
}

/** drill.sh's record of the backup its last passing drill verified (grant-repo-reader.sh's drill-verified). */
export const VERIFIED_NOTE = "last-verified.json";

export function loadDrillResults(dir: string): LoadedDrills {
  const results: DrillResult[] = [];
  const problems: string[] = [];
  const invalid: { file: string; mtimeMs: number }[] = [];
  const seen = new Set<string>();
  let names: string[];
  try {
    // last-verified.json is drill.sh's note for the stacks that read the backups (alpha), not a result.
    names = readdirSync(dir).filter((n) => n.endsWith(".json") && n !== VERIFIED_NOTE).sort();
  } catch {
    return { results, problems: [`${dir}: cannot read the folder; pass --dir with the folder the drill writes its results to`] };
  }
  for (const name of names) {
    const file = path.join(dir, name);
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      problems.push(`${file}: not JSON (${err instanceof Error ? err.message : String(err)})`);
      invalid.push({ file, mtimeMs: statSync(file).mtimeMs });
      continue;
    }
    const p = drillResultProblems(value);
    if (p.length > 0) {
      problems.push(`${file}: ${p.join("; ")}`);
      invalid.push({ file, mtimeMs: statSync(file).mtimeMs });
      continue;
    }
    const r = value as DrillResult;
    // drill.sh writes each result twice (drill-<time>.json and last.json): count it once.
    const key = `${r.finishedAt}|${r.stanza}|${r.backupLabel}`;
    if (seen.has(key)) continue;
    seen.add(key);
    results.push(r);
  }
  results.sort((a, b) => Date.parse(a.finishedAt) - Date.parse(b.finishedAt));
  const newestValid = results.length > 0 ? Date.parse(results[results.length - 1].finishedAt) : -Infinity;
  const newer = invalid.filter((f) => f.mtimeMs > newestValid + 1000).sort((a, b) => b.mtimeMs - a.mtimeMs)[0];
  return { results, problems, ...(newer ? { unreadableNewer: newer.file } : {}) };
}

function tableNames(results: readonly DrillResult[]): string[] {
  return [...new Set(results.flatMap((r) => Object.keys(r.verified?.tables ?? {})))].sort();
}

const when = (iso: string) => new Date(iso).toISOString().slice(0, 16).replace("T", " ");
const secs = (s: number) => s.toFixed(1);

/** `unreadableNewer`: a result file written after the newest valid one that cannot be read. */
export function formatDrillTable(results: readonly DrillResult[], unreadableNewer?: string): string {
  const tables = tableNames(results);
  const header = ["finished (UTC)", "result", "backup", ...PHASES, "total s", ...tables, "media files"];
  const rows = results.map((r) => [
    when(r.finishedAt),
    r.ok ? "ok" : "FAILED",
    r.backupLabel ?? "-",
    ...PHASES.map((p) => secs(r.ttrSeconds[p])),
    secs(r.ttrSeconds.total),
    ...tables.map((t) => String(r.verified?.tables[t] ?? "-")),
    String(r.verified?.mediaFiles ?? "-"),
  ]);
  const numeric = new Set(header.map((_, i) => i).filter((i) => i >= 3));
  const out = [textTable([header, ...rows], numeric), ""];
  const ok = results.filter((r) => r.ok);
  const failed = results.filter((r) => !r.ok);
  const newest = results[results.length - 1];
  out.push(`${results.length} drills, ${failed.length} failed; stanza ${[...new Set(results.map((r) => r.stanza))].join(", ")}`);
  if (ok.length > 0) {
    const slowest = ok.reduce((a, b) => (b.ttrSeconds.total > a.ttrSeconds.total ? b : a));
    out.push(`time to restore of verified drills: median ${secs(median(ok.map((r) => r.ttrSeconds.total)) as number)} s, slowest ${secs(slowest.ttrSeconds.total)} s (${when(slowest.finishedAt)})`);
  }
  for (const f of failed) out.push(`failed ${when(f.finishedAt)} (${f.backupLabel ?? "no backup reached"}): ${f.reason ?? "no reason recorded"}`);
  if (unreadableNewer !== undefined) out.push(`NEWEST DRILL RESULT UNREADABLE: ${unreadableNewer} was written after the newest valid result; its outcome is unknown`);
  else if (newest) out.push(newest.ok ? `newest drill verified at ${when(newest.finishedAt)}` : `NEWEST DRILL FAILED at ${when(newest.finishedAt)}: the newest backup is not known to restore`);
  return out.join("\n") + "\n";
}

// ---------------------------------------------------------------- SVG

export const SVG_WIDTH = 960;
export const SVG_HEIGHT = 640;
const PHASE_COLORS: Record<(typeof PHASES)[number], string> = { fetch: "#4e79a7", restore: "#f28e2b", replay: "#59a14f", verify: "#b07aa1" };
const SERIES_COLORS = ["#4e79a7", "#e15759", "#76b7b2", "#edc948", "#59a14f", "#af7aa1", "#ff9da7", "#9c755f", "#bab0ac", "#f28e2b"];

export function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;");
}

/** 1, 2 or 5 times a power of ten, so axis labels stay round. */
export function niceStep(rough: number): number {
  if (!(rough > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(rough));
  const f = rough / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

const f1 = (x: number) => (Math.round(x * 10) / 10).toString();

function text(x: number, y: number, content: string, attrs = ""): string {
  return `<text x="${f1(x)}" y="${f1(y)}"${attrs ? ` ${attrs}` : ""}>${escapeXml(content)}</text>`;
}

export function renderDrillSvg(results: readonly DrillResult[]): string {
  const W = SVG_WIDTH;
  const H = SVG_HEIGHT;
  const left = 80;
  const right = W - 30;
  const plotW = right - left;
  const n = Math.max(results.length, 1);
  const band = plotW / n;
  const xCenter = (i: number) => left + band * (i + 0.5);
  const labelEvery = Math.max(1, Math.ceil(n / 14));
  const parts: string[] = [];
  const first = results[0]?.finishedAt.slice(0, 10) ?? "-";
  const last = results[results.length - 1]?.finishedAt.slice(0, 10) ?? "-";
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(text(left, 28, "Restore drills: time to restore by phase, and what was verified", 'font-size="17" font-weight="bold"'));
  parts.push(text(left, 48, `${results.length} drills, ${first} to ${last}; failed drills are crossed out in red`, 'font-size="12" fill="#555555"'));

  // Panel 1: stacked time to restore.
  const t1 = 80;
  const b1 = 320;
  const maxTotal = Math.max(1, ...results.map((r) => Math.max(r.ttrSeconds.total, PHASES.reduce((s, p) => s + r.ttrSeconds[p], 0))));
  const step = niceStep(maxTotal / 5);
  const top = Math.ceil(maxTotal / step) * step;
  const y1 = (s: number) => b1 - (s / top) * (b1 - t1);
  for (let v = 0; v <= top + 1e-9; v += step) {
    parts.push(`<line x1="${left}" y1="${f1(y1(v))}" x2="${right}" y2="${f1(y1(v))}" stroke="#e5e5e5"/>`);
    parts.push(text(left - 8, y1(v) + 4, f1(v), 'font-size="11" text-anchor="end"'));
  }
  parts.push(text(18, (t1 + b1) / 2, "seconds", `font-size="12" transform="rotate(-90 18 ${(t1 + b1) / 2})" text-anchor="middle"`));
  const barW = Math.min(36, band * 0.7);
  results.forEach((r, i) => {
    const x = xCenter(i) - barW / 2;
    let acc = 0;
    for (const p of PHASES) {
      const h = y1(acc) - y1(acc + r.ttrSeconds[p]);
      if (h > 0) parts.push(`<rect x="${f1(x)}" y="${f1(y1(acc + r.ttrSeconds[p]))}" width="${f1(barW)}" height="${f1(h)}" fill="${PHASE_COLORS[p]}"><title>${escapeXml(`${r.finishedAt} ${p}: ${secs(r.ttrSeconds[p])} s`)}</title></rect>`);
      acc += r.ttrSeconds[p];
    }
    // The total includes work between phases; a tick shows it when it is above the stacked phases.
    parts.push(`<line x1="${f1(x - 2)}" y1="${f1(y1(r.ttrSeconds.total))}" x2="${f1(x + barW + 2)}" y2="${f1(y1(r.ttrSeconds.total))}" stroke="#222222" stroke-width="1.5"/>`);
    if (!r.ok) {
      const yTop = Math.min(y1(r.ttrSeconds.total), y1(acc)) - 14;
      parts.push(`<g stroke="#d62728" stroke-width="3"><line x1="${f1(xCenter(i) - 6)}" y1="${f1(yTop - 6)}" x2="${f1(xCenter(i) + 6)}" y2="${f1(yTop + 6)}"/><line x1="${f1(xCenter(i) - 6)}" y1="${f1(yTop + 6)}" x2="${f1(xCenter(i) + 6)}" y2="${f1(yTop - 6)}"/><title>${escapeXml(`failed: ${r.reason ?? ""}`)}</title></g>`);
      parts.push(`<rect x="${f1(x - 1)}" y="${f1(Math.min(y1(acc), y1(r.ttrSeconds.total)))}" width="${f1(barW + 2)}" height="${f1(b1 - Math.min(y1(acc), y1(r.ttrSeconds.total)))}" fill="none" stroke="#d62728" stroke-width="2"/>`);
    }
    if (i % labelEvery === 0) parts.push(text(xCenter(i), b1 + 16, r.finishedAt.slice(5, 10), 'font-size="10" text-anchor="middle"'));
  });
  parts.push(`<line x1="${left}" y1="${b1}" x2="${right}" y2="${b1}" stroke="#333333"/>`);
  PHASES.forEach((p, i) => {
    const lx = right - 4 * 90 + i * 90;
    parts.push(`<rect x="${lx}" y="${t1 - 16}" width="12" height="12" fill="${PHASE_COLORS[p]}"/>`);
    parts.push(text(lx + 16, t1 - 6, p, 'font-size="11"'));
  });

  // Panel 2: verified counts, log scale because statuses outnumber accounts by orders of magnitude.
  const t2 = 380;
  const b2 = 580;
  const tables = tableNames(results);
  // A failed drill verified nothing: it leaves a gap rather than a drop to zero.
  const series = [...tables.map((t) => ({ name: t, values: results.map((r) => (r.ok ? r.verified?.tables[t] : undefined)) })),
    { name: "media files", values: results.map((r) => (r.ok ? r.verified?.mediaFiles : undefined)) }];
  const positives = series.flatMap((s) => s.values).filter((v): v is number => typeof v === "number" && v > 0);
  const lo = Math.floor(Math.log10(positives.length > 0 ? Math.min(...positives) : 1));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(10, ...positives))));
  const y2 = (v: number) => b2 - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * (b2 - t2);
  parts.push(text(left, t2 - 14, "verified: rows per table and media files (log scale)", 'font-size="13" font-weight="bold"'));
  for (let e = lo; e <= hi; e++) {
    parts.push(`<line x1="${left}" y1="${f1(y2(10 ** e))}" x2="${right}" y2="${f1(y2(10 ** e))}" stroke="#e5e5e5"/>`);
    parts.push(text(left - 8, y2(10 ** e) + 4, (10 ** e).toLocaleString("en-US"), 'font-size="11" text-anchor="end"'));
  }
  series.forEach((s, k) => {
    const color = SERIES_COLORS[k % SERIES_COLORS.length];
    const segments: string[][] = [[]];
    s.values.forEach((v, i) => {
      if (v === undefined) segments.push([]);
      else segments[segments.length - 1].push(`${f1(xCenter(i))},${f1(y2(v))}`);
    });
    for (const pts of segments) {
      if (pts.length > 1) parts.push(`<polyline points="${pts.join(" ")}" fill="none" stroke="${color}" stroke-width="2"/>`);
    }
    s.values.forEach((v, i) => {
      if (v !== undefined) parts.push(`<circle cx="${f1(xCenter(i))}" cy="${f1(y2(v))}" r="2.5" fill="${color}"><title>${escapeXml(`${s.name}: ${v}`)}</title></circle>`);
    });
    const lx = left + (k % 6) * 140;
    const ly = b2 + 28 + Math.floor(k / 6) * 16;
    parts.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${color}"/>`);
    parts.push(text(lx + 16, ly, s.name, 'font-size="11"'));
  });
  parts.push(`<line x1="${left}" y1="${b2}" x2="${right}" y2="${b2}" stroke="#333333"/>`);

  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`,
    ...parts.map((p) => `  ${p}`),
    `</svg>`,
    "",
  ].join("\n");
}
