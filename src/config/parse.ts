// One parse of a stack's raw config into a typed StackConfig, reporting every problem at once.
import * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";
import {
  ConfigError,
  ConfigProblem,
  PathSegment,
  describeFound,
  problem,
  removeFix,
  setFix,
} from "./problems";
import {
  HostConfig,
  LOCATIONS,
  OBJECT_KEYS,
  PlainConfig,
  Role,
  SIZE_EXAMPLES,
  SIZE_PATTERNS,
  isLocalStack,
  plainConfigSchema,
} from "./schema";
import { SECRET_KEYS, SECRET_SPECS, SecretKey, secretFix } from "./secrets";

/** Config as Pulumi hands it over: keys without the `socialcoop:` prefix, values as strings. */
export interface RawStackConfig {
  readonly stackName: string;
  readonly values: Readonly<Record<string, string>>;
  /** Keys (without prefix) that Pulumi holds encrypted. */
  readonly secretKeys: ReadonlySet<string>;
}

export type Secrets = { readonly [K in SecretKey]?: pulumi.Output<string> };

export interface StackConfig extends PlainConfig {
  readonly stackName: string;
  readonly secrets: Secrets;
}

export type HostName = "primary" | "secondary";

const PLAIN_KEYS = Object.keys(plainConfigSchema.shape);
const APP_ROLES: readonly Role[] = ["mastodon", "hometown"];

export function parseStackConfig(raw: RawStackConfig): StackConfig {
  const problems: ConfigProblem[] = [];
  const plain: Record<string, unknown> = {};

  for (const [key, value] of Object.entries(raw.values)) {
    if ((SECRET_KEYS as readonly string[]).includes(key)) continue;
    if (!PLAIN_KEYS.includes(key)) {
      problems.push(
        problem([key], `unknown key (known keys: ${[...PLAIN_KEYS, ...SECRET_KEYS].join(", ")})`, removeFix([key])),
      );
      continue;
    }
    plain[key] = OBJECT_KEYS.has(key) ? parseJson(key, value, problems) : value;
  }

  const parsed = plainConfigSchema.safeParse(plain, { reportInput: true });
  if (!parsed.success) problems.push(...parsed.error.issues.flatMap((i) => fromZodIssue(i, plain)));
  else problems.push(...crossFieldProblems(parsed.data, raw.stackName));

  // Secrets are checked even when the plain part failed, so the operator sees everything at once.
  problems.push(...secretProblems(raw, parsed.success ? parsed.data : undefined));

  if (problems.length > 0) throw new ConfigError(problems);
  const data = parsed.data as PlainConfig;
  return { ...data, stackName: raw.stackName, secrets: readSecrets(raw) };
}

/**
 * Parses one plain key on its own, with the same rules and wording as the whole config: for the
 * reports, which read one section of a stack file and must not need its secrets.
 */
export function parseConfigKey<K extends keyof PlainConfig & string>(key: K, raw: string | undefined): PlainConfig[K] {
  const problems: ConfigProblem[] = [];
  const value = raw === undefined ? undefined : OBJECT_KEYS.has(key) ? parseJson(key, raw, problems) : raw;
  if (problems.length > 0) throw new ConfigError(problems);
  const schema = plainConfigSchema.shape[key] as unknown as z.ZodType<PlainConfig[K]>;
  const parsed = schema.safeParse(value, { reportInput: true });
  if (!parsed.success) {
    const root = { [key]: value };
    throw new ConfigError(parsed.error.issues.flatMap((i) => fromZodIssue({ ...i, path: [key, ...i.path] } as z.core.$ZodIssue, root)));
  }
  return parsed.data;
}

function parseJson(key: string, value: string, problems: ConfigProblem[]): unknown {
  try {
    return JSON.parse(value);
  } catch {
    problems.push(problem([key], `is not a structured value (found ${describeFound(value)})`));
    return undefined;
  }
}

function lookup(root: unknown, path: readonly PathSegment[]): unknown {
  let node = root;
  for (const seg of path) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<PathSegment, unknown>)[seg];
  }
  return node;
}

function fromZodIssue(issue: z.core.$ZodIssue, root: unknown): ConfigProblem[] {
  const path = issue.path.filter((s): s is PathSegment => typeof s !== "symbol");
  const found = lookup(root, path);
  switch (issue.code) {
    case "unrecognized_keys":
      return issue.keys.map((k) =>
        problem([...path, k], `unknown key (found ${describeFound(lookup(root, [...path, k]))})`, removeFix([...path, k])),
      );
    case "invalid_type":
      return [
        problem(path, found === undefined ? "is missing" : `expected ${issue.expected}, found ${describeFound(found)}`),
      ];
    case "invalid_value":
      return [
        problem(
          path,
          `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}, found ${describeFound(found)}`,
        ),
      ];
    case "too_small":
    case "too_big": {
      const bound = issue.code === "too_small" ? issue.minimum : issue.maximum;
      const word = issue.code === "too_small" ? "at least" : "at most";
      const what = issue.origin === "array" ? `${word} ${bound} item(s)` : `${word} ${bound}`;
      return [problem(path, `must be ${what}, found ${describeFound(found)}`)];
    }
    default:
      return [problem(path, `${issue.message.replace(/^Invalid input: /, "")}, found ${describeFound(found)}`)];
  }
}

function hostsOf(cfg: PlainConfig): [HostName, HostConfig][] {
  const hosts: [HostName, HostConfig][] = [["primary", cfg.hosts.primary]];
  if (cfg.hosts.secondary) hosts.push(["secondary", cfg.hosts.secondary]);
  return hosts;
}

