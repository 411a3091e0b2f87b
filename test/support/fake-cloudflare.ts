// Cloudflare's DNS records list endpoint on loopback, for the Dns component's adoption tests: Bearer auth,
// the v4 envelope ({ success, errors, result, result_info }), the exact `name` and `type` filters, pages.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** The only token the fake accepts. */
export const CF_TOKEN = "CF-TOKEN-0123456789abcdef0123456789abcdef-SECRET";
export const ZONE_ID = "0123456789abcdef0123456789abcdef";

export interface FakeRecord {
  id: string;
  name: string;
  type: string;
  content: string;
  ttl: number;
  proxied: boolean;
  comment: string | null;
}

export class FakeCloudflare {
  records: FakeRecord[] = [];
  /** Every request as `METHOD path?query`, to assert on what was asked (and that no token leaks into a URL). */
  calls: string[] = [];
  /** Answer every request with this status and Cloudflare-shaped error. */
  failWith: { status: number; code: number; message: string } | null = null;
  /** Largest page the fake hands out, whatever `per_page` asks: a small cap exercises paging. */
  pageCap = 100;
  base = "";
  private nextId = 1;
  private server = createServer((req, res) => this.handle(req, res));

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/client/v4`;
  }
  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Adds a record as the dashboard would (a 32 hex digit ID). */
  add(r: Partial<FakeRecord> & Pick<FakeRecord, "name" | "type" | "content">): FakeRecord {
    const record: FakeRecord = { ttl: 1, proxied: false, comment: null, id: (this.nextId++).toString(16).padStart(32, "0"), ...r };
    this.records.push(record);
    return record;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://x");
    this.calls.push(`${req.method} ${url.pathname}${url.search}`);
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    const fail = (status: number, code: number, message: string) =>
      send(status, { success: false, errors: [{ code, message }], messages: [], result: null });
    if (req.headers.authorization !== `Bearer ${CF_TOKEN}`) return fail(403, 9109, "Invalid access token");
    if (this.failWith) return fail(this.failWith.status, this.failWith.code, this.failWith.message);
    const m = /^\/client\/v4\/zones\/([^/]+)\/dns_records$/.exec(url.pathname);
    if (!m || req.method !== "GET") return fail(404, 7003, "Could not route to the path");
    if (m[1] !== ZONE_ID) return fail(400, 7003, "Could not route to /zones/" + m[1] + "/dns_records, perhaps your object identifier is invalid?");
    const name = url.searchParams.get("name");
    const type = url.searchParams.get("type");
    const perPage = Math.min(Number(url.searchParams.get("per_page") ?? 100), this.pageCap);
    const page = Number(url.searchParams.get("page") ?? 1);
    const matching = this.records.filter((r) => (name === null || r.name === name) && (type === null || r.type === type));
    const slice = matching.slice((page - 1) * perPage, page * perPage);
    send(200, {
      success: true,
      errors: [],
      messages: [],
      result: slice,
      result_info: { page, per_page: perPage, count: slice.length, total_count: matching.length, total_pages: Math.max(1, Math.ceil(matching.length / perPage)) },
    });
  }
}
