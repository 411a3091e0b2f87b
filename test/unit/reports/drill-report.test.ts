import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../../src/cli/drill-report";
import { drillResultProblems } from "../../../src/reports/drill-result";
import { escapeXml, formatDrillTable, niceStep, renderDrillSvg, SVG_HEIGHT, SVG_WIDTH } from "../../../src/reports/drill-report";
import { drillHistory, writeDrillHistory } from "./drill-fixtures";

function tmp(): string {
  return mkdtempSync(path.join(os.tmpdir(), "coopctl-drill-"));
}

async function run(argv: string[]) {
  let out = "";
  let err = "";
  const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t), env: {} });
  return { code, out, err };
}

/** Width and height from the PNG's IHDR chunk (bytes 16-23, big-endian). */
function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

describe("drill result files", () => {
  it("accepts what drill.sh writes and names every wrong field", () => {
    expect(drillResultProblems(drillHistory(1)[0])).toEqual([]);
    // A failed drill as drill.sh writes it when it fails before it has a manifest: nothing verified, no label.
    const failed = { finishedAt: "2026-12-01T03:00:00Z", ok: false, stanza: "s", manifest: null, backupLabel: null, restorePoint: null, ttrSeconds: { fetch: 0, restore: 0, replay: 0, verify: 0, total: 0 }, verified: null, reason: "fetch: restic check failed" };
    expect(drillResultProblems(failed)).toEqual([]);
    expect(drillResultProblems({ ...failed, ok: true })).toEqual(["backupLabel: expected a string", "verified: a passed drill must say what it verified"]);
    expect(drillResultProblems({ finishedAt: "yesterday", ok: false, stanza: "s", backupLabel: "b", ttrSeconds: { fetch: 1, restore: -1, replay: 0, verify: 0, total: 1 }, verified: { tables: { accounts: 1.5 }, mediaFiles: 0 } }))
      .toEqual(["finishedAt: expected an ISO 8601 time", "ttrSeconds.restore: expected seconds (a number ≥ 0)", "verified.tables.accounts: expected a row count", "reason: a failed drill must say why"]);
  });
});