/** Rules zod cannot express field by field: placement of roles, provider-specific values, stack shape. */
export function crossFieldProblems(cfg: PlainConfig, stackName: string): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const where = new Map<Role, HostName>();

  for (const [name, host] of hostsOf(cfg)) {
    const at = (k: string) => ["hosts", name, k];
    if (!LOCATIONS[host.provider].includes(host.location)) {
      out.push(
        problem(
          at("location"),
          `"${host.location}" is not a ${host.provider} location (one of ${LOCATIONS[host.provider].join(", ")})`,
          `pulumi config set --path 'hosts.${name}.location' ${LOCATIONS[host.provider][0]}`,
        ),
      );
    }
    if (!SIZE_PATTERNS[host.provider].test(host.size)) {
      const example = SIZE_EXAMPLES[host.provider];
      out.push(
        problem(
          at("size"),
          `"${host.size}" is not a ${host.provider} size slug (like ${example})`,
          `pulumi config set --path 'hosts.${name}.size' ${example}`,
        ),
      );
    }
    host.roles.forEach((role, i) => {
      const other = where.get(role);
      if (other === name) {
        out.push(problem(["hosts", name, "roles", i], `role "${role}" is listed twice`, removeFix(["hosts", name, "roles", i])));
      } else if (other) {
        out.push(
          problem(
            ["hosts", name, "roles", i],
            `role "${role}" is already on hosts.${other}; each role lives on one host`,
            removeFix(["hosts", name, "roles", i]),
          ),
        );
      } else where.set(role, name);
    });
    if (host.roles.includes("spare") && host.roles.length > 1) {
      out.push(
        problem(
          at("roles"),
          `"spare" cannot share a host with ${host.roles.filter((r) => r !== "spare").join(", ")}: a spare must be free to take over`,
          `pulumi config set --path 'hosts.${name}.roles' '["spare"]'`,
        ),
      );
    }
    if (host.roles.includes("spare") && name === "primary") {
      out.push(problem(at("roles"), `"spare" belongs on hosts.secondary, not the primary`, `move "spare" to hosts.secondary.roles`));
    }
  }

  const providers = hostsOf(cfg).map(([, h]) => h.provider);
  if (providers.includes("local") && !isLocalStack(cfg)) {
    out.push(
      problem(
        ["hosts"],
        `local hosts cannot be mixed with cloud hosts (found ${providers.join(" and ")}): a cloud host cannot reach a machine on this computer`,
        `set every hosts.*.provider to local (a rehearsal) or none (a real stack)`,
      ),
    );
  }

  const apps = APP_ROLES.filter((r) => where.has(r));
  if (apps.length === 0) {
    out.push(problem(["hosts", "primary", "roles"], `no host serves the instance: add "mastodon" or "hometown"`));
  } else if (apps.length > 1) {
    out.push(
      problem(["hosts"], `a stack serves one instance: both "mastodon" and "hometown" are set`, `keep one of them; run the other as its own stack (town)`),
    );
  }
  if (cfg.stackRole !== "prod" && where.has("matrix")) {
    out.push(problem(["hosts", where.get("matrix") as HostName, "roles"], `"matrix" is served only by the prod stack (matrix.${cfg.domain})`, `remove "matrix" from this ${cfg.stackRole} stack`));
  }
  if (cfg.stackRole === "alpha" && where.has("spare")) {
    out.push(problem(["hosts", "secondary", "roles"], `alpha is a throwaway restore of prod and has no hot spare`, `remove "spare" from hosts.secondary.roles`));
  }
  if (cfg.stackRole === "prod" && !cfg.hosts.secondary) {
    out.push(problem(["hosts", "secondary"], `is missing: prod keeps its backup repository and hot spare on a secondary host`));
  }

  const needs: [Role, "mastodon" | "hometown" | "synapse"][] = [["mastodon", "mastodon"], ["hometown", "hometown"], ["matrix", "synapse"]];
  for (const [role, app] of needs) {
    if (where.has(role) && !cfg.versions[app]) {
      out.push(problem(["versions", app], `is missing: hosts.${where.get(role)} has role "${role}"`, setFix(["versions", app])));
    }
  }

  if ((["prod", "alpha", "town"] as const).some((r) => r === stackName) && stackName !== cfg.stackRole) {
    out.push(problem(["stackRole"], `found "${cfg.stackRole}" but this stack is named "${stackName}"`, `pulumi config set stackRole ${stackName}`));
  }
  return out;
}

function secretProblems(raw: RawStackConfig, cfg: PlainConfig | undefined): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const spec of SECRET_SPECS) {
    const value = raw.values[spec.key];
    if (value === undefined || value === "") {
      // Without a valid plain config we cannot tell whether a conditional secret is needed.
      const required = spec.requiredWhen === undefined || (cfg !== undefined && spec.requiredWhen(cfg));
      if (required) out.push(problem([spec.key], `is missing (${spec.purpose})`, secretFix(spec.key)));
      continue;
    }
    if (!raw.secretKeys.has(spec.key)) {
      out.push(
        problem(
          [spec.key],
          `is set in plain text; it is the ${spec.purpose} and must be a secret (rotate it: it has been stored unencrypted)`,
          secretFix(spec.key),
        ),
      );
      continue;
    }
    const bad = spec.check?.(value);
    if (bad) out.push(problem([spec.key], `${bad} (${spec.purpose}; value not shown)`, secretFix(spec.key)));
  }
  return out;
}

function readSecrets(raw: RawStackConfig): Secrets {
  const out: { [K in SecretKey]?: pulumi.Output<string> } = {};
  for (const key of SECRET_KEYS) {
    const value = raw.values[key];
    if (value !== undefined && value !== "") out[key] = pulumi.secret(value);
  }
  return out;
}
