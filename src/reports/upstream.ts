/**
 * Fetchers for the `behind` report: GitHub releases, Mastodon's update check, PostgreSQL's versions.json.
 * Each returns plain data for the pure functions in `behind.ts`; base URLs are parameters so tests
 * point them at loopback.
 */
import { FetchError, getJson, nextLink, parseIsoDate } from "./http";
import { parseVersion } from "./versions";

export const DEFAULT_GITHUB_API = "https://api.github.com";
export const DEFAULT_MASTODON_UPDATE_API = "https://api.joinmastodon.org/update-check";
export const DEFAULT_POSTGRES_VERSIONS_URL = "https://www.postgresql.org/versions.json";
/** The GitHub repository each app flavor's releases come from (coopctl behind, and the hosts' daily check). */
export const APP_UPSTREAM = { mastodon: "mastodon/mastodon", hometown: "hometown-fork/hometown" } as const;

/** A published release, reduced to what the report reads. */
export interface Release {
  readonly tag: string;
  /** ISO 8601 date-time, checked when read (`toRelease`); a draft's creation time, as drafts have none. */
  readonly publishedAt: string;
  readonly prerelease: boolean;
  readonly draft: boolean;
  readonly body: string;
  readonly url: string;
}

export interface GithubOptions {
  readonly apiBase?: string;
  /** Sent as `Authorization: Bearer`; never logged or put in a message. */
  readonly token?: string;
  readonly perPage?: number;
  /**
   * Pages followed before giving up with an error, never a silent truncation (which would drop the
   * oldest releases, the ones between an old deployment and the rest). 100 pages of 100 releases is
   * several times what Mastodon, Hometown or Synapse have published; a `next` link that loops ends here.
   */
  readonly maxPages?: number;
}

export const DEFAULT_MAX_PAGES = 100;

export async function fetchReleases(repo: string, opts: GithubOptions = {}): Promise<Release[]> {
  const base = (opts.apiBase ?? DEFAULT_GITHUB_API).replace(/\/+$/, "");
  const headers: Record<string, string> = {
    Accept: "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
    "User-Agent": "coopctl (social.coop infrastructure)",
  };
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  const what = `GitHub releases of ${repo}`;
  const maxPages = opts.maxPages ?? DEFAULT_MAX_PAGES;
  const releases: Release[] = [];
  let url: string | null = `${base}/repos/${repo}/releases?per_page=${opts.perPage ?? 100}`;
  for (let page = 1; url; page++) {
    if (page > maxPages) {
      throw new FetchError(`${what}: still a next page after ${maxPages} pages (${releases.length} releases); ` +
        `stopping rather than report on part of the list. Fix: check that COOP_GITHUB_API points at the GitHub API (a proxy whose Link header loops never ends), then re-run.`);
    }
    const where = `${what} (page ${page})`;
    const res = await getJson(url, { what: where, headers, baseEnv: "COOP_GITHUB_API", tokenEnv: "GITHUB_TOKEN" });
    if (!Array.isArray(res.body)) throw new FetchError(`${where}: expected a JSON array from ${url}. Fix: check COOP_GITHUB_API.`);
    for (const raw of res.body) releases.push(toRelease(raw, where));
    url = nextLink(res.headers.get("link"));
  }
  return releases;
}

/** One release as GitHub lists it; anything the report would misread is an upstream error here, once. */
function toRelease(raw: unknown, what: string): Release {
  const r = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
  if (typeof r.tag_name !== "string") throw new FetchError(`${what}: a release without tag_name. Fix: check COOP_GITHUB_API.`);
  const draft = r.draft === true;
  // A draft has no published_at (it is filtered out before any date is read), so its creation date stands in.
  const field = draft && r.published_at == null ? "created_at" : "published_at";
  const publishedAt = r[field];
  if (typeof publishedAt !== "string" || parseIsoDate(publishedAt) === null) {
    throw new FetchError(`${what}: release ${r.tag_name} has ${field} ${JSON.stringify(r[field] ?? null)}, not an ISO 8601 date-time. ` +
      "Fix: check that COOP_GITHUB_API points at the GitHub API; if it does, the answer is damaged: re-run later.");
  }
  return {
    tag: r.tag_name,
    publishedAt,
    prerelease: r.prerelease === true,
    draft,
    body: typeof r.body === "string" ? r.body : "",
    url: typeof r.html_url === "string" ? r.html_url : "",
  };
}

/** One entry of `updatesAvailable` from api.joinmastodon.org/update-check (see SoftwareUpdateCheckService). */
export interface UpdateNotice {
  readonly version: string;
  readonly urgent: boolean;
  readonly type: string;
  readonly releaseNotes: string;
}

