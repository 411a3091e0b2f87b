// One parse of a stack's raw config into a typed StackConfig, reporting every problem at once.
import * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";
import { publicKeyFromPrivateKey } from "../ssh/openssh-key";
import { readCatalog } from "../upgrade/catalog";
import { type Flavor, type Hop, UpgradePathError, upgradeHops } from "../upgrade/path";
import { PLAIN_KEYS, foreignKeyProblem, namespaceOf, unknownKeyProblem, unknownNestedKeyProblem } from "./keys";
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
import { SECRET_KEYS, SECRET_SPECS, SecretKey, isSecretKey, secretFix } from "./secrets";

/**
 * Config as Pulumi hands it over, values as strings. Keys of the `socialcoop:` namespace come without
 * it (`domain`); keys of every other namespace in full (`socialcop:domain`, `hcloud:token`), as in
 * Pulumi.yaml's own project config, so that the parser can refuse what the program would never read.
 */
export interface RawStackConfig {
  readonly stackName: string;
  readonly values: Readonly<Record<string, string>>;
  /** Keys (as in `values`) that Pulumi holds encrypted. */
  readonly secretKeys: ReadonlySet<string>;
}

export interface ParseOptions {
  /** The release catalog of a flavor, oldest first; default releases/<flavor>.json. */
  readonly catalog?: (flavor: Flavor) => readonly string[];
}

/** The app the stack serves and the hops that reach its configured version (src/upgrade/path.ts). */
export interface UpgradePlan {
  readonly flavor: Flavor;
  readonly hops: readonly Hop[];
}

export type Secrets = { readonly [K in SecretKey]?: pulumi.Output<string> };

export interface StackConfig extends PlainConfig {
  readonly stackName: string;
  readonly secrets: Secrets;
  /** Checked with the rest of the config, so a version off the catalog is refused before any resource. */
  readonly upgrade: UpgradePlan;
}

export type HostName = "primary" | "secondary";

const APP_ROLES: readonly Flavor[] = ["mastodon", "hometown"];

export function parseStackConfig(raw: RawStackConfig, opts: ParseOptions = {}): StackConfig {
  const problems: ConfigProblem[] = [];
  const plain: Record<string, unknown> = {};

  for (const [key, value] of Object.entries(raw.values)) {
    if (namespaceOf(key) !== undefined) {
      const p = foreignKeyProblem(key, raw);
      if (p) problems.push(p);
      continue;
    }
    if (isSecretKey(key)) continue;
    if (!PLAIN_KEYS.includes(key)) {
      problems.push(unknownKeyProblem(key, raw));
      continue;
    }
    plain[key] = OBJECT_KEYS.has(key) ? parseJson(key, value, problems) : value;
  }

  const parsed = plainConfigSchema.safeParse(plain, { reportInput: true });
  if (!parsed.success) problems.push(...parsed.error.issues.flatMap((i) => fromZodIssue(i, plain, raw.secretKeys)));
  // The rules across keys run on every section that parsed, so that (say) an upgrade path off the
  // catalog is reported together with a typo in the domain, not after it is fixed.
  const valid = parsed.success ? parsed.data : validSections(plain);
  const { hosts, versions, stackRole, domain, sshKeys, tls, restore, backup, alerts, registrations, mail } = valid;
  if (hosts && versions && stackRole && domain) {
    problems.push(...crossFieldProblems({ hosts, versions, stackRole, domain, tls, restore, backup, alerts, registrations, mail }, raw.stackName));
  }
  if (sshKeys) problems.push(...sshKeyProblems(sshKeys, raw));
  let upgrade: UpgradePlan | undefined;
  if (hosts && versions) {
    const checked = upgradeProblems({ hosts, versions }, opts.catalog ?? readCatalog);
    problems.push(...checked.problems);
    upgrade = checked.plan;
  }

  // Secrets are checked even when the plain part failed, so the operator sees everything at once.
  problems.push(...secretProblems(raw, parsed.success ? parsed.data : undefined));

  if (problems.length > 0 || !upgrade) throw new ConfigError(problems);
  const data = parsed.data as PlainConfig;
  return { ...data, stackName: raw.stackName, secrets: readSecrets(raw), upgrade };
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

/** Each top-level section that is valid on its own. */
function validSections(plain: Record<string, unknown>): Partial<PlainConfig> {
  const out: Record<string, unknown> = {};
  const shape = plainConfigSchema.shape as Record<string, z.ZodType>;
  for (const key of PLAIN_KEYS) {
    const r = shape[key].safeParse(plain[key]);
    if (r.success) out[key] = r.data;
  }
  return out as Partial<PlainConfig>;
}

function parseJson(key: string, value: string, problems: ConfigProblem[]): unknown {
  try {
    return JSON.parse(value);
  } catch {
    problems.push(problem([key], `is not a structured value (found ${describeFound(value)})`));
    return undefined;
  }
}

/** Stands in for a value under a secret key: describeFound shows it as this text. */
const SECRET_FOUND = Symbol("a value under a secret key (not shown)");

function lookup(root: unknown, path: readonly PathSegment[]): unknown {
  let node = root;
  for (const seg of path) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<PathSegment, unknown>)[seg];
  }
  return node;
}

