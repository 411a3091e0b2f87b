// A minimal SMTP server on loopback (or any address given), enough for curl's and Mastodon's clients:
// EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT. It keeps every message it accepts, so a test can count
// what a host sent and read it. No TLS and no AUTH: it stands for a relay without login.
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";

export interface ReceivedMail {
  readonly from: string;
  readonly to: readonly string[];
  /** The message as sent: headers, a blank line, the body (CRLF line ends, dot-stuffing undone). */
  readonly data: string;
}

export interface SmtpListener {
  readonly host: string;
  readonly port: number;
  readonly messages: ReceivedMail[];
  close(): Promise<void>;
}

function session(socket: Socket, messages: ReceivedMail[]): void {
  let buffer = "";
  let from = "";
  let to: string[] = [];
  let inData = false;
  let data: string[] = [];
  const reply = (line: string) => socket.write(`${line}\r\n`);
  reply("220 coop-test-smtp ready");
  socket.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("utf8");
    let nl: number;
    while ((nl = buffer.indexOf("\r\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 2);
      if (inData) {
        if (line === ".") {
          messages.push({ from, to, data: data.join("\r\n") });
          inData = false;
          data = [];
          from = "";
          to = [];
          reply("250 2.0.0 queued");
        } else {
          data.push(line.startsWith("..") ? line.slice(1) : line);
        }
        continue;
      }
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === "EHLO") {
        socket.write("250-coop-test-smtp\r\n250 8BITMIME\r\n");
      } else if (verb === "HELO") reply("250 coop-test-smtp");
      else if (verb === "MAIL") {
        from = /<([^>]*)>/.exec(line)?.[1] ?? "";
        reply("250 2.1.0 ok");
      } else if (verb === "RCPT") {
        to = [...to, /<([^>]*)>/.exec(line)?.[1] ?? ""];
        reply("250 2.1.5 ok");
      } else if (verb === "DATA") {
        inData = true;
        reply("354 end with <CRLF>.<CRLF>");
      } else if (verb === "RSET") {
        from = "";
        to = [];
        reply("250 ok");
      } else if (verb === "NOOP") reply("250 ok");
      else if (verb === "QUIT") {
        reply("221 bye");
        socket.end();
      } else reply("502 5.5.2 not implemented");
    }
  });
  socket.on("error", () => socket.destroy());
}

/** Listens on `host` (loopback unless told) and `port` (any free one unless told). */
export async function startSmtpListener(host = "127.0.0.1", port = 0): Promise<SmtpListener> {
  const messages: ReceivedMail[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    session(socket, messages);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return {
    host,
    port: (server.address() as AddressInfo).port,
    messages,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