/** Mastodon's own update check, asked the way a Mastodon server asks it: `?version=4.3.8`. */
export async function fetchUpdateNotices(version: string, apiBase = DEFAULT_MASTODON_UPDATE_API): Promise<UpdateNotice[]> {
  const url = `${apiBase}?version=${encodeURIComponent(version)}`;
  const what = `Mastodon update check for ${version}`;
  const res = await getJson(url, { what, headers: { Accept: "application/json", "User-Agent": "coopctl" }, baseEnv: "COOP_MASTODON_UPDATE_API" });
  const list = (res.body as { updatesAvailable?: unknown } | null)?.updatesAvailable;
  if (!Array.isArray(list)) throw new FetchError(`${what}: expected {"updatesAvailable": [...]} from ${url}. Fix: check COOP_MASTODON_UPDATE_API.`);
  return list.map((raw) => {
    const n = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
    // A notice whose version cannot be read would be dropped later, and with it maybe an urgent release.
    if (typeof n.version !== "string" || parseVersion(n.version) === null) {
      throw new FetchError(`${what}: an update with version ${JSON.stringify(n.version ?? null)}, not a version like 4.3.9, in ${url}. Fix: check COOP_MASTODON_UPDATE_API.`);
    }
    return {
      version: n.version,
      urgent: n.urgent === true,
      type: String(n.type ?? ""),
      releaseNotes: String(n.releaseNotes ?? ""),
    };
  });
}

/** One major of www.postgresql.org/versions.json (its numbers are strings there). */
export interface PostgresMajor {
  readonly major: string;
  readonly latestMinor: string;
  readonly supported: boolean;
  readonly current: boolean;
  readonly eolDate: string;
  readonly firstRelDate: string;
  readonly relDate: string;
}

export async function fetchPostgresVersions(url = DEFAULT_POSTGRES_VERSIONS_URL): Promise<PostgresMajor[]> {
  const what = "PostgreSQL versions";
  const res = await getJson(url, { what, headers: { Accept: "application/json", "User-Agent": "coopctl" }, baseEnv: "COOP_POSTGRES_VERSIONS_URL" });
  if (!Array.isArray(res.body)) throw new FetchError(`${what}: expected a JSON array from ${url}. Fix: check COOP_POSTGRES_VERSIONS_URL.`);
  return res.body.map((raw) => {
    const v = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
    const bad = (field: string) => new FetchError(`${what}: major ${JSON.stringify(v.major ?? null)} has ${field} ${JSON.stringify(v[field] ?? null)} in ${url}, ` +
      `${field.endsWith("Date") ? "not a date like 2027-11-11" : "not a version number"}. Fix: check COOP_POSTGRES_VERSIONS_URL.`);
    if (typeof v.major !== "string" || !/^\d+(\.\d+)?$/.test(v.major)) throw bad("major");
    if (typeof v.latestMinor !== "string" || !/^\d+$/.test(v.latestMinor)) throw bad("latestMinor");
    const date = (field: "eolDate" | "firstRelDate" | "relDate"): string => {
      const d = v[field];
      if (typeof d !== "string" || parseIsoDate(d) === null) throw bad(field);
      return d;
    };
    return {
      major: v.major,
      latestMinor: v.latestMinor,
      supported: v.supported === true,
      current: v.current === true,
      eolDate: date("eolDate"),
      firstRelDate: date("firstRelDate"),
      relDate: date("relDate"),
    };
  });
}

export interface UpstreamEndpoints {
  readonly githubApi?: string;
  readonly githubToken?: string;
  readonly mastodonUpdateApi?: string;
  readonly postgresVersionsUrl?: string;
}

/** The endpoints from the environment, so an operator (or a test) can point every fetch elsewhere. */
export function endpointsFromEnv(env: NodeJS.ProcessEnv): UpstreamEndpoints {
  return {
    githubApi: env.COOP_GITHUB_API || undefined,
    githubToken: env.GITHUB_TOKEN || undefined,
    mastodonUpdateApi: env.COOP_MASTODON_UPDATE_API || undefined,
    postgresVersionsUrl: env.COOP_POSTGRES_VERSIONS_URL || undefined,
  };
}

/** Fetches only what the deployed versions need, concurrently. */
export async function fetchUpstream(
  deployed: { mastodon?: string; hometown?: string; synapse?: string; postgres?: number | string },
  endpoints: UpstreamEndpoints,
): Promise<{
  mastodonReleases?: Release[];
  hometownReleases?: Release[];
  synapseReleases?: Release[];
  updateNotices: Record<string, UpdateNotice[]>;
  postgres?: PostgresMajor[];
}> {
  const gh: GithubOptions = { apiBase: endpoints.githubApi, token: endpoints.githubToken };
  const askVersions = [deployed.mastodon, deployed.hometown]
    .filter((t): t is string => typeof t === "string")
    .map((t) => t.replace(/^v/, "").split("+")[0]);
  const unique = [...new Set(askVersions)];
  const [mastodonReleases, hometownReleases, synapseReleases, noticeLists, postgres] = await Promise.all([
    deployed.mastodon || deployed.hometown ? fetchReleases(APP_UPSTREAM.mastodon, gh) : undefined,
    deployed.hometown ? fetchReleases(APP_UPSTREAM.hometown, gh) : undefined,
    deployed.synapse ? fetchReleases("element-hq/synapse", gh) : undefined,
    Promise.all(unique.map((v) => fetchUpdateNotices(v, endpoints.mastodonUpdateApi))),
    deployed.postgres !== undefined ? fetchPostgresVersions(endpoints.postgresVersionsUrl) : undefined,
  ]);
  const updateNotices: Record<string, UpdateNotice[]> = {};
  unique.forEach((v, i) => (updateNotices[v] = noticeLists[i]));
  return { mastodonReleases, hometownReleases, synapseReleases, updateNotices, postgres };
}
