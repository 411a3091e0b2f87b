// Kills at any moment, not only between steps: a host script run in its own process group and the
// whole group SIGKILLed at a seeded random moment (as an OOM kill, `systemctl kill` or a power cut
// would), then re-run until it succeeds, each re-run bounded so that a state that only a manual unlock
// or a timeout would clear fails the test instead of hanging it. Set COOP_KILL_SEED to replay a run.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { SCRIPTS_DIR } from "../../../src/local/backup-rig";
import { seededRandom } from "../../support/seeded-random";

/** The base seed of this test process: COOP_KILL_SEED when set, else a fresh one. */
export const BASE_SEED: number = (() => {
  const fromEnv = process.env.COOP_KILL_SEED;
  if (fromEnv !== undefined && fromEnv !== "") {
    const n = Number(fromEnv);
    if (!Number.isInteger(n) || n < 0) throw new Error(`COOP_KILL_SEED must be a non-negative integer (found '${fromEnv}')`);
    return n;
  }
  return Math.floor(Math.random() * 2 ** 31);
})();

/** One script's seed, derived from the base seed and its name, so one COOP_KILL_SEED replays every file. */
export function seedFor(script: string): number {
  let h = BASE_SEED >>> 0;
  for (const c of script) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

export interface KillPlan {
  readonly script: string;
  readonly seed: number;
  /** The next kill moment in milliseconds after the start, spread over [0, spanMs). */
  next(spanMs: number): number;
}

/** The kill moments of one script; prints the seed so that a failure can be replayed. */
export function killPlan(script: string): KillPlan {
  const seed = seedFor(script);
  const rnd = seededRandom(seed);
  console.log(`random kills of ${script}: seed ${seed} (base seed ${BASE_SEED}; replay with COOP_KILL_SEED=${BASE_SEED})`);
  return { script, seed, next: (spanMs) => Math.floor(rnd() * spanMs) };
}

export interface GroupRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly output: string;
  readonly ms: number;
  /** True when this harness killed the group (at the moment asked, or at the bound). */
  readonly killed: boolean;
  /** True when the run was still going at its bound: something waited on a stale state. */
  readonly timedOut: boolean;
}

export interface GroupRunOptions {
  /** SIGKILL the whole process group this long after the start. */
  readonly killAtMs?: number;
  /**
   * SIGKILL the group as soon as a process of the group has a command line matching this (and, when
   * given, `andThen` holds as well: a lock file exists, say).
   */
  readonly killWhen?: RegExp;
  readonly andThen?: () => boolean;
  /** SIGKILL the group and report `timedOut` after this long. */
  readonly boundMs: number;
  readonly args?: readonly string[];
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // The group is gone already.
  }
}

interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly pgid: number;
  readonly comm: string;
  readonly cmdline: string;
}

/** Every process of this machine (from /proc), skipping the ones that exit while being read. */
export function processes(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const fields = stat.slice(close + 2).split(" ");
      if (fields[0] === "Z") continue;
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ").trim();
      out.push({ pid: Number(name), ppid: Number(fields[1]), pgid: Number(fields[2]), comm, cmdline });
    } catch {
      // Exited meanwhile.
    }
  }
  return out;
}

/** How long a killed group's members may take to exit (a process in uninterruptible sleep among them). */
const GROUP_EXIT_MS = 30_000;

