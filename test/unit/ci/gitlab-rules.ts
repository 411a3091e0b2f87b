/**
 * A model of how GitLab turns `.gitlab-ci.yml` into a pipeline, for the subset of keywords this
 * repository uses: `workflow:rules`, `extends`, job `rules` (`if`, `changes` as a list or as
 * `{paths, compare_to}`, `when`, `allow_failure`), `needs`, `stage`, `environment`, and which CI/CD
 * variables (protected, environment-scoped) each job of the pipeline receives.
 *
 * It follows GitLab's documented semantics (docs.gitlab.com/ci/jobs/job_rules, ci/yaml/#rules,
 * ci/variables/#for-a-project): the first rule that matches decides; a job whose rules match nothing is
 * left out; `&&` binds tighter than `||`; `changes` uses File.fnmatch with FNM_PATHNAME | FNM_DOTMATCH |
 * FNM_EXTGLOB and is always true for pipelines without a push (schedules, web, API, ...); predefined
 * variables lose to pipeline variables, which is why rules are never the only guard of a secret.
 */

export type Vars = Readonly<Record<string, string | undefined>>;

export interface Rule {
  readonly if?: string;
  readonly changes?: readonly string[] | { readonly paths: readonly string[]; readonly compare_to?: string };
  readonly when?: string;
  readonly allow_failure?: boolean;
}

export interface Environment {
  readonly name: string;
  readonly action?: string;
  readonly url?: string;
  readonly deployment_tier?: string;
}

export interface Job {
  readonly extends?: string | readonly string[];
  readonly stage?: string;
  readonly rules?: readonly Rule[];
  readonly when?: string;
  readonly needs?: readonly (string | { readonly job: string; readonly optional?: boolean })[];
  readonly environment?: string | Environment;
  readonly variables?: Readonly<Record<string, string>>;
  readonly script?: readonly (string | readonly string[])[];
  readonly before_script?: readonly (string | readonly string[])[];
  readonly resource_group?: string;
  readonly interruptible?: boolean;
  readonly image?: string;
  readonly artifacts?: { readonly paths?: readonly string[]; readonly access?: string; readonly when?: string; readonly expire_in?: string };
  readonly [key: string]: unknown;
}

export type CiFile = Readonly<Record<string, unknown>>;

/** Top-level keys that are not jobs (GitLab's global keywords). */
export const GLOBAL_KEYWORDS = new Set(["default", "include", "stages", "variables", "workflow", "spec", "image", "services", "cache", "before_script", "after_script"]);

