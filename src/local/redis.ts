import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { run } from "./run";
import { freePort, isPortOpen, waitFor } from "./net";
import { makeTempDir, pidFileStop } from "./lifecycle";
import { ensureUser, DEFAULT_TEST_USER } from "./users";

export interface RedisOptions {
  readonly user?: string;
  readonly port?: number;
  /** Extra redis.conf lines. */
  readonly config?: readonly string[];
}

export interface RedisServer {
  readonly host: "127.0.0.1";
  readonly port: number;
  readonly dir: string;
  /** Redis's working dir: where `dump.rdb` lands. */
  readonly dataDir: string;
  readonly configPath: string;
  readonly pidFile: string;
  readonly logFile: string;
  /** redis-cli against this server; returns stdout, trimmed. */
  cli(args: readonly string[]): Promise<string>;
  stop(): Promise<void>;
}


export async function startRedis(opts: RedisOptions = {}): Promise<RedisServer> {
  const user = await ensureUser(opts.user ?? DEFAULT_TEST_USER);
  const port = opts.port ?? (await freePort());
  const tmp = makeTempDir("redis", user);
  const configPath = join(tmp.path, "redis.conf");
  const pidFile = join(tmp.path, "redis.pid");
  const logFile = join(tmp.path, "redis.log");
  writeFileSync(
    configPath,
    [
      `bind 127.0.0.1`,
      `port ${port}`,
      `dir ${tmp.path}`,
      `pidfile ${pidFile}`,
      `logfile ${logFile}`,
      `daemonize yes`,
      `dbfilename dump.rdb`,
      ...(opts.config ?? []),
      "",
    ].join("\n"),
  );

  const stop = pidFileStop("redis", pidFile, tmp);

  try {
    await run("redis-server", [configPath], { asUser: user.name, cwd: tmp.path });
    await waitFor(`redis on port ${port}`, () => isPortOpen(port), 15_000);
  } catch (e) {
    const log = existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-2000) : "";
    await stop();
    throw new Error(`${(e as Error).message}\n--- redis.log ---\n${log}`);
  }

  return {
    host: "127.0.0.1",
    port,
    dir: tmp.path,
    dataDir: tmp.path,
    configPath,
    pidFile,
    logFile,
    cli: async (args) => (await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args])).stdout.trim(),
    stop,
  };
}
