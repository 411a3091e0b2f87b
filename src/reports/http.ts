/**
 * The one HTTP client of the reports. Every failure becomes a `FetchError` whose message names what was
 * being fetched and how to fix it; request headers (which carry tokens) never appear in a message.
 */

/** A failure an operator can act on; the CLI prints `message` and nothing else. */
export class FetchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FetchError";
  }
}

export interface GetOptions {
  /** What is being fetched, for messages: "GitHub releases of mastodon/mastodon". */
  readonly what: string;
  readonly headers?: Record<string, string>;
  /** The environment variable that overrides the base URL, named in the network-error fix. */
  readonly baseEnv?: string;
  /** The environment variable holding the token, named in the auth and rate-limit fixes. */
  readonly tokenEnv?: string;
  readonly timeoutMs?: number;
}

export interface JsonResponse {
  readonly body: unknown;
  readonly headers: Headers;
}

/** GET `url` and parse JSON; throws `FetchError` on network errors, non-2xx answers and bad JSON. */
export async function getJson(url: string, opts: GetOptions): Promise<JsonResponse> {
  let res: Response;
  try {
    res = await fetch(url, { headers: opts.headers, signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000) });
  } catch (err) {
    throw new FetchError(`${opts.what}: could not reach ${originOf(url)} (${networkCause(err)}). ` +
      `Fix: check the network connection${opts.baseEnv ? ` or point ${opts.baseEnv} at a reachable URL` : ""}, then re-run.`);
  }
  const text = await res.text();
  if (!res.ok) throw new FetchError(statusMessage(url, res, text, opts));
  try {
    return { body: JSON.parse(text) as unknown, headers: res.headers };
  } catch {
    throw new FetchError(`${opts.what}: ${url} answered ${res.status} but the body is not JSON ` +
      `(starts with ${JSON.stringify(text.slice(0, 60))}). Fix: check that ${opts.baseEnv ?? "the URL"} points at the API, not a web page.`);
  }
}

function statusMessage(url: string, res: Response, text: string, opts: GetOptions): string {
  const remaining = res.headers.get("x-ratelimit-remaining");
  const retryAfter = retryAfterText(res.headers.get("retry-after"));
  if ((res.status === 403 || res.status === 429) && retryAfter !== null) {
    // A secondary limit (GitHub) or a 429 from anyone: the wait asked for is retry-after, whatever
    // x-ratelimit-reset says about the hourly limit, which is not the one hit.
    return `${opts.what}: rate limited at ${originOf(url)} (HTTP ${res.status}; its retry-after header asks for a wait of ${retryAfter}). ` +
      `Fix: wait ${retryAfter}, then re-run.`;
  }
  if ((res.status === 403 || res.status === 429) && (remaining === "0" || res.headers.has("retry-after"))) {
    const reset = primaryReset(res.headers);
    const tokenFix = opts.tokenEnv
      ? `set ${opts.tokenEnv} to a token (a GitHub fine-grained token with no permissions is enough; it raises the limit from 60 to 5,000 requests an hour) or `
      : "";
    return `${opts.what}: rate limit exhausted at ${originOf(url)} (HTTP ${res.status}${reset ? `, resets at ${reset}` : ""}). ` +
      `Fix: ${tokenFix}wait until the reset and re-run.`;
  }
  const apiMessage = messageOf(text);
  if (res.status === 401 || res.status === 403) {
    return `${opts.what}: ${originOf(url)} refused the request (HTTP ${res.status}${apiMessage ? `: ${apiMessage}` : ""}). ` +
      `Fix: ${opts.tokenEnv ? `check that ${opts.tokenEnv} holds a valid, unexpired token with read access` : "check the credentials"}.`;
  }
  return `${opts.what}: HTTP ${res.status} from ${url}${apiMessage ? ` (${apiMessage})` : ""}. ` +
    `Fix: ${res.status >= 500 ? "the service is failing; re-run later" : `check ${opts.baseEnv ?? "the URL"}`}.`;
}

/** `x-ratelimit-reset` (epoch seconds) as an ISO time: when the hourly limit refills. */
function primaryReset(headers: Headers): string | null {
  const reset = Number(headers.get("x-ratelimit-reset"));
  return Number.isFinite(reset) && reset > 0 ? new Date(reset * 1000).toISOString() : null;
}

/** RFC 9110 `Retry-After`: delay-seconds ("60 s") or an HTTP-date (as ISO); null when absent or unreadable. */
function retryAfterText(value: string | null): string | null {
  if (value === null || value.trim() === "") return null;
  if (/^\d+$/.test(value.trim())) return `${Number(value.trim())} s`;
  const at = Date.parse(value);
  return Number.isFinite(at) ? `until ${new Date(at).toISOString()}` : null;
}

/** The API's own error text, when it sent one (GitHub, Hetzner and DigitalOcean all use `message`). */
function messageOf(text: string): string | null {
  try {
    const parsed = JSON.parse(text) as { message?: unknown; error?: { message?: unknown } };
    const m = typeof parsed.message === "string" ? parsed.message : parsed.error?.message;
    return typeof m === "string" ? m.slice(0, 200) : null;
  } catch {
    return null;
  }
}

function networkCause(err: unknown): string {
  // undici reports the socket error as `cause` of a generic "fetch failed" TypeError.
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (typeof cause?.code === "string") return cause.code;
  if (err instanceof Error && err.name === "TimeoutError") return "timed out";
  if (typeof cause?.message === "string") return cause.message;
  return err instanceof Error ? err.message : String(err);
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

/** The `rel="next"` target of an RFC 8288 Link header, as GitHub sends it; null on the last page. */
export function nextLink(link: string | null): string | null {
  if (!link) return null;
  for (const part of link.split(",")) {
    const m = /<([^>]+)>\s*;\s*rel="?([^";]+)"?/.exec(part.trim());
    if (m && m[2].split(/\s+/).includes("next")) return m[1];
  }
  return null;
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;

/**
 * An ISO 8601 date (`2026-09-01`, read as 00:00 UTC) or date-time with a zone (`2026-09-01T14:12:07Z`),
 * as GitHub and versions.json write them; null for anything else, including `2026-02-30`, which
 * `Date.parse` would roll over to March.
 */
export function parseIsoDate(text: unknown): Date | null {
  if (typeof text !== "string") return null;
  const m = ISO_DATE.exec(text);
  if (!m) return null;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const calendar = new Date(Date.UTC(year, month - 1, day));
  if (calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day) return null;
  if (m[4] !== undefined && (Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6] ?? 0) > 59)) return null;
  const at = new Date(m[4] === undefined ? `${m[1]}-${m[2]}-${m[3]}T00:00:00Z` : text);
  return Number.isNaN(at.getTime()) ? null : at;
}

/** Whole calendar days (UTC) from `from` to `to`, so a release at 23:00 is a day old at 00:00. */
export function calendarDays(from: Date | string, to: Date | string): number {
  const a = new Date(from);
  const b = new Date(to);
  const dayA = Date.UTC(a.getUTCFullYear(), a.getUTCMonth(), a.getUTCDate());
  const dayB = Date.UTC(b.getUTCFullYear(), b.getUTCMonth(), b.getUTCDate());
  return Math.round((dayB - dayA) / 86_400_000);
}

export function isoDay(d: Date | string): string {
  return new Date(d).toISOString().slice(0, 10);
}

/** Pads cells to a plain-text table; numbers (and cells starting with a digit) are right-aligned. */
export function textTable(rows: readonly (readonly string[])[], rightAligned: ReadonlySet<number> = new Set()): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) => row.map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join("  ").trimEnd())
    .join("\n");
}
