/** What the report commands share: flag parsing with exit code 2 on misuse, and injectable I/O. */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { REPO_ROOT } from "../plan/stack-file";

export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /** Where `Pulumi.<stack>.yaml` is read from. */
  readonly rootDir: string;
  readonly now: () => Date;
}

export function defaultIo(overrides: Partial<CliIo> = {}): CliIo {
  return {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    env: process.env,
    rootDir: REPO_ROOT,
    now: () => new Date(),
    ...overrides,
  };
}

export const EXIT_USAGE = 2;
/** An upstream API could not be read; distinct from 1, which each command gives a meaning of its own. */
export const EXIT_FETCH = 3;

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parses flags strictly; returns null after printing the reason and usage when they are wrong. */
/** The flags every per-stack report takes: which stack, JSON or a table, help. */
export const STACK_REPORT_FLAGS = {
  stack: { type: "string", default: "prod" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

export function parseFlags<O extends Options>(command: string, usage: string, argv: string[], options: O, io: CliIo) {
  try {
    const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
    return values;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    io.err(`coopctl ${command}: ${reason}\nusage: ${usage}\n`);
    return null;
  }
}
