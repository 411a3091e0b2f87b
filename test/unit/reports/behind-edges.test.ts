// The edges of `coopctl behind` (issue 15): missing or malformed upstream data is an upstream error
// (exit 3, naming the source), never an all-clear; Hometown's order; paging; secondary rate limits; --now.
// Every response is served on loopback by fixture-server.ts; expectations are computed by hand from
// test/fixtures/api (dates are UTC calendar days).
import { mkdtempSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../../src/cli/behind";
import { buildBehindReport, type BehindReport, type ComponentRow } from "../../../src/reports/behind";
import { FetchError, parseIsoDate } from "../../../src/reports/http";
import { fetchReleases, fetchUpstream, type Release } from "../../../src/reports/upstream";
import { DEFAULT_ROUTES, startFixtureServer, type FixtureServer, type Route } from "./fixture-server";

const NOW = new Date("2026-09-01T00:00:00Z");
const SYNAPSE = "/repos/element-hq/synapse/releases";

let server: FixtureServer;
beforeAll(async () => {
  server = await startFixtureServer([
    ...DEFAULT_ROUTES,
    { path: "/update-check", query: { version: "4.6.0" }, file: "mastodon/update-check.4.6.0.json" },
  ]);
});
afterAll(async () => server.close());

function stackDir(versions: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "coopctl-behind-edges-"));
  writeFileSync(path.join(dir, "Pulumi.prod.yaml"), `config:\n  socialcoop:domain: social.coop\n  socialcoop:versions:\n${versions}`);
  return dir;
}

/** `coopctl behind` with every endpoint on `base` (the shared server unless a test starts its own). */
async function run(argv: string[], versions: string, base = server.base) {
  let out = "";
  let err = "";
  const io = {
    out: (t: string) => (out += t), err: (t: string) => (err += t), rootDir: stackDir(versions), now: () => NOW,
    env: { COOP_GITHUB_API: base, COOP_MASTODON_UPDATE_API: `${base}/update-check`, COOP_POSTGRES_VERSIONS_URL: `${base}/versions.json` },
  };
  const code = await main(argv, io);
  return { code, out, err, firstLine: (out || err).split("\n")[0] };
}

/**
 * A server whose routes in `first` win over the recorded defaults. It closes each connection after its
 * answer: the CLI stops at the first upstream error while other fetches are in flight, and `close()`
 * would otherwise wait for the client to drop those keep-alive connections (3 s in undici).
 */
async function withRoutes<T>(first: readonly Route[], body: (s: FixtureServer) => Promise<T>): Promise<T> {
  const s = await startFixtureServer([...first, ...DEFAULT_ROUTES].map((r) => ({ ...r, headers: { ...r.headers, connection: "close" } })));
  try {
    return await body(s);
  } finally {
    await s.close();
  }
}

// Stack config requires `postgres`; 18 is current and supported, so it alone is an all-clear (exit 0).
const PG = "    postgres: 18\n";
const SYNAPSE_ONLY = `    synapse: v1.120.0\n${PG}`;

describe("an empty or missing release list is an upstream error, never an all-clear", () => {
  it("a Synapse (and PostgreSQL 18) stack whose release list is empty exits 3 naming element-hq/synapse, with no RESULT line", async () => {
    const r = await withRoutes([{ path: SYNAPSE, file: "github/empty.json" }], (s) => run([], SYNAPSE_ONLY, s.base));
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/^coopctl behind: GitHub releases of element-hq\/synapse: GitHub listed none, so there is nothing to compare v1\.120\.0 with/);
    expect(r.err).toContain("https://github.com/element-hq/synapse/releases");
    expect(r.out).toBe("");
  });

  it("an empty Hometown list stops the report even though Mastodon's answered", async () => {
    const r = await withRoutes([{ path: "/repos/hometown-fork/hometown/releases", file: "github/empty.json" }],
      (s) => run([], `    hometown: v4.5.11+hometown-1.2.1\n${PG}`, s.base));
    expect(r.code).toBe(3);
    expect(r.firstLine).toContain("GitHub releases of hometown-fork/hometown: GitHub listed none");
  });

  it("a list not fetched at all is refused by the report itself, naming the repository", () => {
    expect(() => buildBehindReport({ synapse: "v1.120.0" }, {}, NOW)).toThrow(FetchError);
    expect(() => buildBehindReport({ synapse: "v1.120.0" }, {}, NOW)).toThrow("GitHub releases of element-hq/synapse: none were fetched");
    expect(() => buildBehindReport({ mastodon: "v4.3.8" }, { synapseReleases: [release("v1.120.0", "2024-11-26T14:00:00Z")] }, NOW))
      .toThrow("GitHub releases of mastodon/mastodon: none were fetched");
  });

  it("a list of only pre-releases counts as no data: 'none of the 2 listed is a final release'", () => {
    const pre = [release("v1.121.0rc1", "2024-12-03T14:00:00Z"), { ...release("v1.121.0", "2024-12-10T14:00:00Z"), prerelease: true }];
    expect(() => buildBehindReport({ synapse: "v1.120.0" }, { synapseReleases: pre }, NOW))
      .toThrow("GitHub releases of element-hq/synapse: none of the 2 listed is a final release with a version tag");
  });

  it("an empty versions.json exits 3 naming PostgreSQL versions, where it printed 'not listed' and exit 0", async () => {
    const r = await withRoutes([{ path: "/versions.json", file: "postgresql/versions.empty.json" }], (s) => run([], "    postgres: 15\n", s.base));
    expect(r.code).toBe(3);
    expect(r.firstLine).toBe('coopctl behind: PostgreSQL versions: versions.json lists no major version from 10 on, so there is nothing to compare 15 with (missing data, not "nothing newer"). Fix: check COOP_POSTGRES_VERSIONS_URL, then re-run.');
    expect(() => buildBehindReport({ postgres: 15 }, {}, NOW)).toThrow("PostgreSQL versions: none were fetched");
  });
});