export function jobNames(ci: CiFile): string[] {
  return Object.keys(ci).filter((k) => !k.startsWith(".") && !GLOBAL_KEYWORDS.has(k));
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** `extends` as GitLab merges it: hashes deep-merged, every other value (arrays included) replaced. */
export function resolveJob(ci: CiFile, name: string, depth = 0): Job {
  if (depth > 10) throw new Error(`extends: more than 10 levels at ${name}`);
  const raw = ci[name];
  if (!isPlainObject(raw)) throw new Error(`${name} is not a job`);
  const parents = raw.extends === undefined ? [] : Array.isArray(raw.extends) ? (raw.extends as string[]) : [raw.extends as string];
  let merged: Record<string, unknown> = {};
  for (const p of parents) {
    if (!(p in ci)) throw new Error(`${name}: extends ${p}, which does not exist`);
    merged = deepMerge(merged, resolveJob(ci, p, depth + 1) as Record<string, unknown>);
  }
  const { extends: _ignored, ...own } = raw;
  return deepMerge(merged, own) as Job;
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = isPlainObject(v) && isPlainObject(out[k]) ? deepMerge(out[k] as Record<string, unknown>, v) : v;
  return out;
}

/** Script lines as the runner gets them: nested arrays (from YAML anchors) flattened. */
export function flatLines(lines: Job["script"]): string[] {
  return (lines ?? []).flatMap((l) => (Array.isArray(l) ? (l as string[]) : [l as string]));
}

export function environmentOf(job: Job): Environment | undefined {
  if (job.environment === undefined) return undefined;
  return typeof job.environment === "string" ? { name: job.environment } : job.environment;
}

// ---------------------------------------------------------------------------------------------------
// rules:if expressions

type Token =
  | { readonly t: "var"; readonly name: string }
  | { readonly t: "str"; readonly value: string }
  | { readonly t: "re"; readonly source: string; readonly flags: string }
  | { readonly t: "null" }
  | { readonly t: "op"; readonly op: "==" | "!=" | "=~" | "!~" | "&&" | "||" | "(" | ")" };

function tokenize(expr: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i];
    if (/\s/.test(c)) { i++; continue; }
    const two = expr.slice(i, i + 2);
    if (["==", "!=", "=~", "!~", "&&", "||"].includes(two)) { out.push({ t: "op", op: two as "==" }); i += 2; continue; }
    if (c === "(" || c === ")") { out.push({ t: "op", op: c }); i++; continue; }
    if (c === "$") {
      const m = /^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/.exec(expr.slice(i));
      if (!m) throw new Error(`rules:if: bad variable at ${i} in ${expr}`);
      out.push({ t: "var", name: m[1] }); i += m[0].length; continue;
    }
    if (c === '"' || c === "'") {
      const end = expr.indexOf(c, i + 1);
      if (end < 0) throw new Error(`rules:if: unterminated string in ${expr}`);
      out.push({ t: "str", value: expr.slice(i + 1, end) }); i = end + 1; continue;
    }
    if (c === "/") {
      let j = i + 1;
      while (j < expr.length && expr[j] !== "/") j += expr[j] === "\\" ? 2 : 1;
      if (j >= expr.length) throw new Error(`rules:if: unterminated regex in ${expr}`);
      const flags = /^[a-z]*/.exec(expr.slice(j + 1))![0];
      out.push({ t: "re", source: expr.slice(i + 1, j), flags }); i = j + 1 + flags.length; continue;
    }
    if (expr.startsWith("null", i)) { out.push({ t: "null" }); i += 4; continue; }
    throw new Error(`rules:if: unexpected ${JSON.stringify(c)} at ${i} in ${expr}`);
  }
  return out;
}

type Value = string | null | { readonly re: RegExp };

/** Evaluates a `rules:if` / `workflow:rules:if` expression against the pipeline's variables. */
export function evaluateIf(expr: string, vars: Vars): boolean {
  const tokens = tokenize(expr);
  let pos = 0;
  const peek = () => tokens[pos];
  const isOp = (op: string) => peek()?.t === "op" && (peek() as { op: string }).op === op;
  const operand = (): Value => {
    const tok = tokens[pos++];
    if (!tok) throw new Error(`rules:if: expression ends early: ${expr}`);
    if (tok.t === "var") return vars[tok.name] ?? null;
    if (tok.t === "str") return tok.value;
    if (tok.t === "null") return null;
    if (tok.t === "re") return { re: new RegExp(tok.source, tok.flags) };
    throw new Error(`rules:if: unexpected ${tok.op} in ${expr}`);
  };
  const asRegex = (v: Value): RegExp | null => {
    if (v !== null && typeof v === "object") return v.re;
    // A variable may hold a pattern written as /.../ (GitLab 15.0+).
    const m = typeof v === "string" ? /^\/(.*)\/([a-z]*)$/.exec(v) : null;
    return m ? new RegExp(m[1], m[2]) : null;
  };
  const comparison = (): boolean => {
    if (isOp("(")) {
      pos++;
      const v = or();
      if (!isOp(")")) throw new Error(`rules:if: missing ) in ${expr}`);
      pos++;
      return v;
    }
    const left = operand();
    const next = peek();
    if (next?.t === "op" && ["==", "!=", "=~", "!~"].includes(next.op)) {
      pos++;
      const right = operand();
      const l = typeof left === "object" && left !== null ? null : left;
      switch (next.op) {
        case "==": return l === (typeof right === "object" && right !== null ? null : right);
        case "!=": return l !== (typeof right === "object" && right !== null ? null : right);
        case "=~": { const re = asRegex(right); return l !== null && re !== null && re.test(l); }
        default: { const re = asRegex(right); return !(l !== null && re !== null && re.test(l)); }
      }
    }
    // A lone variable is true when it is defined and not empty.
    return typeof left === "string" && left.length > 0;
  };
  const and = (): boolean => {
    let v = comparison();
    while (isOp("&&")) { pos++; const r = comparison(); v = v && r; }
    return v;
  };
  const or = (): boolean => {
    let v = and();
    while (isOp("||")) { pos++; const r = and(); v = v || r; }
    return v;
  };
  const result = or();
  if (pos !== tokens.length) throw new Error(`rules:if: trailing tokens in ${expr}`);
  return result;
}

