// One child process, its output captured whole and streamed line by line as it comes.
import { spawn } from "child_process";

export interface Output {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function runProcess(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  stdin: string | undefined,
  onLine: (stream: "stdout" | "stderr", line: string) => void,
  cwd?: string,
): Promise<Output> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], { env, cwd, stdio: ["pipe", "pipe", "pipe"] });
    const chunks = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    const partial = { stdout: "", stderr: "" };
    for (const stream of ["stdout", "stderr"] as const) {
      child[stream].on("data", (b: Buffer) => {
        chunks[stream].push(b);
        const text = partial[stream] + b.toString("utf8");
        const lines = text.split("\n");
        partial[stream] = lines.pop() ?? "";
        for (const line of lines) onLine(stream, line);
      });
    }
    child.on("error", reject);
    child.on("close", (code, signal) => {
      for (const stream of ["stdout", "stderr"] as const) if (partial[stream]) onLine(stream, partial[stream]);
      resolve({
        code: code ?? (signal ? 128 + 9 : 1),
        // Trailing newlines are trimmed, as the real provider does.
        stdout: Buffer.concat(chunks.stdout).toString("utf8").replace(/\n+$/, ""),
        stderr: Buffer.concat(chunks.stderr).toString("utf8").replace(/\n+$/, ""),
      });
    });
    child.stdin.end(stdin ?? "");
  });
}
