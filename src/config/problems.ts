// How a config problem is worded: key path, what was found, what was expected, and the command that fixes it.
import { EXAMPLES, SHELL_VALUES } from "./schema";
import { isSecretKey, secretFix } from "./secrets";

export const NAMESPACE = "socialcoop";

export type PathSegment = string | number;

export interface ConfigProblem {
  /**
   * Pulumi `--path` syntax, e.g. `hosts.primary.roles[1]`, under the `socialcoop:` namespace; a key of
   * another namespace is given in full (`socialcop:domain`).
   */
  readonly path: string;
  readonly message: string;
  readonly fix: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(
      `stack config has ${problems.length} problem${problems.length === 1 ? "" : "s"}; nothing was changed:\n` +
        problems.map((p) => `  - ${qualifiedKey(p.path)}: ${p.message}\n      fix: ${p.fix}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

/** The key as it appears in a stack file: `socialcoop:domain`; a foreign key stays as it is. */
export function qualifiedKey(path: string): string {
  return /^[^.[]*:/.test(path) ? path : `${NAMESPACE}:${path}`;
}

export function formatPath(path: readonly PathSegment[]): string {
  return path.reduce<string>((acc, seg) => {
    if (typeof seg === "number") return `${acc}[${seg}]`;
    return acc === "" ? seg : `${acc}.${seg}`;
  }, "");
}

function lookupPattern(table: Record<string, string>, path: readonly PathSegment[]): string | undefined {
  const segs = path.map(String);
  for (const [pattern, value] of Object.entries(table)) {
    const pat = pattern.split(".");
    if (pat.length === segs.length && pat.every((p, i) => p === "*" || p === segs[i])) return value;
  }
  return undefined;
}

/** The example for a path, where `*` in EXAMPLES matches any one segment. */
export function exampleFor(path: readonly PathSegment[]): string | undefined {
  return lookupPattern(EXAMPLES, path);
}

/** A value as a shell word: quoted when it holds spaces, quotes or brackets. */
export function shellWord(value: string): string {
  return /[\s"'{}[\]$*?;&|<>()\\]/.test(value) ? `'${value.replace(/'/g, `'\\''`)}'` : value;
}

/** The `pulumi config` command that sets this path to a valid value; a secret is read from the prompt instead. */
export function setFix(path: readonly PathSegment[], value?: string): string {
  if (path.length === 1 && typeof path[0] === "string" && isSecretKey(path[0])) return secretFix(path[0]);
  const quoted = value !== undefined ? shellWord(value) : (lookupPattern(SHELL_VALUES, path) ?? shellWord(exampleFor(path) ?? "<value>"));
  return path.length === 1 && typeof path[0] === "string"
    ? `pulumi config set ${path[0]} ${quoted}`
    : `pulumi config set --path '${formatPath(path)}' ${quoted}`;
}

export function removeFix(path: readonly PathSegment[]): string {
  return path.length === 1 ? `pulumi config rm ${String(path[0])}` : `pulumi config rm --path '${formatPath(path)}'`;
}

/** Shows a found value briefly; never used for secrets, and never shows a pasted private key. */
export function describeFound(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "symbol") return value.description ?? "a value (not shown)";
  if (typeof value === "string" && /PRIVATE KEY/.test(value)) return "a private key (not shown)";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

export function problem(path: readonly PathSegment[], message: string, fix: string = setFix(path)): ConfigProblem {
  return { path: formatPath(path), message, fix };
}