describe("dates are checked when read", () => {
  it("published_at 'last Tuesday' exits 3 naming the repository, page and tag, not a RangeError with exit 1", async () => {
    const r = await withRoutes([{ path: SYNAPSE, file: "github/element-hq-synapse.bad-date.json" }], (s) => run([], SYNAPSE_ONLY, s.base));
    expect(r.code).toBe(3);
    // The draft listed first has published_at null and a good created_at: accepted, as GitHub sends drafts.
    expect(r.firstLine).toBe('coopctl behind: GitHub releases of element-hq/synapse (page 1): release v1.166.0 has published_at "last Tuesday", not an ISO 8601 date-time. ' +
      "Fix: check that COOP_GITHUB_API points at the GitHub API; if it does, the answer is damaged: re-run later.");
    expect(r.out + r.err).not.toContain("RangeError");
  });

  it("a null published_at on a published release exits 3, where the table printed NaN days", async () => {
    const r = await withRoutes([{ path: SYNAPSE, file: "github/element-hq-synapse.null-date.json" }], (s) => run(["--json"], SYNAPSE_ONLY, s.base));
    expect(r.code).toBe(3);
    expect(r.firstLine).toContain("GitHub releases of element-hq/synapse (page 1): release v1.166.0 has published_at null");
    expect(r.out).not.toContain("NaN");
  });

  it("a versions.json major with a null eolDate exits 3 naming the major and the field", async () => {
    const r = await withRoutes([{ path: "/versions.json", file: "postgresql/versions.null-eol.json" }], (s) => run([], "    postgres: 15\n", s.base));
    expect(r.code).toBe(3);
    expect(r.firstLine).toContain('PostgreSQL versions: major "18" has eolDate null');
    expect(r.firstLine).toContain("not a date like 2027-11-11");
  });

  it("an update-check entry without a version exits 3 rather than dropping what may be an urgent release", async () => {
    const r = await withRoutes([{ path: "/update-check", query: { version: "4.5.13" }, file: "mastodon/update-check.no-version.json" }],
      (s) => run([], `    mastodon: v4.5.13\n${PG}`, s.base));
    expect(r.code).toBe(3);
    expect(r.firstLine).toContain("Mastodon update check for 4.5.13: an update with version null, not a version like 4.3.9");
  });

  it("reads ISO dates and date-times only, and refuses a day that does not exist", () => {
    expect(parseIsoDate("2026-09-01")?.toISOString()).toBe("2026-09-01T00:00:00.000Z");
    expect(parseIsoDate("2026-08-25T14:12:07Z")?.toISOString()).toBe("2026-08-25T14:12:07.000Z");
    expect(parseIsoDate("2026-08-25T16:12:07+02:00")?.toISOString()).toBe("2026-08-25T14:12:07.000Z");
    for (const bad of ["2026-02-30", "2026-02-30T00:00:00Z", "2026-09-01T24:00:00Z", "2026-09-01T12:00:00", "Tue, 01 Sep 2026", "", null, 1788224400]) {
      expect(parseIsoDate(bad), String(bad)).toBeNull();
    }
  });
});

function release(tag: string, publishedAt: string, body = ""): Release {
  return { tag, publishedAt, prerelease: false, draft: false, body, url: "" };
}

