// Reads a Pulumi.<stack>.yaml the way Pulumi hands it to the program, for offline plans.
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { NAMESPACE } from "../config/problems";
import { SECRET_KEYS, SECRET_SPECS } from "../config/secrets";
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

/**
 * The stack file is not valid YAML or not shaped like a Pulumi stack file. A StackFileMissing, so
 * that every command that reports a missing stack file reports a broken one the same way.
 */
export class StackFileInvalid extends StackFileMissing {
  constructor(message: string) {
    super(message);
    this.name = "StackFileInvalid";
  }
}

/** Top-level keys of a Pulumi stack file. */
const STACK_FILE_KEYS = ["config", "environment", "secretsprovider", "encryptedkey", "encryptionsalt"];

/** The `config:` map of a stack file; every error names the file (and, for YAML, the line). */
export function readConfigSection(fileName: string, text: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    // The first line says what and where ("... at line 3, column 5:"); the rest quotes the file.
    const first = ((e as Error).message.split("\n")[0] ?? "").trim().replace(/:$/, "");
    throw new StackFileInvalid(`${fileName}: is not valid YAML: ${first}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw new StackFileInvalid(`${fileName}: expected a map with a config: section`);
  const unknown = Object.keys(doc).filter((k) => !STACK_FILE_KEYS.includes(k));
  if (unknown.length > 0) {
    throw new StackFileInvalid(`${fileName}: unknown top-level key ${unknown.map((k) => JSON.stringify(k)).join(", ")} (a stack file has ${STACK_FILE_KEYS.join(", ")}); config keys go under config:`);
  }
  const config = (doc as { config?: unknown }).config;
  if (config === undefined || config === null) return {};
  if (typeof config !== "object" || Array.isArray(config)) throw new StackFileInvalid(`${fileName}: config: must be a map of keys like socialcoop:domain`);
  return config as Record<string, unknown>;
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
  if (key === "alertWebhookUrl") return "https://offline-placeholder.invalid/not-a-real-secret";
  return `offline-placeholder-for-${key}-not-a-real-secret`;
}

export function readStackFile(stack: string, root = REPO_ROOT): StackFile {
  const file = stackFilePath(stack, root);
  if (!/^[A-Za-z0-9_-]+$/.test(stack) || !fs.existsSync(file)) {
    const known = fs.readdirSync(root).filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f)).map((f) => f.split(".")[1]);
    throw new StackFileMissing(`no stack file Pulumi.${stack}.yaml; known stacks: ${known.join(", ") || "none"}`);
  }
  const config = readConfigSection(path.basename(file), fs.readFileSync(file, "utf8"));
  const values: Record<string, string> = {};
  const secretKeys = new Set<string>();
  const placeholders: string[] = [];
  for (const [fullKey, raw] of Object.entries(config)) {
    // As config.ts hands keys to the parser: socialcoop's without the prefix, every other in full,
    // so that a misspelled namespace is refused offline exactly as in `pulumi up`.
    const ours = fullKey.startsWith(`${NAMESPACE}:`);
    const key = ours ? fullKey.slice(NAMESPACE.length + 1) : fullKey;
    if (raw !== null && typeof raw === "object" && "secure" in raw) {
      values[key] = ours ? placeholder(key) : "offline-placeholder-not-a-real-secret";
      secretKeys.add(key);
      if (ours) placeholders.push(key);
    } else {
      values[key] = typeof raw === "string" ? raw : JSON.stringify(raw);
    }
  }
  for (const key of SECRET_KEYS) {
    if (values[key] !== undefined || SECRET_SPECS.find((s) => s.key === key)?.optional) continue;
    values[key] = placeholder(key);
    secretKeys.add(key);
    placeholders.push(key);
  }
  return { stack, values, secretKeys, placeholders };
}
