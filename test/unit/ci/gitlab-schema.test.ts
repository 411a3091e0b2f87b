// .gitlab-ci.yml against GitLab's keywords, and against GitLab's own JSON schema when a copy is given.
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { checkGitlabKeywords } from "./gitlab-keywords";
import { evaluatePipeline, jobNames, resolveJob, type CiFile } from "./gitlab-rules";
import { validateJsonSchema, type Schema } from "./json-schema";
import { loadCi } from "./pipeline-doc";

const ci = loadCi();

/** GitLab's schema, app/assets/javascripts/editor/schema/ci.json of gitlab-org/gitlab (docs/pipeline.md says how to get it). */
const SCHEMA_FILE = process.env.GITLAB_CI_SCHEMA;
const gitlabSchema: Schema | undefined = SCHEMA_FILE && existsSync(SCHEMA_FILE) ? (JSON.parse(readFileSync(SCHEMA_FILE, "utf8")) as Schema) : undefined;

const job = (name: string) => ci[name] as Record<string, unknown>;
/** Copies of the pipeline with one mistake each, which GitLab refuses. */
const broken: Array<[string, CiFile]> = [
  ["a misspelt job keyword", { ...ci, "up:prod": { ...job("up:prod"), enviroment: "prod" } }],
  ["an unknown rules:when", { ...ci, "up:prod": { ...job("up:prod"), rules: [{ if: "$CI_COMMIT_BRANCH", when: "sometimes" }] } }],
  ["an unknown environment action", { ...ci, "preview:prod": { ...job("preview:prod"), environment: { name: "preview/prod", action: "deploy" } } }],
  ["an unknown artifacts access", { ...ci, "plan:prod": { ...job("plan:prod"), artifacts: { paths: ["plan.txt"], access: "members" } } }],
  ["changes as a string", { ...ci, "plan:prod": { ...job("plan:prod"), rules: [{ if: "$X", changes: "index.ts" }] } }],
  ["a workflow rule with when: manual", { ...ci, workflow: { rules: [{ if: "$X", when: "manual" }] } }],
];

describe(".gitlab-ci.yml is a pipeline GitLab accepts", () => {
  it("the pipeline uses only GitLab CI keywords, with values GitLab accepts", () => {
    expect(checkGitlabKeywords(ci)).toEqual([]);
  });

  it("the keyword check refuses what GitLab refuses", () => {
    for (const [what, file] of broken) expect(checkGitlabKeywords(file), what).not.toEqual([]);
  });

  it("every job's stage is declared and every needs names a job of the same pipeline", () => {
    const stages = ci.stages as string[];
    for (const name of jobNames(ci)) {
      const j = resolveJob(ci, name);
      expect(stages, name).toContain(j.stage ?? "test");
      for (const need of j.needs ?? []) expect(jobNames(ci), name).toContain(typeof need === "string" ? need : need.job);
    }
    // Every pipeline these rules can create keeps its needs: up:alpha is there whenever up:prod is.
    const push = { CI_PIPELINE_SOURCE: "push", CI_COMMIT_BRANCH: "main", CI_DEFAULT_BRANCH: "main", CI_COMMIT_REF_PROTECTED: "true" };
    expect(evaluatePipeline(ci, { vars: push, changed: ["index.ts"] }).errors).toEqual([]);
  });

  if (!gitlabSchema) console.warn("skipped: GitLab's own CI schema check: GITLAB_CI_SCHEMA is not set (GitLab's ci.json is not in the repository)");
  it.skipIf(!gitlabSchema)("the pipeline is valid against GitLab's own CI schema (skipped unless GITLAB_CI_SCHEMA names a copy of GitLab's ci.json, which the repository cannot hold)", () => {
    const schema = gitlabSchema as Schema;
    expect(validateJsonSchema(schema, ci)).toEqual([]);
    for (const [what, file] of broken) expect(validateJsonSchema(schema, file), what).not.toEqual([]);
  });
});
