// A GitLab merge-request notes API on loopback, for the preview-note script's tests and the
// whole-stack test that posts a real `pulumi preview --diff`.
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { GITLAB_NOTE_LIMIT } from "../../ci/post-preview-note";

const FIXTURES = path.resolve(__dirname, "../fixtures/api");

/** The only token the fake accepts; project coop/infra, merge request !42. */
export const TOKEN = "glpat-Sup3rSecretNotesToken";

export interface Note { id: number; body: string; system: boolean; author: { username: string } }

/** Mimics GitLab's MR notes API: paginated GET (X-Next-Page), POST, PUT, PRIVATE-TOKEN auth, size limit. */
export class FakeGitlab {
  notes: Note[] = [
    ...(JSON.parse(readFileSync(path.join(FIXTURES, "gitlab/notes.page1.json"), "utf8")) as Note[]),
    ...(JSON.parse(readFileSync(path.join(FIXTURES, "gitlab/notes.page2.json"), "utf8")) as Note[]),
  ];
  calls: string[] = [];
  failWith: number | null = null;
  private nextId = 10_000;
  private server = createServer((req, res) => void this.handle(req, res));
  base = "";

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/api/v4`;
  }
  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    this.calls.push(`${req.method} ${url.pathname}${url.search}`);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(body));
    };
    if (req.headers["private-token"] !== TOKEN) return send(401, { message: "401 Unauthorized" });
    if (this.failWith) return send(this.failWith, { message: "500 Internal Server Error" });
    const m = /^\/api\/v4\/projects\/([^/]+)\/merge_requests\/(\d+)\/notes(?:\/(\d+))?$/.exec(url.pathname);
    if (!m || decodeURIComponent(m[1]) !== "coop/infra" || m[2] !== "42") return send(404, { message: "404 Not found" });
    let raw = "";
    for await (const chunk of req) raw += chunk;
    if (req.method === "GET" && !m[3]) {
      const perPage = Number(url.searchParams.get("per_page") ?? 20);
      const page = Number(url.searchParams.get("page") ?? 1);
      const slice = this.notes.slice((page - 1) * perPage, page * perPage);
      const more = page * perPage < this.notes.length;
      return send(200, slice, { "x-page": String(page), "x-per-page": String(perPage), "x-next-page": more ? String(page + 1) : "", "x-total": String(this.notes.length) });
    }
    const body = (JSON.parse(raw || "{}") as { body?: string }).body ?? "";
    if (body.length > GITLAB_NOTE_LIMIT) return send(400, { message: { note: ["is too long (maximum is 1000000 characters)"] } });
    if (req.method === "POST" && !m[3]) {
      const note: Note = { id: this.nextId++, body, system: false, author: { username: "project_1123_bot" } };
      this.notes.push(note);
      return send(201, note);
    }
    if (req.method === "PUT" && m[3]) {
      const note = this.notes.find((n) => n.id === Number(m[3]));
      if (!note) return send(404, { message: "404 Note Not Found" });
      note.body = body;
      return send(200, note);
    }
    return send(405, { message: "405 Method Not Allowed" });
  }
}

