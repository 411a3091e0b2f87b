import { mkdtempSync, rmSync, chownSync, existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "./net";

/**
 * Cleanups that must also run if a test file dies without reaching afterAll. Node's "exit" event
 * allows only synchronous work, so each server registers a synchronous last resort (signal its
 * process, remove its folder) besides its normal async stop().
 */
const pending = new Set<() => void>();
let hooked = false;

export function onExit(cleanup: () => void): () => void {
  if (!hooked) {
    hooked = true;
    process.on("exit", () => {
      for (const fn of pending) {
        try {
          fn();
        } catch {
          // Best effort while exiting: one failed cleanup must not skip the others.
        }
      }
    });
  }
  pending.add(cleanup);
  return () => pending.delete(cleanup);
}

export interface TempDir {
  readonly path: string;
  remove(): void;
}

/** A fresh folder under the OS temp dir, owned by `uid/gid` when given (servers run unprivileged). */
export function makeTempDir(prefix: string, owner?: { uid: number; gid: number }): TempDir {
  const path = mkdtempSync(join(tmpdir(), `coop-${prefix}-`));
  if (owner) chownSync(path, owner.uid, owner.gid);
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Sends `signal` to `pid`, ignoring a process that is already gone. */
export function signalPid(pid: number | undefined, signal: NodeJS.Signals | 0): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether `pid` still runs. A zombie counts as gone: daemons are reparented to PID 1, and a container's
 * init may take seconds to reap them after they exit.
 */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.charAt(stat.lastIndexOf(")") + 2) !== "Z";
  } catch {
    return false;
  }
}

/**
 * Wraps a server's stop so that calling it twice (or after the exit hook) does the work once,
 * and unregisters the exit hook once it has run.
 */
export function stopOnce(stop: () => Promise<void>, exitCleanup: () => void): () => Promise<void> {
  const unregister = onExit(exitCleanup);
  let stopping: Promise<void> | undefined;
  return () => {
    stopping ??= stop().finally(unregister);
    return stopping;
  };
}

export function readPidFile(pidFile: string): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * stop() for a daemon that writes a pid file: SIGTERM, SIGKILL if it lingers past 10 s, then its folder
 * goes. The exit-time last resort sends `exitSignal` (nginx needs SIGTERM: a killed master leaves its
 * workers serving the port).
 */
export function pidFileStop(what: string, pidFile: string, folder: TempDir, exitSignal: NodeJS.Signals = "SIGKILL"): () => Promise<void> {
  return stopOnce(
    async () => {
      const pid = readPidFile(pidFile);
      if (pid && signalPid(pid, "SIGTERM")) {
        await waitFor(`${what} ${pid} to exit`, () => !isAlive(pid), 10_000).catch(() => signalPid(pid, "SIGKILL"));
      }
      folder.remove();
    },
    () => {
      signalPid(readPidFile(pidFile), exitSignal);
      folder.remove();
    },
  );
}
