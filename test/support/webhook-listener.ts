// An HTTP server on loopback (or any address given) that records every request a host posts to it and
// answers with the status the test sets, so a test can see a webhook delivered, refused and retried.
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedPost {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface WebhookListener {
  readonly url: string;
  readonly posts: ReceivedPost[];
  /** The status every request gets from now on (200 at the start). */
  status: number;
  close(): Promise<void>;
}

/** Listens on `host` (loopback unless told) and `port` (any free one unless told). */
export async function startWebhookListener(host = "127.0.0.1", port = 0): Promise<WebhookListener> {
  const posts: ReceivedPost[] = [];
  const state = { status: 200 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      posts.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(state.status, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return {
    url: `http://${host}:${(server.address() as AddressInfo).port}`,
    posts,
    get status() {
      return state.status;
    },
    set status(s: number) {
      state.status = s;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