// ---------------------------------------------------------------------------------------------------
// rules:changes globs

/** `File.fnmatch(pattern, path, FNM_PATHNAME | FNM_DOTMATCH | FNM_EXTGLOB)` as a RegExp. */
export function globToRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*" && pattern[i + 1] === "*" && pattern[i + 2] === "/" && (i === 0 || pattern[i - 1] === "/")) {
      re += "(?:[^/]*/)*"; // `**/`: zero or more directories
      i += 2;
    } else if (c === "*") {
      re += "[^/]*";
      while (pattern[i + 1] === "*") i++;
    } else if (c === "?") {
      re += "[^/]";
    } else if (c === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end < 0) { re += "\\["; continue; }
      re += `[${pattern.slice(i + 1, end).replace(/^!/, "^").replace(/\\/g, "\\\\")}]`;
      i = end;
    } else if (c === "{") {
      const end = pattern.indexOf("}", i + 1);
      if (end < 0) { re += "\\{"; continue; }
      re += `(?:${pattern.slice(i + 1, end).split(",").map((alt) => globToRegExp(alt).source.slice(1, -1)).join("|")})`;
      i = end;
    } else {
      re += c.replace(/[.+^$()|\\]/g, "\\$&");
    }
  }
  return new RegExp(`^${re}$`);
}

export function matchesGlob(pattern: string, file: string): boolean {
  return globToRegExp(pattern).test(file);
}

export function changePaths(rule: Rule): readonly string[] | undefined {
  if (rule.changes === undefined) return undefined;
  return Array.isArray(rule.changes) ? (rule.changes as string[]) : (rule.changes as { paths: string[] }).paths;
}

// ---------------------------------------------------------------------------------------------------
// pipelines

export interface PipelineContext {
  /** Predefined and pipeline variables as GitLab sets them for this pipeline. */
  readonly vars: Vars;
  /**
   * Files GitLab diffs for `changes`: against the target branch in a merge-request pipeline, against
   * `compare_to` when a rule names one, else against the push's previous commit.
   */
  readonly changed?: readonly string[];
  /** A push that creates the branch: `changes` without `compare_to` is then always true. */
  readonly newBranch?: boolean;
}

export interface PlannedJob {
  readonly name: string;
  readonly job: Job;
  readonly when: string;
  readonly allowFailure: boolean;
  readonly environment?: Environment;
}

export interface Pipeline {
  /** False when workflow:rules create no pipeline at all. */
  readonly created: boolean;
  readonly jobs: ReadonlyMap<string, PlannedJob>;
  /** What GitLab would refuse the pipeline for (a `needs` on an absent job, an undeclared stage). */
  readonly errors: readonly string[];
}