describe("Hometown is ordered by its own part, then its Mastodon base", () => {
  const SELF_BUILT = "v4.6.0+hometown-1.2.1"; // Mastodon 4.6.0 merged by hand into Hometown 1.2.1
  let report: BehindReport;
  const row = (c: ComponentRow["component"]) => report.rows.find((r) => r.component === c) as ComponentRow;
  beforeAll(async () => {
    const deployed = { hometown: SELF_BUILT };
    report = buildBehindReport(deployed, await fetchUpstream(deployed, { githubApi: server.base, mastodonUpdateApi: `${server.base}/update-check` }), NOW);
  });

  it("a newer base on an older Hometown part is 1 release behind v4.5.13+hometown-1.3.0, not 0", () => {
    // Newer by Hometown part: only v4.5.13+hometown-1.3.0 (2026-08-20 → 2026-09-01 = 12 days); the
    // 1.2.1 releases are on older bases, v4.6.0-beta.1+hometown-1.3.0 is a pre-release.
    expect(row("hometown")).toMatchObject({ latest: "v4.5.13+hometown-1.3.0", behind: 1, daysBehind: 12, missedReleases: ["v4.5.13+hometown-1.3.0"] });
  });

  it("says plainly that a newer Hometown exists and that the deployed tag is not an upstream release", () => {
    expect(row("hometown").notes).toEqual([
      "Hometown part 1.2.1 → 1.3.0; Mastodon base 4.6.0 → 4.5.13 in Hometown's latest release",
      "a newer Hometown exists: v4.5.13+hometown-1.3.0 has Hometown 1.3.0 (deployed 1.2.1), though on Mastodon 4.5.13, older than the deployed base 4.6.0",
      "v4.6.0+hometown-1.2.1 is not among the upstream releases fetched; comparing by Hometown part, then Mastodon base",
    ]);
  });

  it("prints the Hometown row with 1 behind and both notes, exit 0 as no security release is missed", async () => {
    const r = await run([], `    hometown: ${SELF_BUILT}\n${PG}`);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^hometown\s+v4\.6\.0\+hometown-1\.2\.1\s+v4\.5\.13\+hometown-1\.3\.0\s+1\s+12\s+0\s+31 d/m);
    expect(r.out).toContain("\n  a newer Hometown exists: v4.5.13+hometown-1.3.0");
    expect(r.out).toContain("\n  v4.6.0+hometown-1.2.1 is not among the upstream releases fetched");
  });

  it("a deployed tag that is an upstream release gets no 'not among' note", async () => {
    const deployed = { hometown: "v4.5.11+hometown-1.2.1" };
    const listed = buildBehindReport(deployed, await fetchUpstream(deployed, { githubApi: server.base, mastodonUpdateApi: `${server.base}/update-check` }), NOW);
    expect(listed.rows[0].notes.filter((n) => n.includes("not among"))).toEqual([]);
    expect(listed.rows[0].behind).toBe(2);
  });
});