/**
 * `secretKeys`: top-level keys Pulumi holds encrypted (a plain key becomes one when a part of it was
 * set with `--secret --path`); nothing found under them is shown.
 */
function fromZodIssue(issue: z.core.$ZodIssue, root: unknown, secretKeys: ReadonlySet<string> = new Set()): ConfigProblem[] {
  const path = issue.path.filter((s): s is PathSegment => typeof s !== "symbol");
  const hidden = secretKeys.has(String(path[0]));
  const rawFound = lookup(root, path);
  const found = hidden && rawFound !== undefined ? SECRET_FOUND : rawFound;
  switch (issue.code) {
    case "unrecognized_keys":
      return issue.keys.map((k) => unknownNestedKeyProblem([...path, k], hidden ? SECRET_FOUND : lookup(root, [...path, k])));
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

/** A login over smtp:// without STARTTLS sends its password in clear: alerts and the instance's mail alike. */
function loginInClear(section: "alerts" | "mail", smtp: { smtpUrl?: string; smtpLogin?: string; smtpStartTls: boolean } | undefined): ConfigProblem[] {
  if (smtp?.smtpLogin === undefined || smtp.smtpStartTls || !smtp.smtpUrl?.startsWith("smtp://")) return [];
  return [problem([section, "smtpStartTls"], `is false with ${section}.smtpLogin set: the SMTP password would travel in clear`, `pulumi config set --path '${section}.smtpStartTls' true`)];
}

/** What the rules across keys read. */
export type CrossFieldInput = Pick<PlainConfig, "hosts" | "versions" | "stackRole" | "domain"> & Partial<Pick<PlainConfig, "tls" | "restore" | "backup" | "alerts" | "registrations" | "mail">>;

function hostsOf(cfg: Pick<PlainConfig, "hosts">): [HostName, HostConfig][] {
  const hosts: [HostName, HostConfig][] = [["primary", cfg.hosts.primary]];
  if (cfg.hosts.secondary) hosts.push(["secondary", cfg.hosts.secondary]);
  return hosts;
}

const rolesPath = (name: HostName) => ["hosts", name, "roles"];
const rolesFix = (name: HostName, roles: readonly Role[]) => setFix(rolesPath(name), JSON.stringify(roles));
const without = (roles: readonly Role[], role: Role) => roles.filter((r) => r !== role);
const unique = (roles: readonly Role[]) => [...new Set(roles)];
/** The app role a stack most likely means when it has none: a `town` stack serves Hometown. */
const likelyApp = (cfg: Pick<PlainConfig, "stackRole">): Role => (cfg.stackRole === "town" ? "hometown" : "mastodon");

/** Roles this kind of stack cannot have: only prod serves Matrix; alpha has no hot spare. */
function forbiddenRoles(cfg: Pick<PlainConfig, "stackRole">): readonly Role[] {
  return cfg.stackRole === "prod" ? [] : cfg.stackRole === "alpha" ? ["matrix", "spare"] : ["matrix"];
}

/**
 * Takes the stack's forbidden roles off a host without taking anything else with it, so that two
 * problems on one host give the same fix: the host keeps its other roles; a secondary left with none
 * is removed; a primary left with none serves the app instead.
 */
function dropForbiddenFix(cfg: CrossFieldInput, name: HostName): string {
  const host = cfg.hosts[name] as HostConfig;
  const rest = host.roles.filter((r) => !forbiddenRoles(cfg).includes(r));
  if (rest.length > 0) return rolesFix(name, rest);
  return name === "secondary" ? removeFix(["hosts", "secondary"]) : rolesFix(name, [likelyApp(cfg)]);
}

/** Rules zod cannot express field by field: placement of roles, provider-specific values, stack shape. */
export function crossFieldProblems(cfg: CrossFieldInput, stackName: string): ConfigProblem[] {
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
  }

  // alpha has no spare at all (below); elsewhere the spare lives alone on the secondary. Each fix
  // keeps every other role of the stack on some host: a fix must never drop the app it was serving.
  const { primary, secondary } = cfg.hosts;
  if (cfg.stackRole !== "alpha" && primary.roles.includes("spare")) {
    const rest = without(primary.roles, "spare");
    if (secondary) {
      const moved = unique([...rest, ...without(secondary.roles, "spare")]);
      out.push(
        problem(
          rolesPath("primary"),
          `"spare" belongs on hosts.secondary, not the primary: it takes over when the primary fails`,
          `${rolesFix("primary", moved.length > 0 ? moved : [likelyApp(cfg)])} && ${rolesFix("secondary", ["spare"])}`,
        ),
      );
    } else {
      out.push(
        problem(
          rolesPath("primary"),
          `"spare" needs a hosts.secondary to run on, and this stack has none`,
          rolesFix("primary", rest.length > 0 ? rest : [likelyApp(cfg)]),
        ),
      );
    }
  }
  if (cfg.stackRole !== "alpha" && secondary && secondary.roles.includes("spare") && secondary.roles.length > 1) {
    const rest = without(secondary.roles, "spare");
    const moved = unique([...without(primary.roles, "spare"), ...rest]);
    out.push(
      problem(
        rolesPath("secondary"),
        `"spare" cannot share a host with ${rest.join(", ")}: a spare must be free to take over; move ${rest.join(", ")} to hosts.primary`,
        `${rolesFix("primary", moved)} && ${rolesFix("secondary", ["spare"])}`,
      ),
    );
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

  // The test ACME server's settings on a real stack would trust a stranger's CA on the host.
  if (!isLocalStack(cfg)) {
    if (cfg.versions.fixture !== undefined) {
      out.push(
        problem(["versions", "fixture"], `versions.fixture is the local stacks' test app; a real stack runs Mastodon or Hometown`, `pulumi config rm --path 'versions.fixture'`),
      );
    }
    for (const key of ["acmeCa", "acmeRootsUrl", "dnsApi"] as const) {
      if (cfg.tls?.[key] !== undefined) {
        out.push(
          problem(
            ["tls", key],
            `tls.${key} is for local stacks only (the test ACME server); a real stack gets its certificate by DNS-01 through Cloudflare`,
            `pulumi config rm --path 'tls.${key}'`,
          ),
        );
      }
    }
  }

  const apps = APP_ROLES.filter((r) => where.has(r));
  if (apps.length === 0) {
    const role = likelyApp(cfg);
    out.push(
      problem(
        rolesPath("primary"),
        `no host serves the instance: add "mastodon" or "hometown"`,
        rolesFix("primary", unique([...primary.roles.filter((r) => !forbiddenRoles(cfg).includes(r)), role])),
      ),
    );
  } else if (apps.length > 1) {
    out.push(
      problem(["hosts"], `a stack serves one instance: both "mastodon" and "hometown" are set`, `keep one of them; run the other as its own stack (town)`),
    );
  }
  const matrixAt = where.get("matrix");
  if (cfg.stackRole !== "prod" && matrixAt) {
    out.push(problem(rolesPath(matrixAt), `"matrix" is served only by the prod stack (matrix.${cfg.domain})`, dropForbiddenFix(cfg, matrixAt)));
  }
  const spareAt = where.get("spare");
  if (cfg.stackRole === "alpha" && spareAt) {
    out.push(problem(rolesPath(spareAt), `alpha is a throwaway restore of prod and has no hot spare`, dropForbiddenFix(cfg, spareAt)));
  }
  if (cfg.stackRole === "prod" && !cfg.hosts.secondary) {
    // Not the generic example, which serves "mastodon" like the primary: prod's secondary is the spare,
    // shaped like the primary so that it can take over.
    const { provider, location, size, volumeGb } = primary;
    out.push(
      problem(
        ["hosts", "secondary"],
        `is missing: prod keeps its backup repository and hot spare on a secondary host`,
        setFix(["hosts", "secondary"], JSON.stringify({ provider, location, size, volumeGb, roles: ["spare"] })),
      ),
    );
  }

  const needs: [Role, "mastodon" | "hometown" | "synapse"][] = [["mastodon", "mastodon"], ["hometown", "hometown"], ["matrix", "synapse"]];
  for (const [role, app] of needs) {
    if (where.has(role) && !cfg.versions[app]) {
      out.push(problem(["versions", app], `is missing: hosts.${where.get(role)} has role "${role}"`, setFix(["versions", app])));
    }
  }

  // Refused here, before the lost machines are replaced, rather than by the host script after them.
  const from = cfg.restore?.from;
  // Backups (the repository, and the S3 copy) are made only on a stack with a secondary (components/backup.ts).
  // prod without one is refused above with the secondary's own fix; another stack has nothing to restore.
  if ((from === "secondary" || from === "s3") && !cfg.hosts.secondary && cfg.stackRole !== "prod") {
    out.push(
      problem(
        ["restore", "from"],
        `is "${from}" but this stack has no hosts.secondary, and without one it keeps no backups to restore from`,
        "pulumi config rm --path 'restore'",
      ),
    );
  }
  if (from === "s3" && !cfg.backup?.s3) {
    out.push(problem(["restore", "from"], `is "s3" but backup.s3 is not set: there is no S3 repository to restore from`, "pulumi config set --path 'restore.from' secondary"));
  }

  if (cfg.restore?.from === "prod" && cfg.stackRole === "prod") {
    out.push(problem(["restore", "from"], `is "prod" on the prod stack: prod restores from its own repositories`, "pulumi config set --path 'restore.from' secondary"));
  } else if (cfg.restore?.from === "prod" && cfg.stackRole !== "alpha") {
    out.push(problem(["restore", "from"], `is "prod" but only alpha is a copy of prod; ${cfg.stackRole} starts from nothing`, "pulumi config rm --path 'restore'"));
  }
  if (cfg.stackRole === "alpha" && cfg.registrations !== undefined) {
    out.push(
      problem(["registrations"], `is set on alpha, a copy of prod that nobody signs up to: sanitize-alpha.sh keeps sign-ups closed`, "pulumi config rm registrations"),
    );
  }
  if (cfg.restore?.stack !== undefined && cfg.restore.from !== "prod") {
    out.push(problem(["restore", "stack"], `is set but restore.from is "${cfg.restore.from}": only a restore from prod reads another stack`, "pulumi config rm --path 'restore.stack'"));
  }

  const alerts = cfg.alerts;
  // Without a server of their own, alerts go through the instance's mail (components/alerts.ts).
  if (alerts && alerts.email.length > 0 && !cfg.mail) {
    if (!alerts.from) out.push(problem(["alerts", "from"], "is missing: alerts.email needs a sender address (or set mail, whose sender alerts then use)", setFix(["alerts", "from"])));
    if (!alerts.smtpUrl) out.push(problem(["alerts", "smtpUrl"], "is missing: alerts.email needs the SMTP server to send through (or set mail, the instance's own)", setFix(["alerts", "smtpUrl"])));
  }
  out.push(...loginInClear("alerts", alerts));

  const mail = cfg.mail;
  if (mail && cfg.stackRole === "alpha") {
    out.push(problem(["mail"], "is set on alpha, which never mails (sanitize-alpha.sh writes its mail to files)", "pulumi config rm mail"));
  }
  out.push(...loginInClear("mail", mail));

  const readers = cfg.backup?.readers ?? [];
  if (readers.length > 0 && !cfg.hosts.secondary) {
    out.push(problem(["backup", "readers"], `names ${readers.join(", ")} but this stack has no hosts.secondary holding a repository to read`, "pulumi config rm --path 'backup.readers'"));
  }
  if (readers.includes(cfg.stackRole)) {
    const rest = readers.filter((r) => r !== cfg.stackRole);
    out.push(problem(["backup", "readers"], `names this stack itself (${cfg.stackRole}); it reads its own backups already`, rest.length > 0 ? setFix(["backup", "readers"], JSON.stringify(rest)) : "pulumi config rm --path 'backup.readers'"));
  }
  if (new Set(readers).size !== readers.length) {
    out.push(problem(["backup", "readers"], `names a stack twice`, setFix(["backup", "readers"], JSON.stringify([...new Set(readers)]))));
  }

  if ((["prod", "alpha", "town"] as const).some((r) => r === stackName) && stackName !== cfg.stackRole) {
    out.push(problem(["stackRole"], `found "${cfg.stackRole}" but this stack is named "${stackName}"`, `pulumi config set stackRole ${stackName}`));
  }
  return out;
}

/** The same key twice reaches Hetzner and DigitalOcean twice, and both refuse a duplicate in the middle of `pulumi up`. */
function sshKeyProblems(sshKeys: readonly string[], raw: RawStackConfig): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const keyOf = (line: string) => line.trim().split(/\s+/).slice(0, 2).join(" ");
  let deploy: string | undefined;
  try {
    deploy = publicKeyFromPrivateKey(raw.values.sshPrivateKey ?? "");
  } catch {
    deploy = undefined; // reported with the secrets
  }
  const seen = new Map<string, number>();
  sshKeys.forEach((line, i) => {
    const key = keyOf(line);
    const first = seen.get(key);
    if (key === deploy) {
      out.push(problem(["sshKeys", i], `is the deploy key's public half, which every host gets already (the cloud would refuse it twice)`, removeFix(["sshKeys", i])));
    } else if (first !== undefined) {
      out.push(problem(["sshKeys", i], `is the same key as sshKeys[${first}] (the cloud would refuse it twice)`, removeFix(["sshKeys", i])));
    } else seen.set(key, i);
  });
  return out;
}

/** The upgrade path to the configured version, checked here so it is reported with every other problem. */
function upgradeProblems(cfg: Pick<PlainConfig, "hosts" | "versions">, catalog: (flavor: Flavor) => readonly string[]): { problems: ConfigProblem[]; plan?: UpgradePlan } {
  const hosts = hostsOf(cfg).map(([, h]) => h);
  const apps = APP_ROLES.filter((r) => hosts.some((h) => h.roles.includes(r)));
  if (apps.length !== 1) return { problems: [] }; // reported by crossFieldProblems
  const flavor = apps[0];
  const target = cfg.versions[flavor];
  if (!target) return { problems: [] };
  const path = ["versions", flavor];
  const file = `releases/${flavor}.json`;
  let tags: readonly string[];
  try {
    tags = catalog(flavor);
  } catch (e) {
    return { problems: [problem(path, `cannot be checked: ${(e as Error).message}`, `repair ${file}: a JSON list of release tags, oldest first`)] };
  }
  try {
    return { problems: [], plan: { flavor, hops: upgradeHops(flavor, target, tags, file) } };
  } catch (e) {
    if (!(e instanceof UpgradePathError)) throw e;
    const reachable = (t: string) => {
      try {
        return upgradeHops(flavor, t, tags, file).length > 0;
      } catch {
        return false;
      }
    };
    const listed = [...tags].reverse().find((t) => t !== target && reachable(t));
    const pick = listed ? setFix(path, listed) : undefined;
    // A pre-release cannot be deployed at all; a final release missing from the catalog can be added to it.
    const fix = /not a final/.test(e.message) || tags.includes(target)
      ? (pick ?? setFix(path))
      : `add "${target}" to ${file} (with every release before it)${pick ? `, or keep a listed release: ${pick}` : ""}`;
    return { problems: [problem(path, e.message.replace(/^versions\.\w+: /, ""), fix)] };
  }
}

function secretProblems(raw: RawStackConfig, cfg: PlainConfig | undefined): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  // Only here are both the plain alerts section and the webhook secret in view.
  if (cfg?.alerts && cfg.alerts.email.length === 0 && !raw.values.alertWebhookUrl) {
    out.push(problem(["alerts", "email"], "is empty and no alertWebhookUrl is set: the hosts' alerts would tell nobody", setFix(["alerts", "email"])));
  }
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
