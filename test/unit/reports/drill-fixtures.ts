/** Deterministic drill results: 30 nightly drills on a growing Mastodon database, one of them failed. */
import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { DrillResult } from "../../../src/reports/drill-result";

export function drillHistory(count = 30, failedIndex: number | null = 17): DrillResult[] {
  const out: DrillResult[] = [];
  for (let i = 0; i < count; i++) {
    const day = new Date(Date.UTC(2026, 7, 3 + i, 3, 12, 44));
    const ok = i !== failedIndex;
    // Weekly full backups on Sundays make fetch slower; replay grows with the week's WAL.
    const full = day.getUTCDay() === 0;
    const fetch = (full ? 95 : 38) + (i % 5) * 1.5;
    const restore = 60 + i * 0.8;
    const replay = ok ? 12 + (day.getUTCDay() * 4.5) : 7.5;
    const verify = ok ? 25 + (i % 3) : 0;
    const total = fetch + restore + replay + verify + 3.2;
    const stamp = (d: Date) => d.toISOString().slice(0, 10).replace(/-/g, "");
    const lastFull = new Date(day.getTime() - day.getUTCDay() * 86_400_000);
    out.push({
      finishedAt: day.toISOString(),
      ok,
      stanza: "socialcoop",
      // pgBackRest labels a differential backup with its full backup's label: 20260809-030001F_20260811-030001D.
      backupLabel: full ? `${stamp(day)}-030001F` : `${stamp(lastFull)}-030001F_${stamp(day)}-030001D`,
      ttrSeconds: { fetch, restore, replay, verify, total: Math.round(total * 10) / 10 },
      verified: ok
        ? { tables: { accounts: 48_210 + i * 37, statuses: 1_204_332 + i * 4_120, media_attachments: 310_870 + i * 950, users: 4_102 + i * 3 }, mediaFiles: 200 }
        : null,
      ...(ok ? {} : { reason: "pg_amcheck: btree index \"index_statuses_on_account_id_id\" has a <corrupt> page & a missing heap tuple" }),
    });
  }
  return out;
}

export function writeDrillHistory(dir: string, results: readonly DrillResult[]): void {
  mkdirSync(dir, { recursive: true });
  for (const r of results) writeFileSync(path.join(dir, `drill-${r.finishedAt.replace(/[:]/g, "")}.json`), JSON.stringify(r, null, 2));
}
