import { spawn } from "node:child_process";

export interface RunOptions {
  /** Run as this unprivileged user (through `runuser -u USER --`); the harness runs as root. */
  readonly asUser?: string;
  /** Added to the inherited environment. */
  readonly env?: Record<string, string | undefined>;
  readonly cwd?: string;
  /** Written to stdin, which is then closed. */
  readonly input?: string;
  readonly timeoutMs?: number;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  readonly allowFailure?: boolean;
  /** Called with each chunk of stderr as it arrives (progress of long work). */
  readonly onStderr?: (chunk: string) => void;
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export class RunError extends Error {
  constructor(
    readonly command: string,
    readonly result: RunResult,
  ) {
    const status = result.signal ? `was killed by ${result.signal}` : `exited ${result.code}`;
    super(`${command} ${status}:\n${tail(result.stderr || result.stdout, 20)}`);
    this.name = "RunError";
  }
}

export function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** Runs a command to completion, capturing its output; throws RunError (with the stderr tail) on failure. */
export function run(cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
  const [file, argv] = opts.asUser ? ["runuser", ["-u", opts.asUser, "--", cmd, ...args]] : [cmd, [...args]];
  const display = [cmd, ...args].join(" ") + (opts.asUser ? ` (as ${opts.asUser})` : "");
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
      timeout: opts.timeoutMs ?? 120_000,
      killSignal: "SIGKILL",
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => {
      err.push(b);
      opts.onStderr?.(b.toString("utf8"));
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      const result = {
        code,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      };
      if (code === 0 || opts.allowFailure) resolve(result);
      else reject(new RunError(display, result));
    });
    // A child that exits without reading stdin closes the pipe first; its exit status is what matters.
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}
