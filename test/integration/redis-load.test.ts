// A restored Redis dump into a server that persists with an append-only file (scripts/lib/redis-load.sh),
// against the real Redis 7 of Debian 12: started as it is, such a server ignores the dump and comes up
// empty; loaded through redis_load_rdb, every key is there, also after a kill at any moment.
import { copyFileSync, existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { spawn } from "node:child_process";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ensureUser, isAlive, makeTempDir, run, waitFor, type SystemUser, type TempDir } from "../../src/local";
import { seededRandom } from "../support/seeded-random";

const LIB = resolve(__dirname, "../../scripts/lib");
const KEYS = 2000;
let user: SystemUser;
let tmp: TempDir;
let dump: string;

/** redis-server as the test user, daemonized; returns a cli for its socket. */
async function redis(dir: string, args: string[]): Promise<(a: string[]) => Promise<string>> {
  const sock = join(dir, "svc.sock");
  await run("redis-server", [...args, "--dir", dir, "--port", "0", "--unixsocket", sock, "--daemonize", "yes", "--pidfile", join(dir, "svc.pid"), "--logfile", join(dir, "svc.log")], { asUser: user.name, cwd: dir });
  await waitFor("redis to answer", async () => (await run("redis-cli", ["-s", sock, "ping"], { allowFailure: true })).stdout.trim() === "PONG", 15_000);
  return async (a) => (await run("redis-cli", ["-s", sock, ...a])).stdout.trim();
}

async function shutdown(cli: (a: string[]) => Promise<string>, dir: string): Promise<void> {
  const pid = Number((await run("cat", [join(dir, "svc.pid")])).stdout.trim());
  await cli(["shutdown", "nosave"]).catch(() => "");
  await waitFor("redis to exit", () => !isAlive(pid), 15_000);
}

/** A target folder holding the restored dump.rdb and the service's config (AOF on, as install-database.sh sets it). */
async function target(name: string): Promise<{ dir: string; conf: string }> {
  const dir = join(tmp.path, name);
  await run("install", ["-d", "-o", user.name, dir]);
  return { dir, conf: join(tmp.path, "coop.conf") };
}

function loadScript(dir: string, conf: string): string[] {
  return ["-c", `set -euo pipefail; source "${LIB}/common.sh"; source "${LIB}/redis-load.sh"; redis_load_rdb "$1" "$2"`, "load", dir, conf];
}

beforeEach(async () => {
  // Its own user, so that "no redis-server of this user runs" means this test's and no other file's.
  user = await ensureUser("coop-redisload");
  tmp = makeTempDir("redis-load", user);
  writeFileSync(join(tmp.path, "coop.conf"), "appendonly yes\nappendfsync everysec\n");
  // The instance's Redis at backup time: keys, then the dump backup.sh takes.
  const src = join(tmp.path, "source");
  await run("install", ["-d", "-o", user.name, src]);
  const cli = await redis(src, ["--appendonly", "no"]);
  await cli(["eval", `for i=1,${KEYS} do redis.call('set', 'queue:' .. i, string.rep('x', 100)) end`, "0"]);
  expect(await cli(["save"])).toBe("OK");
  await shutdown(cli, src);
  dump = join(src, "dump.rdb");
});

afterEach(async () => {
  await run("pkill", ["-KILL", "-u", user.name, "-x", "redis-server"], { allowFailure: true });
  tmp.remove();
});

describe("loading a restored Redis dump", () => {
  it("a server with appendonly yes started on the dump alone comes up empty: the defect the loader exists for", async () => {
    const t = await target("as-is");
    await run("install", ["-o", user.name, dump, join(t.dir, "dump.rdb")]);
    const cli = await redis(t.dir, [t.conf]);
    expect(await cli(["dbsize"])).toBe("0");
    await shutdown(cli, t.dir);
  });

  it("through redis_load_rdb every key is there once the service starts, and a second run changes nothing", async () => {
    const t = await target("loaded");
    await run("install", ["-o", user.name, dump, join(t.dir, "dump.rdb")]);
    const r = await run("bash", loadScript(t.dir, t.conf), { env: { COOP_REDIS_OS_USER: user.name } });
    expect(r.stderr).toContain(`the restored dump (${KEYS} keys) is in the append-only file`);
    expect(existsSync(join(t.dir, "coop-load.pending"))).toBe(false);
    const again = await run("bash", loadScript(t.dir, t.conf), { env: { COOP_REDIS_OS_USER: user.name } });
    expect(again.stderr).toContain("already holds the restored dump");
    const cli = await redis(t.dir, [t.conf]);
    expect(await cli(["dbsize"])).toBe(String(KEYS));
    expect(await cli(["config", "get", "appendonly"])).toBe("appendonly\nyes");
    await shutdown(cli, t.dir);
  });

  it("killed at random moments, a re-run still loads every key and leaves no one-off server", async () => {
    const seed = Number(process.env.COOP_KILL_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const rnd = seededRandom(seed);
    for (let k = 0; k < 4; k++) {
      const t = await target(`killed-${k}`);
      copyFileSync(dump, join(t.dir, "dump.rdb"));
      await run("chown", [user.name, join(t.dir, "dump.rdb")]);
      const at = Math.floor(rnd() * 400);
      const child = spawn("bash", loadScript(t.dir, t.conf), { detached: true, stdio: "ignore", env: { ...process.env, COOP_REDIS_OS_USER: user.name } });
      await new Promise((r) => setTimeout(r, at));
      try {
        process.kill(-(child.pid as number), "SIGKILL");
      } catch {
        // It had finished already.
      }
      await new Promise((r) => child.once("exit", r).once("error", r));
      const rerun = await run("bash", loadScript(t.dir, t.conf), { env: { COOP_REDIS_OS_USER: user.name }, allowFailure: true });
      expect(rerun.code, `kill at ${at} ms (seed ${seed}): ${rerun.stderr}`).toBe(0);
      // Zombies (exited, unreaped: this machine's PID 1 reaps nothing) do not count; live servers do.
      const ps = await run("ps", ["-u", user.name, "-o", "pid=,stat=,comm="], { allowFailure: true });
      const live = ps.stdout.split("\n").filter((l) => l.includes("redis-server") && !/^\s*\d+\s+Z/.test(l));
      expect(live, `a one-off server left after the kill at ${at} ms (seed ${seed})`).toEqual([]);
      const cli = await redis(t.dir, [t.conf]);
      expect(await cli(["dbsize"]), `kill at ${at} ms (seed ${seed})`).toBe(String(KEYS));
      await shutdown(cli, t.dir);
    }
  });
});