function changesMatch(rule: Rule, ctx: PipelineContext): boolean {
  const paths = changePaths(rule);
  if (paths === undefined) return true;
  const source = ctx.vars.CI_PIPELINE_SOURCE;
  // Only pushes and merge requests have a diff; every other pipeline matches `changes`.
  if (source !== "push" && source !== "merge_request_event") return true;
  const compareTo = Array.isArray(rule.changes) ? undefined : (rule.changes as { compare_to?: string }).compare_to;
  if (source === "push" && ctx.newBranch && compareTo === undefined) return true;
  return (ctx.changed ?? []).some((f) => paths.some((p) => matchesGlob(p, f)));
}

function firstMatch(rules: readonly Rule[], vars: Vars, ctx: PipelineContext): Rule | undefined {
  return rules.find((r) => (r.if === undefined || evaluateIf(r.if, vars)) && changesMatch(r, ctx));
}

export function evaluatePipeline(ci: CiFile, ctx: PipelineContext): Pipeline {
  const globalVars = (ci.variables ?? {}) as Record<string, string>;
  const vars: Vars = { ...globalVars, ...ctx.vars };
  const workflow = (ci.workflow as { rules?: Rule[] } | undefined)?.rules;
  if (workflow) {
    const rule = firstMatch(workflow, vars, ctx);
    if (!rule || rule.when === "never") return { created: false, jobs: new Map(), errors: [] };
  }
  const jobs = new Map<string, PlannedJob>();
  for (const name of jobNames(ci)) {
    const job = resolveJob(ci, name);
    const jobVars: Vars = { ...vars, ...(job.variables ?? {}), ...ctx.vars };
    let when = job.when ?? "on_success";
    let allowFailure = false;
    if (job.rules) {
      const rule = firstMatch(job.rules, jobVars, ctx);
      if (!rule) continue;
      when = rule.when ?? when;
      allowFailure = rule.allow_failure ?? false;
    }
    if (when === "never") continue;
    jobs.set(name, { name, job, when, allowFailure, environment: environmentOf(job) });
  }
  const stages = (ci.stages as string[] | undefined) ?? ["build", "test", "deploy"];
  const errors: string[] = [];
  for (const { name, job } of jobs.values()) {
    const stage = job.stage ?? "test";
    if (!stages.includes(stage)) errors.push(`${name}: stage ${stage} is not declared in stages`);
    for (const need of job.needs ?? []) {
      const needed = typeof need === "string" ? need : need.job;
      const optional = typeof need === "object" && need.optional === true;
      const other = jobs.get(needed);
      if (!other) {
        if (!optional) errors.push(`${name}: needs ${needed}, which is not in this pipeline`);
        continue;
      }
      if (stages.indexOf(other.job.stage ?? "test") > stages.indexOf(stage)) errors.push(`${name}: needs ${needed}, which is in a later stage`);
    }
  }
  return { created: true, jobs, errors };
}

// ---------------------------------------------------------------------------------------------------
// CI/CD variables

export interface VariableSetting {
  readonly name: string;
  /** `*` or an environment name, possibly with `*` wildcards (`preview/*`). */
  readonly scope: string;
  readonly protected: boolean;
}

/** GitLab's environment-scope match: `*` matches any (or no) environment; otherwise a wildcard match. */
export function scopeMatches(scope: string, environment: string | undefined): boolean {
  if (scope === "*") return true;
  if (environment === undefined) return false;
  const re = new RegExp(`^${scope.split("*").map((s) => s.replace(/[.+?^$()|[\]{}\\/]/g, "\\$&")).join(".*")}$`);
  return re.test(environment);
}

/**
 * The project variables a job of the pipeline receives: a protected one only when GitLab considers the
 * pipeline's ref protected (a protected branch or tag, or a merge request between protected branches
 * of this project), an environment-scoped one only for a job whose environment matches.
 */
export function variablesFor(job: PlannedJob, settings: readonly VariableSetting[], refProtected: boolean): string[] {
  return settings
    .filter((s) => (!s.protected || refProtected) && scopeMatches(s.scope, job.environment?.name))
    .map((s) => `${s.name}@${s.scope}`);
}
