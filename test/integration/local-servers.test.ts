import { describe, it, expect } from "vitest";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { request } from "node:http";
import { join, resolve } from "node:path";
import {
  run,
  startPostgres,
  startRedis,
  startSshd,
  startNginx,
  ensureUser,
  isPortOpen,
  makeTempDir,
  waitFor,
  DEFAULT_TEST_USER,
} from "../../src/local";

function redisPing(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ port, host: "127.0.0.1" }, () => sock.write("PING\r\n"));
    sock.setTimeout(5000, () => reject(new Error("redis PING timed out")));
    sock.once("data", (b) => {
      sock.end();
      resolve(b.toString("utf8"));
    });
    sock.once("error", reject);
  });
}

function httpGet(port: number, path = "/"): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, timeout: 5000 }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString("utf8")));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

async function expectGone(port: number, dir: string): Promise<void> {
  expect(await isPortOpen(port)).toBe(false);
  expect(existsSync(dir)).toBe(false);
}

describe("test harness", () => {
  it("ensureUser creates an account whose password is '*' (not locked) and is idempotent", async () => {
    const a = await ensureUser(DEFAULT_TEST_USER);
    const b = await ensureUser(DEFAULT_TEST_USER);
    expect(b.uid).toBe(a.uid);
    expect(a.uid).toBeGreaterThan(0);
    const shadow = (await run("getent", ["shadow", DEFAULT_TEST_USER])).stdout.split(":")[1];
    expect(shadow).toBe("*");
  });

  it("postgres runs unprivileged, answers select 1, archives WAL when asked, and is gone after stop", async () => {
    const pg = await startPostgres({ archiveCommand: "true" });
    try {
      expect(await pg.psql("select 1")).toBe("1");
      expect(await pg.psql("show wal_level")).toBe("replica");
      expect(await pg.psql("show archive_mode")).toBe("on");
      expect(await pg.psql("select current_user")).toBe("postgres");
      const owner = statSync(pg.dataDir).uid;
      expect(owner).not.toBe(0);
      // The server process itself is not root.
      const postmaster = readFileSync(`${pg.dataDir}/postmaster.pid`, "utf8").split("\n")[0] ?? "";
      expect((await run("ps", ["-o", "user=", "-p", postmaster])).stdout.trim()).toBe(DEFAULT_TEST_USER);
      // A client can reach it over the unix socket in the temp folder too.
      const viaSocket = await run(`${pg.binDir}/psql`, ["-X", "-A", "-t", "-h", pg.socketDir, "-p", String(pg.port), "-U", "postgres", "-c", "select 2"]);
      expect(viaSocket.stdout.trim()).toBe("2");
    } finally {
      await pg.stop();
    }
    await expectGone(pg.port, pg.dir);
    await pg.stop(); // idempotent
  });

  it("redis answers PING over TCP and is gone after stop", async () => {
    const redis = await startRedis();
    try {
      expect(await redisPing(redis.port)).toBe("+PONG\r\n");
      expect(await redis.cli(["config", "get", "dir"])).toContain(redis.dataDir);
    } finally {
      await redis.stop();
    }
    await expectGone(redis.port, redis.dir);
  });

  it("sshd accepts the generated key over real ssh, passes COOP_* env, and is gone after stop", async () => {
    const sshd = await startSshd({ users: [DEFAULT_TEST_USER] });
    try {
      const r = await run("ssh", [...sshd.sshArgs(DEFAULT_TEST_USER), "id -un; echo \"$COOP_PROBE\""], {
        env: { COOP_PROBE: "passed-through" },
        allowFailure: true,
      });
      expect(r.code, r.stderr).toBe(0);
      // Without SendEnv the variable does not travel; with it, AcceptEnv COOP_* lets it in.
      expect(r.stdout).toBe(`${DEFAULT_TEST_USER}\n\n`);
      const withEnv = await run("ssh", ["-o", "SendEnv=COOP_*", ...sshd.sshArgs(DEFAULT_TEST_USER), "echo \"$COOP_PROBE\""], {
        env: { COOP_PROBE: "passed-through" },
      });
      expect(withEnv.stdout.trim()).toBe("passed-through");
      // A user not in AllowUsers is refused even with the right key.
      const refused = await run("ssh", sshd.sshArgs("root").concat("true"), { allowFailure: true });
      expect(refused.code).not.toBe(0);
    } finally {
      await sshd.stop();
    }
    await expectGone(sshd.port, sshd.dir);
  });

  it("nginx serves HTTP 200 from the given server block and is gone after stop", async () => {
    const nginx = await startNginx({ conf: `location / { return 200 "coop ok\\n"; }` });
    try {
      const res = await httpGet(nginx.port);
      expect(res.status).toBe(200);
      expect(res.body).toBe("coop ok\n");
      const master = (await run("ps", ["-o", "user=", "-C", "nginx"])).stdout;
      expect(master).not.toMatch(/^root$/m);
    } finally {
      await nginx.stop();
    }
    await expectGone(nginx.port, nginx.dir);
  });

  it("a process that exits without calling stop() still takes its servers and folders with it", async () => {
    const work = makeTempDir("exit-hook");
    try {
      const harness = resolve(__dirname, "..", "..", "src", "local");
      const child = join(work.path, "leaky.ts");
      writeFileSync(
        child,
        `import { startPostgres, startRedis, startSshd, startNginx } from ${JSON.stringify(harness)};
(async () => {
  const servers = [await startPostgres(), await startRedis(), await startSshd({ users: ["${DEFAULT_TEST_USER}"] }),
    await startNginx({ conf: "return 200;" })];
  console.log(JSON.stringify(servers.map((s) => ({ port: s.port, dir: s.dir }))));
  process.exit(0);
})();
`,
      );
      const r = await run(resolve(__dirname, "../../node_modules/.bin/tsx"), [child], { timeoutMs: 60_000 });
      const started = JSON.parse(r.stdout.trim().split("\n").pop() ?? "[]") as Array<{ port: number; dir: string }>;
      expect(started).toHaveLength(4);
      for (const s of started) {
        expect(existsSync(s.dir), s.dir).toBe(false);
        await waitFor(`port ${s.port} to close`, async () => !(await isPortOpen(s.port)), 10_000);
      }
    } finally {
      work.remove();
    }
  });
});
