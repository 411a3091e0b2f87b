// Keys the program would never read: an unknown key, or a key of another namespace (`socialcop:domain`,
// `hcloud:token`). Ignoring them would leave an operator sure of a setting that does nothing, so each
// is refused with the key it most likely meant. Values are never shown: a misplaced key may hold a secret.
import { z } from "zod";
import { ConfigProblem, NAMESPACE, PathSegment, formatPath, problem, removeFix, setFix, shellWord } from "./problems";
import { plainConfigSchema } from "./schema";
import { SECRET_KEYS, SecretKey, isSecretKey, secretFix } from "./secrets";
import { closest } from "./suggest";

export const PLAIN_KEYS: readonly string[] = Object.keys(plainConfigSchema.shape);
const ALL_KEYS: readonly string[] = [...PLAIN_KEYS, ...SECRET_KEYS];

/** Pulumi's own settings (`pulumi:disable-default-providers`, `pulumi:tags`): read by the engine, not the program. */
export const ENGINE_NAMESPACE = "pulumi";

/**
 * The providers this program uses. Each is an explicit provider resource configured from a
 * `socialcoop:` secret (components/providers.ts), so `hcloud:token` and the like are never read;
 * the command provider takes no settings at all.
 */
export const PROVIDER_NAMESPACES: Readonly<Record<string, SecretKey | undefined>> = {
  hcloud: "hcloudToken",
  digitalocean: "digitaloceanToken",
  cloudflare: "cloudflareApiToken",
  command: undefined,
};

/** `ns` of `ns:name`, or undefined for a key of the `socialcoop:` namespace (given without it). */
export function namespaceOf(key: string): string | undefined {
  const colon = key.indexOf(":");
  return colon < 0 ? undefined : key.slice(0, colon);
}

/** Secret-looking names: their values are not shown even when the key is not a known secret. */
export const looksSecret = (name: string) => /secret|token|pass(word|phrase)?$|private|credential/i.test(name);

const rotate = (storedPlain: boolean) => (storedPlain ? "; its value is stored in plain text: rotate it" : "");

interface KeyContext {
  readonly stackName: string;
  /** Raw values by key, to tell whether the meant key is set too. */
  readonly values: Readonly<Record<string, string>>;
  readonly secretKeys: ReadonlySet<string>;
}

/** The fix that moves a misplaced key to `target`; a secret is set again from the prompt. */
function moveFix(from: string, rmFrom: string, target: string, ctx: KeyContext): string {
  if (ctx.values[target] !== undefined) return rmFrom;
  if (isSecretKey(target)) return `${rmFrom} && ${secretFix(target)}`;
  return `rename ${from} to ${NAMESPACE}:${target} in Pulumi.${ctx.stackName}.yaml`;
}

function alsoSet(target: string, ctx: KeyContext): string {
  return ctx.values[target] !== undefined ? ` (${NAMESPACE}:${target} is set as well, so this one is a leftover)` : "";
}

/** A top-level key of the `socialcoop:` namespace that the schema does not know. */
export function unknownKeyProblem(key: string, ctx: KeyContext): ConfigProblem {
  const meant = closest(key, ALL_KEYS);
  if (meant === undefined) {
    return problem([key], `unknown key (known keys: ${ALL_KEYS.join(", ")})`, removeFix([key]));
  }
  const secret = isSecretKey(meant);
  const message = `unknown key; did you mean ${secret ? "the secret " : ""}${meant}?${alsoSet(meant, ctx)}${rotate(secret && !ctx.secretKeys.has(key))}`;
  return problem([key], message, moveFix(`${NAMESPACE}:${key}`, removeFix([key]), meant, ctx));
}

