/**
 * A loopback HTTP server that answers like GitHub, api.joinmastodon.org, postgresql.org, Hetzner Cloud and
 * DigitalOcean, from the recorded responses in test/fixtures/api. It records every request (with headers)
 * so tests can assert on what was sent.
 */
import { readFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";

export const FIXTURES = path.resolve(__dirname, "../../fixtures/api");

export interface Route {
  readonly path: string;
  /** Query parameters that must match; a missing `page` counts as "1", as the real APIs treat it. */
  readonly query?: Readonly<Record<string, string>>;
  /** A file under test/fixtures/api; `{{base}}` in it becomes the server's base URL. */
  readonly file: string;
  readonly status?: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** The file holds `{ status, headers, body }` as recorded, not just the body. */
  readonly recordedEnvelope?: boolean;
}

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

export interface FixtureServer {
  readonly base: string;
  readonly requests: RecordedRequest[];
  close(): Promise<void>;
}

const GITHUB_HEADERS = { "x-ratelimit-limit": "60", "x-ratelimit-remaining": "57", "x-ratelimit-reset": "1788224400" };
const ghPage = (repo: string, file: string, page: number, last: number | null): Route => ({
  path: `/repos/${repo}/releases`,
  query: { page: String(page) },
  file: `github/${file}.page${page}.json`,
  headers: last === null
    ? GITHUB_HEADERS
    : {
        ...GITHUB_HEADERS,
        link: page < last
          ? `<{{base}}/repos/${repo}/releases?per_page=100&page=${page + 1}>; rel="next", <{{base}}/repos/${repo}/releases?per_page=100&page=${last}>; rel="last"`
          : `<{{base}}/repos/${repo}/releases?per_page=100&page=1>; rel="first", <{{base}}/repos/${repo}/releases?per_page=100&page=${page - 1}>; rel="prev"`,
      },
});

/** Dates of the recorded price lists, as the providers' `Date` response header carried them. */
export const HETZNER_PRICES_DATE = "Tue, 01 Sep 2026 08:00:00 GMT";
export const DIGITALOCEAN_PRICES_DATE = "Tue, 01 Sep 2026 08:00:01 GMT";

export const DEFAULT_ROUTES: readonly Route[] = [
  ghPage("mastodon/mastodon", "mastodon-mastodon", 1, 2),
  ghPage("mastodon/mastodon", "mastodon-mastodon", 2, 2),
  ghPage("element-hq/synapse", "element-hq-synapse", 1, 2),
  ghPage("element-hq/synapse", "element-hq-synapse", 2, 2),
  ghPage("hometown-fork/hometown", "hometown-fork-hometown", 1, null),
  { path: "/update-check", query: { version: "4.3.8" }, file: "mastodon/update-check.4.3.8.json" },
  { path: "/update-check", query: { version: "4.5.11" }, file: "mastodon/update-check.4.5.11.json" },
  { path: "/update-check", query: { version: "4.5.13" }, file: "mastodon/update-check.4.5.13.json" },
  { path: "/versions.json", file: "postgresql/versions.json" },
  { path: "/v1/pricing", file: "hetzner/pricing.json", headers: { date: HETZNER_PRICES_DATE } },
  { path: "/v1/server_types", query: { page: "1" }, file: "hetzner/server_types.page1.json" },
  { path: "/v1/server_types", query: { page: "2" }, file: "hetzner/server_types.page2.json" },
  { path: "/v2/sizes", query: { page: "1" }, file: "digitalocean/sizes.page1.json", headers: { date: DIGITALOCEAN_PRICES_DATE } },
  { path: "/v2/sizes", query: { page: "2" }, file: "digitalocean/sizes.page2.json", headers: { date: DIGITALOCEAN_PRICES_DATE } },
];

/** The recorded 403 GitHub sends once the hourly limit is used up, in place of synapse's second page. */
export const RATE_LIMITED_ROUTES: readonly Route[] = [
  { path: "/repos/element-hq/synapse/releases", query: { page: "2" }, file: "github/rate-limit.json", recordedEnvelope: true },
  ...DEFAULT_ROUTES,
];

function matches(route: Route, pathname: string, params: URLSearchParams): boolean {
  if (route.path !== pathname) return false;
  for (const [k, v] of Object.entries(route.query ?? {})) {
    const actual = params.get(k) ?? (k === "page" ? "1" : null);
    if (actual !== v) return false;
  }
  return true;
}

export async function startFixtureServer(routes: readonly Route[] = DEFAULT_ROUTES): Promise<FixtureServer> {
  const requests: RecordedRequest[] = [];
  let base = "";
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    const url = new URL(req.url ?? "/", base);
    const route = req.method === "GET" ? routes.find((r) => matches(r, url.pathname, url.searchParams)) : undefined;
    if (!route) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ message: "Not Found" }));
      return;
    }
    const text = readFileSync(path.join(FIXTURES, route.file), "utf8").replaceAll("{{base}}", base);
    let status = route.status ?? 200;
    let headers: Record<string, string> = { "content-type": "application/json; charset=utf-8", ...route.headers };
    let body = text;
    if (route.recordedEnvelope) {
      const recorded = JSON.parse(text) as { status: number; headers: Record<string, string>; body: unknown };
      status = recorded.status;
      headers = { ...headers, ...recorded.headers };
      body = JSON.stringify(recorded.body);
    }
    for (const [k, v] of Object.entries(headers)) headers[k] = v.replaceAll("{{base}}", base);
    res.writeHead(status, headers);
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    requests,
    close: () => new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}
