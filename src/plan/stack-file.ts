// Reads a Pulumi.<stack>.yaml the way Pulumi hands it to the program, for offline plans.
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { NAMESPACE } from "../config/problems";
import { SECRET_KEYS } from "../config/secrets";
import { generateEd25519 } from "../ssh/openssh-key";
import type { OfflineConfig } from "./offline";

export interface StackFile extends OfflineConfig {
  /** Secret keys whose value is encrypted in the file (or absent) and was replaced by a placeholder. */
  readonly placeholders: readonly string[];
}

/** The stack named on the command line has no Pulumi.<stack>.yaml (or is not a stack name). */
export class StackFileMissing extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StackFileMissing";
  }
}

export const REPO_ROOT = path.join(__dirname, "..", "..");

export function stackFilePath(stack: string, root = REPO_ROOT): string {
  return path.join(root, `Pulumi.${stack}.yaml`);
}

/**
 * Secrets are stored encrypted (`secure: v1:...`) and cannot be decrypted without the stack's
 * secrets provider, so an offline plan stands in a placeholder of the right shape for each,
 * still marked secret, so the program treats it exactly as it would the real value.
 */
function placeholder(key: string): string {
  if (key === "sshPrivateKey") return generateEd25519("offline-plan-placeholder", Buffer.alloc(32, 7)).privateKey;
  return `offline-placeholder-for-${key}-not-a-real-secret`;
}

export function readStackFile(stack: string, root = REPO_ROOT): StackFile {
  const file = stackFilePath(stack, root);
  if (!/^[A-Za-z0-9_-]+$/.test(stack) || !fs.existsSync(file)) {
    const known = fs.readdirSync(root).filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f)).map((f) => f.split(".")[1]);
    throw new StackFileMissing(`no stack file Pulumi.${stack}.yaml; known stacks: ${known.join(", ") || "none"}`);
  }
  const doc = (parse(fs.readFileSync(file, "utf8")) ?? {}) as { config?: Record<string, unknown> };
  const values: Record<string, string> = {};
  const secretKeys = new Set<string>();
  const placeholders: string[] = [];
  for (const [fullKey, raw] of Object.entries(doc.config ?? {})) {
    if (!fullKey.startsWith(`${NAMESPACE}:`)) continue;
    const key = fullKey.slice(NAMESPACE.length + 1);
    if (raw !== null && typeof raw === "object" && "secure" in raw) {
      values[key] = placeholder(key);
      secretKeys.add(key);
      placeholders.push(key);
    } else {
      values[key] = typeof raw === "string" ? raw : JSON.stringify(raw);
    }
  }
  for (const key of SECRET_KEYS) {
    if (values[key] !== undefined) continue;
    values[key] = placeholder(key);
    secretKeys.add(key);
    placeholders.push(key);
  }
  return { stack, values, secretKeys, placeholders };
}