describe("drill report", () => {
  const results = drillHistory();

  it("tabulates 30 drills with 1 failure, the median and slowest time to restore", () => {
    const table = formatDrillTable(results);
    expect(table).toContain("30 drills, 1 failed; stanza socialcoop");
    // Verified totals (29 drills): median is the 15th smallest, 170.9 s; slowest 219.8 s on 2026-08-30 (a Sunday full).
    expect(table).toContain("time to restore of verified drills: median 170.9 s, slowest 219.8 s (2026-08-30 03:12)");
    expect(table).toMatch(/^2026-08-20 03:12 {2}FAILED {2}20260816-030001F_20260820-030001D/m);
    expect(table).toContain("newest drill verified at 2026-09-01 03:12");
  });

  it("escapes markup from drill results so the SVG stays well-formed", () => {
    expect(escapeXml(`<a href="x">&'`)).toBe("&lt;a href=&quot;x&quot;&gt;&amp;&apos;");
    const svg = renderDrillSvg(results);
    expect(svg).not.toContain("<corrupt>");
    expect(svg).toContain("&lt;corrupt&gt; page &amp; a missing heap tuple");
  });

  it("draws one stacked bar segment per phase and drill, and a red cross for the failed drill", () => {
    const svg = renderDrillSvg(results);
    // 30 drills × 4 phases, minus the failed drill's empty verify phase.
    expect(svg.match(/<rect [^>]*fill="#(4e79a7|f28e2b|59a14f|b07aa1)"><title>/g)).toHaveLength(30 * 4 - 1);
    expect(svg.match(/<g stroke="#d62728"/g)).toHaveLength(1);
  });

  it("picks round axis steps", () => {
    expect([niceStep(44), niceStep(9), niceStep(0.3), niceStep(130)]).toEqual([50, 10, 0.5, 200]);
  });

  it(`renders with rsvg-convert (apt librsvg2-bin) to a ${SVG_WIDTH}×${SVG_HEIGHT} PNG`, () => {
    const dir = tmp();
    const svgFile = path.join(dir, "report.svg");
    const pngFile = path.join(dir, "report.png");
    writeFileSync(svgFile, renderDrillSvg(results));
    try {
      // rsvg-convert refuses malformed XML, so a successful render also proves well-formedness.
      execFileSync("rsvg-convert", ["--format", "png", "--output", pngFile, svgFile], { stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
      throw new Error(e.code === "ENOENT" ? "rsvg-convert not found: apt-get install -y librsvg2-bin" : `rsvg-convert failed: ${e.stderr?.toString() ?? e.message}`);
    }
    const png = readFileSync(pngFile);
    expect(png.length).toBeGreaterThan(10_000);
    expect(pngSize(png)).toEqual({ width: SVG_WIDTH, height: SVG_HEIGHT });
  });

  it("rsvg-convert rejects an SVG with an unescaped ampersand, so the render test can fail", () => {
    const dir = tmp();
    const bad = path.join(dir, "bad.svg");
    writeFileSync(bad, renderDrillSvg(results).replace("&amp; a missing", "& a missing"));
    expect(() => execFileSync("rsvg-convert", ["--format", "png", "--output", path.join(dir, "bad.png"), bad], { stdio: "pipe" })).toThrow();
  });
});

describe("coopctl drill-report", () => {
  it("prints the table, writes the SVG and exits 0 when the newest drill verified", async () => {
    const dir = tmp();
    writeDrillHistory(dir, drillHistory());
    const out = path.join(dir, "chart.svg");
    const r = await run(["--dir", dir, "--out", out]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("30 drills, 1 failed");
    expect(readFileSync(out, "utf8")).toMatch(/^<\?xml[^]*<\/svg>\n$/);
  });

  it("exits 1 when the newest drill failed", async () => {
    const dir = tmp();
    writeDrillHistory(dir, drillHistory(5, 4));
    const r = await run(["--dir", dir]);
    expect(r.code).toBe(1);
    expect(r.out).toContain("NEWEST DRILL FAILED at 2026-08-07 03:12");
  });

  it("skips an old invalid file with its name and reason, and reports the rest", async () => {
    const dir = tmp();
    writeDrillHistory(dir, drillHistory(3, null));
    const broken = path.join(dir, "broken.json");
    writeFileSync(broken, JSON.stringify({ ok: true }));
    const before = new Date(Date.UTC(2026, 7, 1));
    utimesSync(broken, before, before);
    const r = await run(["--dir", dir]);
    expect(r.code).toBe(0);
    expect(r.err).toContain(`skipped ${broken}: finishedAt: expected an ISO 8601 time`);
    expect(r.out).toContain("3 drills, 0 failed");
  });

  it("exits 1 when a file written after the newest valid drill cannot be read: its outcome is unknown", async () => {
    const dir = tmp();
    writeDrillHistory(dir, drillHistory(3, null));
    const broken = path.join(dir, "drill-20261201T031244Z.json");
    writeFileSync(broken, "{\"finishedAt\": \"2026-12-01T03:12:44Z\", \"ok\": tr");
    const r = await run(["--dir", dir]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`skipped ${broken}: not JSON`);
    expect(r.out).toContain(`NEWEST DRILL RESULT UNREADABLE: ${broken}`);
    expect(r.out).not.toContain("newest drill verified");
  });

  it("counts a drill once although drill.sh writes it to its own file and to last.json", async () => {
    const dir = tmp();
    const history = drillHistory(2, 1);
    writeDrillHistory(dir, history);
    writeFileSync(path.join(dir, "last.json"), JSON.stringify(history[1]));
    const r = await run(["--dir", dir]);
    expect(r.code).toBe(1);
    expect(r.out).toContain("2 drills, 1 failed");
  });

  it("reads past last-verified.json, drill.sh's note for the stacks that read the backups, without calling it invalid", async () => {
    const dir = tmp();
    writeDrillHistory(dir, drillHistory(2, null));
    writeFileSync(path.join(dir, "last-verified.json"), JSON.stringify({ finishedAt: "2026-12-01T03:12:44Z", stanza: "main", backupLabel: "20261201-030000F", restorePoint: "coop-20261201T030000Z" }));
    const r = await run(["--dir", dir]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toContain("2 drills, 0 failed");
  });

  it("exits 1 when the folder has no drill result", async () => {
    const r = await run(["--dir", tmp()]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("no valid drill result");
  });

  it("exits 2 on an unknown flag", async () => {
    const r = await run(["--format", "png"]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("usage: coopctl drill-report [--dir DIR] [--out report.svg]");
  });
});