/** Resolves once no live member of the process group is left, or after `boundMs` (members listed then). */
export async function groupGone(pgid: number, boundMs: number): Promise<void> {
  const until = Date.now() + boundMs;
  for (;;) {
    const left = processes().filter((p) => p.pgid === pgid);
    if (left.length === 0) return;
    if (Date.now() >= until) {
      console.log(`process group ${pgid} still has members ${boundMs} ms after SIGKILL: ${left.map((p) => `${p.pid} ${p.comm}`).join(", ")}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Runs scripts/<script> with `env` in a process group of its own, killing the whole group when asked
 * or at the bound. Never throws on exit codes.
 */
export function runGroup(script: string, env: Readonly<Record<string, string>>, opts: GroupRunOptions): Promise<GroupRun> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [join(SCRIPTS_DIR, script), ...(opts.args ?? [])], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const pgid = child.pid;
    if (pgid === undefined) {
      reject(new Error(`could not start ${script}`));
      return;
    }
    const chunks: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => chunks.push(b));
    child.stderr.on("data", (b: Buffer) => chunks.push(b));
    let killed = false;
    let timedOut = false;
    const timers: NodeJS.Timeout[] = [];
    const kill = () => {
      killed = true;
      killGroup(pgid);
    };
    if (opts.killAtMs !== undefined) timers.push(setTimeout(kill, opts.killAtMs));
    if (opts.killWhen) {
      const pattern = opts.killWhen;
      const andThen = opts.andThen ?? (() => true);
      timers.push(
        setInterval(() => {
          if (!killed && processes().some((p) => p.pgid === pgid && p.pid !== pgid && pattern.test(p.cmdline)) && andThen()) kill();
        }, 20),
      );
    }
    timers.push(
      setTimeout(() => {
        timedOut = true;
        kill();
      }, opts.boundMs),
    );
    child.on("error", reject);
    child.on("close", (code, signal) => {
      for (const t of timers) clearTimeout(t);
      const done = () => resolve({ code, signal, output: Buffer.concat(chunks).toString("utf8"), ms: Date.now() - started, killed, timedOut });
      if (!killed) return done();
      // Whatever of the group outlived its leader dies with it, as under systemd's KillMode=control-group,
      // and, as systemd's stop does, this waits until the group is empty: a member killed inside a
      // syscall (initdb's fsync, say) keeps its fds, the lock's among them, until the syscall returns.
      killGroup(pgid);
      void groupGone(pgid, GROUP_EXIT_MS).then(done, done);
    });
  });
}

export interface Convergence {
  /** Re-runs it took to succeed (1 when the first re-run did). */
  readonly reruns: number;
  readonly runs: GroupRun[];
}

/**
 * Re-runs a script after a kill until it succeeds: at most `maxRuns` runs, each within `boundMs`. A run
 * that hits its bound is a stuck state and fails at once, with its output.
 */
export async function converge(script: string, env: Readonly<Record<string, string>>, boundMs: number, maxRuns = 3, args?: readonly string[]): Promise<Convergence> {
  const runs: GroupRun[] = [];
  for (let i = 0; i < maxRuns; i++) {
    const r = await runGroup(script, env, { boundMs, args });
    runs.push(r);
    if (r.timedOut) throw new Error(`${script} re-run ${i + 1} was still running after ${boundMs} ms (stuck):\n${r.output.slice(-3000)}`);
    if (r.code === 0) return { reruns: i + 1, runs };
    const errors = r.output.split("\n").filter((l) => /ERROR|Fatal|FATAL/.test(l)).slice(-5).join("\n");
    console.log(`${script} re-run ${i + 1} failed (exit ${r.code}) after ${r.ms} ms:\n${errors || r.output.slice(-1500)}`);
  }
  throw new Error(`${script} did not succeed in ${maxRuns} re-runs; last output:\n${runs[runs.length - 1].output.slice(-3000)}`);
}

const WATCHED = new Set(["postgres", "pgbackrest", "restic", "ssh", "pg_ctl", "pg_upgrade", "pg_amcheck", "psql", "bash", "sftp-server"]);

/** The postmaster PID a data directory's postmaster.pid names, if any. */
function postmasterOf(dataDir: string): number | undefined {
  const f = join(dataDir, "postmaster.pid");
  if (!existsSync(f)) return undefined;
  const pid = Number(readFileSync(f, "utf8").split("\n")[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * Processes of a rig (PostgreSQL, pgBackRest, restic, ssh, the scripts' shells) that nothing should be
 * running any more: everything whose command line names the rig's folder, and every postgres process
 * of a postmaster other than the ones of `liveDataDirs` (the rig's own clusters, with their archivers).
 */
export function strayProcesses(rigDirs: string | readonly string[], liveDataDirs: readonly string[]): string[] {
  const dirs = typeof rigDirs === "string" ? [rigDirs] : rigDirs;
  const all = processes();
  const byPid = new Map(all.map((p) => [p.pid, p]));
  const live = new Set(liveDataDirs.map(postmasterOf).filter((p): p is number => p !== undefined));
  const underLive = (p: ProcInfo): boolean => {
    for (let q: ProcInfo | undefined = p; q; q = byPid.get(q.ppid)) {
      if (live.has(q.pid)) return true;
      if (q.pid <= 1) break;
    }
    return false;
  };
  const postmasterOfProc = (p: ProcInfo): ProcInfo => {
    let q = p;
    for (let up = byPid.get(q.ppid); up && up.comm === "postgres"; up = byPid.get(up.ppid)) q = up;
    return q;
  };
  const strays: string[] = [];
  for (const p of all) {
    if (p.pid === process.pid || !WATCHED.has(p.comm) || underLive(p)) continue;
    const root = p.comm === "postgres" ? postmasterOfProc(p) : p;
    if (dirs.some((d) => root.cmdline.includes(d) || p.cmdline.includes(d))) strays.push(`${p.pid} ${p.comm}: ${p.cmdline}`);
  }
  return strays;
}

/** strayProcesses, given a few seconds for processes of the last run that are already exiting. */
export async function settledStrays(rigDir: string | readonly string[], liveDataDirs: readonly string[], graceMs = 5000): Promise<string[]> {
  const until = Date.now() + graceMs;
  let strays = strayProcesses(rigDir, liveDataDirs);
  while (strays.length > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 250));
    strays = strayProcesses(rigDir, liveDataDirs);
  }
  return strays;
}

/** Leftover temp files (`name.XXXXXX` of mktemp) under a folder: what a kill between write and rename leaves. */
export function tempLeftovers(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      // Nothing the scripts keep ends in six letters or digits after a dot but drill.phases.
      else if (/\.[A-Za-z0-9]{6}$/.test(e.name) && e.name !== "drill.phases") out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** The data directory a stable-path symlink (or a plain folder) names. */
export function resolved(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return path;
  }
}

/** One line of the summary a random-kill test prints (and the report quotes). */
export function summary(script: string, seed: number, kills: number, reruns: number[], lost: number, stuck: number): string {
  return `${script}: ${kills} random kills, seed ${seed}, re-runs ${reruns.join(",")} (total ${reruns.reduce((a, b) => a + b, 0)}), rows lost ${lost}, stuck ${stuck}`;
}

/** The live processes holding an fd on `file` (a lock file, say), as "pid comm: cmdline". */
export function fdHolders(file: string): string[] {
  const out: string[] = [];
  for (const p of processes()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${p.pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${p.pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (target === file) {
        out.push(`${p.pid} ${p.comm}: ${p.cmdline.slice(0, 200)}`);
        break;
      }
    }
  }
  return out;
}
