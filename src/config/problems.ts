// How a config problem is worded: key path, what was found, what was expected, and the command that fixes it.
import { EXAMPLES } from "./schema";

export const NAMESPACE = "socialcoop";

export type PathSegment = string | number;

export interface ConfigProblem {
  /** Pulumi `--path` syntax, e.g. `hosts.primary.roles[1]`. */
  readonly path: string;
  readonly message: string;
  readonly fix: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(
      `stack config has ${problems.length} problem${problems.length === 1 ? "" : "s"}; nothing was changed:\n` +
        problems.map((p) => `  - ${NAMESPACE}:${p.path}: ${p.message}\n      fix: ${p.fix}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

export function formatPath(path: readonly PathSegment[]): string {
  return path.reduce<string>((acc, seg) => {
    if (typeof seg === "number") return `${acc}[${seg}]`;
    return acc === "" ? seg : `${acc}.${seg}`;
  }, "");
}

/** The example for a path, where `*` in EXAMPLES matches any one segment. */
export function exampleFor(path: readonly PathSegment[]): string | undefined {
  const segs = path.map(String);
  for (const [pattern, example] of Object.entries(EXAMPLES)) {
    const pat = pattern.split(".");
    if (pat.length === segs.length && pat.every((p, i) => p === "*" || p === segs[i])) return example;
  }
  return undefined;
}

/** The `pulumi config` command that sets this path to a valid value. */
export function setFix(path: readonly PathSegment[]): string {
  const example = exampleFor(path) ?? "<value>";
  const quoted = /[\s"{}[\]]/.test(example) ? `'${example}'` : example;
  return path.length === 1 && typeof path[0] === "string"
    ? `pulumi config set ${path[0]} ${quoted}`
    : `pulumi config set --path '${formatPath(path)}' ${quoted}`;
}

export function removeFix(path: readonly PathSegment[]): string {
  return path.length === 1 ? `pulumi config rm ${String(path[0])}` : `pulumi config rm --path '${formatPath(path)}'`;
}

/** Shows a found value briefly; never used for secrets. */
export function describeFound(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

export function problem(path: readonly PathSegment[], message: string, fix: string = setFix(path)): ConfigProblem {
  return { path: formatPath(path), message, fix };
}
