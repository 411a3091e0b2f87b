// A "fediverse" server for a test: a process in a network namespace the test made, listening on 80 and
// 443 of the address given, that records every connection with the peer's address. Port 80 answers an
// inbox POST with 202 (so a delivery that gets through is seen to succeed); 443 closes at once (no TLS:
// the connection itself is what counts).
import { spawn } from "node:child_process";

export interface FediverseConnection {
  readonly port: number;
  readonly peer: string;
}

export interface FediverseHost {
  readonly connections: FediverseConnection[];
  stop(): void;
}

const SERVER = `
const net = require("node:net");
const [address] = process.argv.slice(1);
let ready = 0;
for (const port of [80, 443]) {
  net.createServer((c) => {
    process.stdout.write(\`conn \${port} \${c.remoteAddress}\\n\`);
    if (port === 443) return c.destroy();
    c.once("data", () => c.end("HTTP/1.1 202 Accepted\\r\\ncontent-length: 0\\r\\nconnection: close\\r\\n\\r\\n"));
    c.on("error", () => undefined);
  }).listen(port, address, () => { if (++ready === 2) process.stdout.write("ready\\n"); });
}`;

export async function startFediverseHost(netns: string, address: string): Promise<FediverseHost> {
  const child = spawn("ip", ["netns", "exec", netns, "node", "-e", SERVER, address], { stdio: ["ignore", "pipe", "inherit"] });
  const connections: FediverseConnection[] = [];
  let buffered = "";
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      buffered += d.toString("utf8");
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const m = /^conn (\d+) (\S+)$/.exec(line);
        if (m) connections.push({ port: Number(m[1]), peer: m[2] });
        else if (line === "ready") resolve();
      }
    });
    child.once("exit", (code) => reject(new Error(`the fediverse host's listener exited (${code})`)));
  });
  return { connections, stop: () => void child.kill("SIGKILL") };
}
