import { mkdtempSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../../src/cli/behind";
import { buildBehindReport, cadence, type BehindReport, type ComponentRow } from "../../../src/reports/behind";
import { FetchError } from "../../../src/reports/http";
import { fetchReleases, fetchUpstream } from "../../../src/reports/upstream";
import { compareVersions, parseHometown, parseVersion } from "../../../src/reports/versions";
import { RATE_LIMITED_ROUTES, startFixtureServer, type FixtureServer } from "./fixture-server";

// All expectations below were computed by hand from test/fixtures/api (dates are UTC calendar days).
const NOW = new Date("2026-09-01T00:00:00Z");
const DEPLOYED = { mastodon: "v4.3.8", hometown: "v4.5.11+hometown-1.2.1", synapse: "v1.120.0", postgres: 15 };

let server: FixtureServer;
let report: BehindReport;
const row = (c: ComponentRow["component"]) => report.rows.find((r) => r.component === c) as ComponentRow;
const endpoints = () => ({
  githubApi: server.base,
  githubToken: "ghp_fixtureTOKEN123",
  mastodonUpdateApi: `${server.base}/update-check`,
  postgresVersionsUrl: `${server.base}/versions.json`,
});

beforeAll(async () => {
  server = await startFixtureServer();
  report = buildBehindReport(DEPLOYED, await fetchUpstream(DEPLOYED, endpoints()), NOW);
});
afterAll(async () => server.close());

describe("version tags", () => {
  it("orders a final release after its pre-releases and 4.5.10 after 4.5.9", () => {
    const v = (t: string) => parseVersion(t)!;
    expect(compareVersions(v("v4.4.0"), v("v4.4.0-beta.1"))).toBeGreaterThan(0);
    expect(compareVersions(v("v1.166.0rc1"), v("v1.165.0"))).toBeGreaterThan(0);
    expect(compareVersions(v("v4.5.10"), v("v4.5.9"))).toBeGreaterThan(0);
  });
  it("splits a Hometown tag into the Mastodon base and the Hometown part", () => {
    const h = parseHometown("v4.5.11+hometown-1.2.1")!;
    expect(h.base).toMatchObject({ major: 4, minor: 5, patch: 11, pre: null });
    expect(h.fork).toMatchObject({ major: 1, minor: 2, patch: 1, pre: null });
  });
});

describe("GitHub releases", () => {
  it("follows the Link header to page 2 and sends the token only as Authorization", async () => {
    const before = server.requests.length;
    const releases = await fetchReleases("mastodon/mastodon", { apiBase: server.base, token: "ghp_fixtureTOKEN123" });
    const reqs = server.requests.slice(before);
    expect(releases).toHaveLength(35); // 20 on page 1 + 15 on page 2
    expect(reqs.map((r) => new URL(r.url, server.base).searchParams.get("page"))).toEqual([null, "2"]);
    expect(reqs.every((r) => r.headers.authorization === "Bearer ghp_fixtureTOKEN123")).toBe(true);
    expect(reqs.every((r) => !r.url.includes("ghp_"))).toBe(true);
  });

  it("turns a rate-limit 403 into a message naming the repository, the reset time and GITHUB_TOKEN", async () => {
    const limited = await startFixtureServer(RATE_LIMITED_ROUTES);
    try {
      const err = await fetchReleases("element-hq/synapse", { apiBase: limited.base, token: "ghp_secret_value" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FetchError);
      const message = (err as Error).message;
      expect(message).toContain("GitHub releases of element-hq/synapse (page 2)");
      expect(message).toContain("rate limit exhausted");
      expect(message).toContain("2026-09-01T01:00:00.000Z");
      expect(message).toContain("set GITHUB_TOKEN");
      expect(message).not.toContain("ghp_secret_value");
    } finally {
      await limited.close();
    }
  });

  it("names the unreachable host and the variable to fix on a network error", async () => {
    const dead = await startFixtureServer();
    const base = dead.base;
    await dead.close();
    const err = await fetchReleases("mastodon/mastodon", { apiBase: base }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/GitHub releases of mastodon\/mastodon \(page 1\): could not reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    expect((err as Error).message).toContain("COOP_GITHUB_API");
  });
});

describe("behind report for v4.3.8 / v4.5.11+hometown-1.2.1 / v1.120.0 / PostgreSQL 15 on 2026-09-01", () => {
  it("mastodon v4.3.8 is 21 releases and 420 days behind v4.5.13", () => {
    // Newer: 4.4.0-4.4.5 (6), 4.3.9 (1), 4.5.0-4.5.13 (14); betas and the 4.2 backports excluded.
    // First newer release: v4.4.0 on 2025-07-08; 2025-07-08 → 2026-09-01 = 365 + 31 + 24 days.
    expect(row("mastodon")).toMatchObject({ latest: "v4.5.13", behind: 21, daysBehind: 420 });
  });

  it("mastodon misses 8 security releases: 7 from release notes plus v4.5.13 from the update check", () => {
    const missed = row("mastodon").securityMissed;
    expect(missed.map((s) => s.version)).toEqual(["v4.3.9", "v4.4.2", "v4.4.5", "v4.5.2", "v4.5.5", "v4.5.9", "v4.5.12", "v4.5.13"]);
    expect(missed.find((s) => s.version === "v4.5.13")?.sources).toEqual(["update check (urgent)"]);
    // 4.5.11 is in the update check but not urgent, and its notes do not mention security.
    expect(missed.some((s) => s.version === "v4.5.11")).toBe(false);
  });

  it("Mastodon's median cadence over the last 365 days is 21 days over 15 release days", () => {
    // Gaps: 65,13,14,35,21,21,14,21,21,21,21,21,21,28 → sorted middle pair 21,21.
    expect(row("mastodon").cadence).toEqual({ windowDays: 365, releaseDays: 15, medianDays: 21 });
  });

  it("hometown is compared by its own part and, separately, by its Mastodon base", () => {
    // Hometown: v4.5.12+hometown-1.2.1 (2026-07-20, security) and v4.5.13+hometown-1.3.0; 43 days.
    expect(row("hometown")).toMatchObject({ latest: "v4.5.13+hometown-1.3.0", behind: 2, daysBehind: 43 });
    expect(row("hometown").securityMissed.map((s) => s.version)).toEqual(["v4.5.12+hometown-1.2.1"]);
    expect(row("hometown").notes[0]).toBe("Hometown part 1.2.1 → 1.3.0; Mastodon base 4.5.11 → 4.5.13 in Hometown's latest release");
    // Base 4.5.11 against Mastodon: 4.5.12 (notes) and 4.5.13 (urgent); first on 2026-07-08 → 55 days.
    expect(row("hometown-base")).toMatchObject({ deployed: "4.5.11", latest: "v4.5.13", behind: 2, daysBehind: 55 });
    expect(row("hometown-base").securityMissed.map((s) => [s.version, s.sources])).toEqual([
      ["v4.5.12", ["release notes"]],
      ["v4.5.13", ["update check (urgent)"]],
    ]);
  });

  it("Hometown's cadence ignores its pre-release: median 31 days over 4 release days", () => {
    // 2025-12-20, 2026-06-30, 2026-07-20, 2026-08-20 → gaps 192, 20, 31.
    expect(row("hometown").cadence).toEqual({ windowDays: 365, releaseDays: 4, medianDays: 31 });
  });

  it("synapse v1.120.0 is 47 releases and 637 days behind v1.165.0, with 3 security releases", () => {
    // v1.120.1 + v1.121.0..v1.165.0 (45) + v1.150.1; rc tags excluded. 2024-12-03 → 2026-09-01 = 365 + 272.
    expect(row("synapse")).toMatchObject({ latest: "v1.165.0", behind: 47, daysBehind: 637 });
    expect(row("synapse").securityMissed.map((s) => s.version)).toEqual(["v1.120.1", "v1.150.1", "v1.160.0"]);
    // 26 fortnightly releases from 2025-09-02 plus v1.150.1 a week after v1.150.0: 24 gaps of 14, 2 of 7.
    expect(row("synapse").cadence).toEqual({ windowDays: 365, releaseDays: 27, medianDays: 14 });
  });

  it("PostgreSQL 15 is 3 majors behind 18.3, 1083 days since 16 came out, and still supported", () => {
    // 16.0 on 2023-09-14 → 2026-09-01: 1096 days to 2026-09-14, minus 13.
    expect(row("postgresql")).toMatchObject({ latest: "18.3", behind: 3, behindUnit: "majors", daysBehind: 1083, securityMissed: [] });
    expect(row("postgresql").notes).toContain("latest in 15: 15.17");
  });

  it("recommends a monthly schedule because no upstream releases more than 3 times a month", () => {
    expect(report.recommendation.schedule).toBe("monthly");
    expect(report.recommendation.lines).toContain("element-hq/synapse: a release every 14 days (median), about 2.2 per monthly upgrade");
  });

  it("flags a PostgreSQL major past its end of life as a missed security release", () => {
    const pg13 = buildBehindReport({ postgres: "13.20" }, { postgres: [{ major: "13", latestMinor: "23", supported: false, current: false, eolDate: "2025-11-13", firstRelDate: "2020-09-24", relDate: "2025-11-13" }] }, NOW);
    expect(pg13.securityReleaseMissed).toBe(true);
    expect(pg13.rows[0].securityMissed[0].sources).toEqual(["end of life"]);
  });

  it("recommends every two weeks when an upstream releases weekly", () => {
    const weekly = Array.from({ length: 20 }, (_, i) => ({
      tag: `v1.${i}.0`, publishedAt: new Date(Date.UTC(2026, 4, 1) + i * 7 * 86_400_000).toISOString(), prerelease: false, draft: false, body: "", url: "",
    }));
    expect(cadence(weekly, NOW).medianDays).toBe(7);
    expect(buildBehindReport({ synapse: "v1.19.0" }, { synapseReleases: weekly }, NOW).recommendation.schedule).toBe("every two weeks");
  });

  it("an up-to-date deployment is 0 releases and 0 days behind and misses no security release", () => {
    const fresh = buildBehindReport({ mastodon: "v4.5.13" }, { mastodonReleases: [{ tag: "v4.5.13", publishedAt: "2026-08-05T14:12:07Z", prerelease: false, draft: false, body: "security", url: "" }] }, NOW);
    expect(fresh.rows[0]).toMatchObject({ behind: 0, daysBehind: 0, securityMissed: [] });
    expect(fresh.securityReleaseMissed).toBe(false);
  });
});

describe("coopctl behind", () => {
  function stackDir(versions: string): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), "coopctl-behind-"));
    writeFileSync(path.join(dir, "Pulumi.prod.yaml"), `config:\n  socialcoop:domain: social.coop\n  socialcoop:versions:\n${versions}`);
    return dir;
  }
  function run(argv: string[], rootDir: string, env: Record<string, string> = {}) {
    let out = "";
    let err = "";
    const io = {
      out: (t: string) => (out += t), err: (t: string) => (err += t), rootDir, now: () => NOW,
      env: { COOP_GITHUB_API: server.base, COOP_MASTODON_UPDATE_API: `${server.base}/update-check`, COOP_POSTGRES_VERSIONS_URL: `${server.base}/versions.json`, GITHUB_TOKEN: "ghp_cliTOKEN", ...env },
    };
    return main(argv, io).then((code) => ({ code, out, err }));
  }
  const ALL = "    mastodon: v4.3.8\n    hometown: v4.5.11+hometown-1.2.1\n    synapse: v1.120.0\n    postgres: 15\n";

  it("exits 1 and prints the table when a security release is missed, never the token", async () => {
    const r = await run(["--stack", "prod"], stackDir(ALL));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^mastodon\s+v4\.3\.8\s+v4\.5\.13\s+21\s+420\s+8\s+21 d \(15 release days\)$/m);
    expect(r.out).toMatch(/^synapse\s+v1\.120\.0\s+v1\.165\.0\s+47\s+637\s+3\s+14 d/m);
    expect(r.out).toContain("recommended schedule: monthly");
    expect(r.out + r.err).not.toContain("ghp_cliTOKEN");
  });

  it("--json prints the same numbers as JSON", async () => {
    const r = await run(["--json"], stackDir(ALL));
    const parsed = JSON.parse(r.out) as BehindReport & { stack: string };
    expect(parsed.stack).toBe("prod");
    expect(parsed.securityReleaseMissed).toBe(true);
    expect(parsed.rows.map((x) => [x.component, x.behind, x.daysBehind])).toEqual([
      ["mastodon", 21, 420], ["hometown", 2, 43], ["hometown-base", 2, 55], ["synapse", 47, 637], ["postgresql", 3, 1083],
    ]);
  });

  it("exits 0 when the deployed versions miss no security release", async () => {
    const r = await run([], stackDir("    mastodon: v4.5.13\n    postgres: 18\n"));
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toContain("RESULT: no missed security release");
  });

  it("exits 2 with the usage on an unknown flag", async () => {
    const r = await run(["--stak", "prod"], stackDir(ALL));
    expect(r.code).toBe(2);
    expect(r.err).toContain("Unknown option '--stak'");
    expect(r.err).toContain("usage: coopctl behind [--stack prod] [--json]");
  });

  it("exits 2 naming the file when the stack has no Pulumi.<stack>.yaml", async () => {
    const r = await run(["--stack", "nosuch"], stackDir(ALL));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/no stack file Pulumi\.nosuch\.yaml; known stacks: prod/);
  });

  it("exits 3 with the rate-limit fix when GitHub says the limit is used up", async () => {
    const limited = await startFixtureServer(RATE_LIMITED_ROUTES);
    try {
      const r = await run([], stackDir(ALL), { COOP_GITHUB_API: limited.base });
      expect(r.code).toBe(3);
      expect(r.err).toContain("coopctl behind: GitHub releases of element-hq/synapse (page 2): rate limit exhausted");
      expect(r.out + r.err).not.toContain("ghp_cliTOKEN");
    } finally {
      await limited.close();
    }
  });
});