describe("paging", () => {
  const pages = (repo: string, count: number, loop = false): Route[] => Array.from({ length: count }, (_, i) => ({
    path: `/repos/${repo}/releases`,
    query: { page: String(i + 1) },
    file: "github/element-hq-synapse.page2.json",
    headers: i + 1 < count || loop ? { link: `<{{base}}/repos/${repo}/releases?per_page=100&page=${loop ? 1 : i + 2}>; rel="next"` } : undefined,
  }));

  it("follows all 12 pages, where it used to stop without a word after 10", async () => {
    await withRoutes(pages("element-hq/synapse", 12), async (s) => {
      const releases = await fetchReleases("element-hq/synapse", { apiBase: s.base });
      expect(releases).toHaveLength(12 * 22); // the recorded page 2 holds 22 releases
      expect(s.requests.map((r) => new URL(r.url, s.base).searchParams.get("page") ?? "1")).toEqual(Array.from({ length: 12 }, (_, i) => String(i + 1)));
    });
  });

  it("says so when it gives up: a Link header that loops exits 3 after 100 pages, naming the repository", async () => {
    const r = await withRoutes(pages("element-hq/synapse", 1, true), (s) => run([], SYNAPSE_ONLY, s.base));
    expect(r.code).toBe(3);
    expect(r.firstLine).toMatch(/^coopctl behind: GitHub releases of element-hq\/synapse: still a next page after 100 pages \(2200 releases\); stopping rather than report on part of the list/);
    expect(r.out).toBe("");
  });

  it("maxPages is a limit that errors, never a silent truncation", async () => {
    const err = await fetchReleases("mastodon/mastodon", { apiBase: server.base, maxPages: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchError);
    expect((err as Error).message).toContain("GitHub releases of mastodon/mastodon: still a next page after 1 pages (20 releases)");
  });
});

describe("rate limits", () => {
  it("a secondary limit reports the 60 s retry-after asks for, not the primary reset", async () => {
    const r = await withRoutes([{ path: SYNAPSE, file: "github/secondary-rate-limit.json", recordedEnvelope: true }], (s) => run([], SYNAPSE_ONLY, s.base));
    expect(r.code).toBe(3);
    expect(r.firstLine).toMatch(/^coopctl behind: GitHub releases of element-hq\/synapse \(page 1\): rate limited at http:\/\/127\.0\.0\.1:\d+ \(HTTP 403; its retry-after header asks for a wait of 60 s\)\. Fix: wait 60 s, then re-run\.$/);
    expect(r.err).not.toContain("2026-09-01T01:00:00.000Z"); // x-ratelimit-reset, the hourly limit that was not hit
  });

  it("a 429 with an HTTP-date retry-after names that time", async () => {
    const route: Route = { path: SYNAPSE, file: "github/empty.json", status: 429, headers: { "retry-after": "Tue, 01 Sep 2026 00:02:00 GMT" } };
    const err = await withRoutes([route], (s) => fetchReleases("element-hq/synapse", { apiBase: s.base }).catch((e: unknown) => e));
    expect((err as Error).message).toContain("(HTTP 429; its retry-after header asks for a wait of until 2026-09-01T00:02:00.000Z). Fix: wait until 2026-09-01T00:02:00.000Z, then re-run.");
  });
});

describe("--now fixes the clock", () => {
  const MASTODON = `    mastodon: v4.5.11\n${PG}`;

  it("--now 2026-07-01: v4.5.11 was the latest, 0 behind, exit 0", async () => {
    // v4.5.12 came on 2026-07-08 and v4.5.13 (urgent in today's update check) on 2026-08-05: both later.
    const r = await run(["--now", "2026-07-01"], MASTODON);
    expect(r.code).toBe(0);
    expect(r.firstLine).toBe("coopctl behind: stack prod, 2026-07-01");
    expect(r.out).toMatch(/^mastodon\s+v4\.5\.11\s+v4\.5\.11\s+0\s+0\s+0\s/m);
    expect(r.out).toContain("RESULT: no missed security release");
  });

  it("--now 2026-07-10: v4.5.12 (security) was 2 days old, 1 behind, exit 1; v4.5.13 is left out", async () => {
    const r = await run(["--now", "2026-07-10T00:00:00Z", "--json"], MASTODON);
    expect(r.code).toBe(1);
    const parsed = JSON.parse(r.out) as BehindReport;
    expect(parsed.generatedAt).toBe("2026-07-10T00:00:00.000Z");
    expect(parsed.rows[0]).toMatchObject({ latest: "v4.5.12", behind: 1, daysBehind: 2, missedReleases: ["v4.5.12"] });
    expect(parsed.rows[0].securityMissed.map((s) => s.version)).toEqual(["v4.5.12"]);
  });

  it("without --now the same stack misses v4.5.12 and v4.5.13 (the clock of the io)", async () => {
    const r = await run([], MASTODON);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^mastodon\s+v4\.5\.11\s+v4\.5\.13\s+2\s+55\s+2\s/m);
  });

  it("--now 2024-01-01: PostgreSQL 15 was 1 major behind (16, out 2023-09-14), 109 days", async () => {
    const r = await run(["--now", "2024-01-01", "--json"], "    postgres: 15\n");
    expect(r.code).toBe(0);
    const pg = (JSON.parse(r.out) as BehindReport).rows[0];
    expect(pg).toMatchObject({ behind: 1, daysBehind: 109, missedReleases: ["16.13"] });
  });

  it("a --now that is not a date exits 2 with the usage", async () => {
    const r = await run(["--now", "2026-13-01"], MASTODON);
    expect(r.code).toBe(2);
    expect(r.err).toBe('coopctl behind: --now "2026-13-01" is not a date like 2026-09-01 or 2026-09-01T12:00:00Z\nusage: coopctl behind [--stack prod] [--json] [--now 2026-09-01]\n');
  });

  it("--help documents --now and the exit codes", async () => {
    const r = await run(["--help"], MASTODON);
    expect(r.code).toBe(0);
    expect(r.out).toContain("--now DATE");
    expect(r.out).toContain("3: upstream data could not be read, or is missing or malformed");
  });
});
