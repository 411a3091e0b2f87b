import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { run, type RunResult } from "./run";
import { freePort, isPortOpen, waitFor } from "./net";
import { makeTempDir, pidFileStop } from "./lifecycle";
import { ensureUser, DEFAULT_TEST_USER } from "./users";

export interface NginxContext {
  readonly port: number;
  /** nginx's prefix: a temp folder the server may read and write. */
  readonly dir: string;
}

export interface NginxOptions {
  readonly user?: string;
  readonly port?: number;
  /**
   * The inside of the `server { }` block; the harness adds `listen 127.0.0.1:<port>`. A function gets
   * the port and folder, e.g. to point `root` or a maintenance flag file into the prefix.
   */
  readonly conf: string | ((ctx: NginxContext) => string);
}

export interface NginxServer {
  readonly host: "127.0.0.1";
  readonly port: number;
  readonly dir: string;
  readonly configPath: string;
  readonly errorLog: string;
  readonly accessLog: string;
  /** `nginx -s reload` after the caller rewrote files the config includes. */
  reload(): Promise<RunResult>;
  stop(): Promise<void>;
}


export async function startNginx(opts: NginxOptions): Promise<NginxServer> {
  const user = await ensureUser(opts.user ?? DEFAULT_TEST_USER);
  const port = opts.port ?? (await freePort());
  const tmp = makeTempDir("nginx", user);
  const dir = tmp.path;
  const configPath = join(dir, "nginx.conf");
  const pidFile = join(dir, "nginx.pid");
  const errorLog = join(dir, "error.log");
  const accessLog = join(dir, "access.log");
  const body = typeof opts.conf === "function" ? opts.conf({ port, dir }) : opts.conf;
  writeFileSync(
    configPath,
    `pid ${pidFile};
error_log ${errorLog} info;
worker_processes 1;
events { worker_connections 64; }
http {
  access_log ${accessLog};
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
${body}
  }
}
`,
  );
  const asUser = { asUser: user.name, cwd: dir };
  await run("mkdir", ["-p", join(dir, "tmp")], asUser);
  // -e: Debian's build opens /var/log/nginx/error.log before reading the config, which an unprivileged user cannot.
  const nginx = (args: readonly string[]) => run("nginx", ["-p", dir, "-c", configPath, "-e", errorLog, ...args], asUser);

  const stop = pidFileStop("nginx", pidFile, tmp, "SIGTERM");

  try {
    await nginx(["-t", "-q"]);
    await nginx([]);
    await waitFor(`nginx on port ${port}`, () => isPortOpen(port), 15_000);
  } catch (e) {
    const log = existsSync(errorLog) ? readFileSync(errorLog, "utf8").slice(-2000) : "";
    await stop();
    throw new Error(`${(e as Error).message}\n--- error.log ---\n${log}`);
  }

  return {
    host: "127.0.0.1",
    port,
    dir,
    configPath,
    errorLog,
    accessLog,
    reload: () => nginx(["-s", "reload"]),
    stop,
  };
}