/** A key of another namespace, or undefined when it is Pulumi's own setting. */
export function foreignKeyProblem(fullKey: string, ctx: KeyContext): ConfigProblem | undefined {
  const ns = namespaceOf(fullKey) as string;
  const name = fullKey.slice(ns.length + 1);
  if (ns === ENGINE_NAMESPACE) return undefined;
  const rm = `pulumi config rm ${shellWord(fullKey)}`;
  const storedPlain = !ctx.secretKeys.has(fullKey);
  const at = (message: string, fix: string): ConfigProblem => ({ path: fullKey, message, fix });

  if (ns in PROVIDER_NAMESPACES) {
    const token = PROVIDER_NAMESPACES[ns];
    if (token === undefined) return at(`is never read: the ${ns} provider takes no settings`, rm);
    const isToken = /token/i.test(name);
    return at(
      `is never read: this program configures its own ${ns} provider from the secret ${NAMESPACE}:${token}, so ${ns}:* settings do not reach it${isToken ? rotate(storedPlain) : ""}`,
      isToken ? moveFix(fullKey, rm, token, ctx) : rm,
    );
  }

  const nsMeant = closest(ns, [NAMESPACE]) !== undefined;
  const meant = ALL_KEYS.includes(name) ? name : closest(name, ALL_KEYS);
  const reads = `this program reads only ${NAMESPACE}: keys`;
  if (meant === undefined) {
    const why = nsMeant ? `; ${NAMESPACE} has no key "${name}" either (known keys: ${ALL_KEYS.join(", ")})` : "";
    return at(`is never read: ${reads}${why}`, rm);
  }
  const misspelt = nsMeant ? ` ("${ns}" is not "${NAMESPACE}")` : "";
  return at(
    `is never read: ${reads}${misspelt}; did you mean ${NAMESPACE}:${meant}?${alsoSet(meant, ctx)}${rotate(isSecretKey(meant) && storedPlain)}`,
    moveFix(fullKey, rm, meant, ctx),
  );
}

/** The keys a strict object at `path` of the plain schema knows, for suggestions. */
export function knownKeysAt(path: readonly PathSegment[]): readonly string[] {
  let node: z.ZodType = plainConfigSchema;
  for (const seg of path) {
    node = unwrap(node);
    if (node instanceof z.ZodObject && typeof seg === "string" && seg in node.shape) node = node.shape[seg] as z.ZodType;
    else if (node instanceof z.ZodArray && typeof seg === "number") node = node.element as z.ZodType;
    else return [];
  }
  node = unwrap(node);
  return node instanceof z.ZodObject ? Object.keys(node.shape) : [];
}

function unwrap(node: z.ZodType): z.ZodType {
  let n = node;
  while (n instanceof z.ZodOptional || n instanceof z.ZodDefault) n = n.unwrap() as z.ZodType;
  return n;
}

/**
 * An unknown key inside an object (`hosts.primary.volumeGB`), from zod's unrecognized_keys; `found`
 * is its value, shown only when it is a short scalar under a name that does not look secret.
 */
export function unknownNestedKeyProblem(path: readonly PathSegment[], found: unknown): ConfigProblem {
  const key = String(path[path.length - 1]);
  const parent = path.slice(0, -1);
  const at = formatPath(path);
  const rm = removeFix(path);
  const sibling = closest(key, knownKeysAt(parent));
  if (sibling !== undefined) {
    const value = typeof found === "number" || typeof found === "boolean" || (typeof found === "string" && found.length <= 60) ? String(found) : undefined;
    const fix = value !== undefined && !looksSecret(key) ? `${rm} && ${setFix([...parent, sibling], value)}` : `rename ${at} to ${formatPath([...parent, sibling])}`;
    return problem(path, `unknown key; did you mean ${formatPath([...parent, sibling])}?`, fix);
  }
  const secret = closest(key, SECRET_KEYS) as SecretKey | undefined;
  if (secret !== undefined || looksSecret(key)) {
    const where = secret !== undefined ? `; secrets are top-level keys set with --secret: did you mean ${secret}?` : "";
    // A symbol stands for a value Pulumi holds encrypted (see parse.ts); anything else was stored in plain text.
    return problem(path, `unknown key (value not shown)${where}${rotate(typeof found !== "symbol")}`, secret !== undefined ? `${rm} && ${secretFix(secret)}` : rm);
  }
  const known = knownKeysAt(parent);
  return problem(path, `unknown key${known.length ? ` (known here: ${known.join(", ")})` : ""}`, rm);
}
