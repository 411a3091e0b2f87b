/**
 * The keywords of GitLab's CI/CD YAML reference (docs.gitlab.com/ci/yaml/) with the values GitLab
 * accepts, written out for the parts this repository uses (workflow, default, jobs, rules, environment,
 * artifacts, cache, needs) and checked strictly: an unknown or misspelt keyword is an error, as it is
 * for GitLab. Keywords this repository does not use are accepted with any value.
 */
import { z } from "zod";
import { GLOBAL_KEYWORDS, resolveJob, type CiFile } from "./gitlab-rules";

const str = z.string();
const anyValue = z.unknown();
const lines = z.union([str, z.array(z.union([str, z.array(str)]))]);
const when = z.enum(["on_success", "on_failure", "always", "manual", "delayed", "never"]);
const changes = z.union([z.array(str).min(1), z.object({ paths: z.array(str).min(1), compare_to: str.optional() }).strict()]);
const exists = z.union([z.array(str).min(1), z.object({ paths: z.array(str).min(1), project: str.optional(), ref: str.optional() }).strict()]);
const allowFailure = z.union([z.boolean(), z.object({ exit_codes: z.union([z.number().int(), z.array(z.number().int()).min(1)]) }).strict()]);
const variableValue = z.union([str, z.number(), z.object({ value: str.optional(), description: str.optional(), options: z.array(str).optional(), expand: z.boolean().optional() }).strict()]);

const rule = z.object({
  if: str.optional(),
  changes: changes.optional(),
  exists: exists.optional(),
  when: when.optional(),
  allow_failure: allowFailure.optional(),
  variables: z.record(str, variableValue).optional(),
  needs: z.array(anyValue).optional(),
  interruptible: z.boolean().optional(),
  start_in: str.optional(),
}).strict();

const workflowRule = z.object({
  if: str.optional(),
  changes: changes.optional(),
  exists: exists.optional(),
  variables: z.record(str, variableValue).optional(),
  when: z.enum(["always", "never"]).optional(),
  auto_cancel: anyValue.optional(),
}).strict();

const environment = z.union([
  str.min(1),
  z.object({
    name: str.min(1),
    url: str.optional(),
    action: z.enum(["start", "prepare", "stop", "verify", "access"]).optional(),
    deployment_tier: z.enum(["production", "staging", "testing", "development", "other"]).optional(),
    on_stop: str.optional(),
    auto_stop_in: str.optional(),
    kubernetes: anyValue.optional(),
  }).strict(),
]);

const artifacts = z.object({
  paths: z.array(str).min(1).optional(),
  exclude: z.array(str).min(1).optional(),
  expose_as: str.optional(),
  name: str.optional(),
  untracked: z.boolean().optional(),
  when: z.enum(["on_success", "on_failure", "always"]).optional(),
  access: z.enum(["none", "developer", "all"]).optional(),
  expire_in: str.optional(),
  reports: z.record(str, anyValue).optional(),
  public: z.boolean().optional(),
}).strict();

const cacheItem = z.object({
  key: z.union([str, z.object({ files: z.array(str).min(1).max(2), prefix: str.optional() }).strict()]).optional(),
  paths: z.array(str).optional(),
  untracked: z.boolean().optional(),
  unprotect: z.boolean().optional(),
  when: z.enum(["on_success", "on_failure", "always"]).optional(),
  policy: z.enum(["pull", "push", "pull-push"]).optional(),
  fallback_keys: z.array(str).optional(),
}).strict();
const cache = z.union([cacheItem, z.array(cacheItem)]);

const needs = z.array(z.union([
  str,
  z.object({ job: str, artifacts: z.boolean().optional(), optional: z.boolean().optional(), pipeline: str.optional(), project: str.optional(), ref: str.optional(), parallel: anyValue.optional() }).strict(),
]));

const image = z.union([str, z.object({ name: str, entrypoint: z.array(str).optional(), pull_policy: anyValue.optional(), docker: anyValue.optional(), kubernetes: anyValue.optional() }).strict()]);

const jobKeywords = {
  after_script: lines, allow_failure: allowFailure, artifacts, before_script: lines, cache, coverage: str,
  dast_configuration: anyValue, dependencies: z.array(str), environment, extends: z.union([str, z.array(str)]),
  hooks: anyValue, id_tokens: anyValue, identity: anyValue, image, inherit: anyValue, interruptible: z.boolean(),
  manual_confirmation: str, needs, pages: anyValue, parallel: anyValue, release: anyValue, resource_group: str, retry: anyValue,
  rules: z.array(rule), run: anyValue, script: lines, secrets: anyValue, services: anyValue, stage: str, start_in: str,
  tags: z.array(str), timeout: str, trigger: anyValue, variables: z.record(str, variableValue), when,
};
export const jobSchema = z.object(jobKeywords).partial().strict();

const defaultSchema = z.object({
  after_script: lines, artifacts, before_script: lines, hooks: anyValue, cache, image, interruptible: z.boolean(),
  id_tokens: anyValue, identity: anyValue, retry: anyValue, services: anyValue, tags: z.array(str), timeout: str,
}).partial().strict();

const globals: Record<string, z.ZodType> = {
  default: defaultSchema,
  include: anyValue,
  stages: z.array(str).min(1),
  variables: z.record(str, variableValue),
  workflow: z.object({ name: str.optional(), auto_cancel: anyValue.optional(), rules: z.array(workflowRule).optional() }).strict(),
  spec: anyValue,
  image, services: anyValue, cache, before_script: lines, after_script: lines,
};

/** Problems, each with its key path; empty when every keyword and value is one GitLab accepts. */
export function checkGitlabKeywords(ci: CiFile): string[] {
  const problems: string[] = [];
  const report = (where: string, result: { success: boolean; error?: z.ZodError }) => {
    if (result.success || !result.error) return;
    for (const issue of result.error.issues) problems.push(`${[where, ...issue.path.map(String)].join(".")}: ${issue.message}`);
  };
  for (const [key, value] of Object.entries(ci)) {
    if (GLOBAL_KEYWORDS.has(key)) {
      report(key, globals[key].safeParse(value));
    } else if (key.startsWith(".")) {
      // Hidden keys: templates for `extends`, or any YAML anchor.
      if (typeof value === "object" && value !== null && !Array.isArray(value)) report(key, jobSchema.safeParse(value));
    } else {
      report(key, jobSchema.safeParse(value));
      const job = resolveJob(ci, key);
      if (job.script === undefined && job.trigger === undefined && job.run === undefined) problems.push(`${key}: a job needs script, run or trigger`);
    }
  }
  return problems;
}
