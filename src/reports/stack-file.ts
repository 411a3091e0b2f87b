/**
 * Reads one key of `Pulumi.<stack>.yaml` for the report commands. Deliberately tiny: the typed config
 * parser (config.ts) will replace it; until then the reports check only the fields they read.
 */
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";

export class StackFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StackFileError";
  }
}

/** The repository root, where the `Pulumi.<stack>.yaml` files live (this file is src/reports/). */
export const REPO_ROOT = path.resolve(__dirname, "../..");

export function readStackKey(rootDir: string, stack: string, key: string): unknown {
  if (!/^[A-Za-z0-9_.-]+$/.test(stack)) throw new StackFileError(`--stack ${JSON.stringify(stack)}: expected a stack name like prod or alpha`);
  const file = path.join(rootDir, `Pulumi.${stack}.yaml`);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new StackFileError(`${file} not found: pass --stack with one of the stacks in the repository (e.g. prod, alpha)`);
  }
  const doc = parse(text) as { config?: Record<string, unknown> } | null;
  const value = doc?.config?.[key];
  if (value === undefined) throw new StackFileError(`${file}: config key ${key} is missing`);
  return value;
}
