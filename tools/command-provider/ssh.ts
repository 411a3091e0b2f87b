// The remote side: commands and uploads over the machine's own OpenSSH client. Parameters travel as
// environment (SendEnv, accepted by the host's `AcceptEnv COOP_*`), never on a command line, and the
// private key only in a 0600 file that is removed afterwards.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Output, runProcess } from "./process";

export interface Connection {
  readonly host: string;
  readonly port?: number;
  readonly user?: string;
  readonly privateKey?: string;
  readonly hostKey?: string;
  readonly dialErrorLimit?: number;
  readonly perDialTimeout?: number;
}

/** ssh exits 255 when it could not connect or authenticate; a command's own status is anything else. */
const SSH_FAILED = 255;

interface Session {
  readonly args: string[];
  readonly dir: string;
}

function openSession(c: Connection): Session {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "coop-command-"));
  fs.chmodSync(dir, 0o700);
  const args = ["-p", String(c.port ?? 22), "-o", "BatchMode=yes", "-o", `ConnectTimeout=${c.perDialTimeout ?? 15}`];
  args.push("-o", "ServerAliveInterval=30", "-o", "LogLevel=ERROR", "-F", "/dev/null");
  if (c.privateKey) {
    const key = path.join(dir, "key");
    fs.writeFileSync(key, c.privateKey.endsWith("\n") ? c.privateKey : `${c.privateKey}\n`, { mode: 0o600 });
    args.push("-i", key, "-o", "IdentitiesOnly=yes");
  }
  if (c.hostKey) {
    const knownHosts = path.join(dir, "known_hosts");
    const name = (c.port ?? 22) === 22 ? c.host : `[${c.host}]:${c.port}`;
    fs.writeFileSync(knownHosts, `${name} ${c.hostKey.trim()}\n`, { mode: 0o600 });
    args.push("-o", `UserKnownHostsFile=${knownHosts}`, "-o", "StrictHostKeyChecking=yes");
  } else {
    // The real provider accepts any host key when none is pinned; so does this one.
    args.push("-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no");
  }
  return { args, dir };
}

function closeSession(s: Session): void {
  fs.rmSync(s.dir, { recursive: true, force: true });
}

function target(c: Connection): string {
  return `${c.user ?? "root"}@${c.host}`;
}

async function withRetries(c: Connection, attempt: () => Promise<Output>, log: (line: string) => void): Promise<Output> {
  const limit = c.dialErrorLimit ?? 10;
  for (let i = 1; ; i++) {
    const out = await attempt();
    if (out.code !== SSH_FAILED || (limit >= 0 && i >= limit)) return out;
    const why = out.stderr.trim().split("\n").pop() || "no message (a timeout or a closed connection)";
    log(`ssh to ${c.host}:${c.port ?? 22} failed (attempt ${i} of ${limit}): ${why}`);
    await new Promise((r) => setTimeout(r, Math.min(2000 * i, 10_000)));
  }
}

export async function runRemote(
  c: Connection,
  command: string,
  env: Readonly<Record<string, string>>,
  stdin: string | undefined,
  onLine: (stream: "stdout" | "stderr", line: string) => void,
  log: (line: string) => void,
): Promise<Output> {
  const s = openSession(c);
  try {
    const names = Object.keys(env).sort();
    const args = [...s.args, ...names.flatMap((n) => ["-o", `SendEnv=${n}`]), target(c), command];
    return await withRetries(c, () => runProcess("ssh", args, { ...process.env, ...env }, stdin, onLine), log);
  } finally {
    closeSession(s);
  }
}

/**
 * Copies a file or a folder to remotePath the way `scp -r` does (a folder becomes remotePath when that
 * does not exist), creating remotePath's parent folders first as the real provider's SFTP upload does.
 */
export async function copyToRemote(c: Connection, source: string, remotePath: string, log: (line: string) => void): Promise<Output> {
  const parent = remotePath.replace(/\/[^/]*\/?$/, "") || "/";
  // A path, not a secret: quoted into the command, so it works where sshd accepts no environment.
  const made = await runRemote(c, `mkdir -p -- '${parent.replace(/'/g, "'\\''")}'`, {}, undefined, () => undefined, log);
  if (made.code !== 0) return made;
  const s = openSession(c);
  try {
    const args = ["-r", "-p", "-q", ...s.args.map((a) => (a === "-p" ? "-P" : a)), source, `${target(c)}:${remotePath}`];
    return await withRetries(c, () => runProcess("scp", args, process.env, undefined, () => undefined), log);
  } finally {
    closeSession(s);
  }
}
