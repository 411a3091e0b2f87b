// Concrete pipelines, evaluated from .gitlab-ci.yml as GitLab would create them (test/unit/ci/gitlab-rules.ts),
// and the variables each job would receive given the settings of docs/pipeline.md.
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { environmentOf, evaluatePipeline, flatLines, jobNames, resolveJob, scopeMatches, variablesFor, type CiFile, type Pipeline, type PipelineContext, type Vars } from "./gitlab-rules";
import { REPO, docClaims, docVariables, loadCi } from "./pipeline-doc";

const ci = loadCi();
const settings = docVariables();
const PROJECT_ID = "1123";

const base: Vars = { CI_DEFAULT_BRANCH: "main", CI_PROJECT_ID: PROJECT_ID, CI_PROJECT_PATH: "coop/infra" };

function mergeRequest(opts: { changed: string[]; protectedRef: boolean; fork?: boolean; vars?: Vars }): PipelineContext {
  return {
    changed: opts.changed,
    vars: {
      ...base,
      CI_PIPELINE_SOURCE: "merge_request_event",
      CI_MERGE_REQUEST_IID: "42",
      CI_MERGE_REQUEST_PROJECT_ID: PROJECT_ID,
      CI_MERGE_REQUEST_SOURCE_PROJECT_ID: opts.fork ? "2002" : PROJECT_ID,
      CI_MERGE_REQUEST_SOURCE_BRANCH_NAME: "feature",
      CI_MERGE_REQUEST_TARGET_BRANCH_NAME: "main",
      CI_COMMIT_REF_NAME: "feature",
      CI_COMMIT_REF_PROTECTED: String(opts.protectedRef),
      ...opts.vars,
    },
  };
}

function push(branch: string, opts: { changed: string[]; protectedRef: boolean; source?: string; vars?: Vars }): PipelineContext {
  return {
    changed: opts.changed,
    vars: { ...base, CI_PIPELINE_SOURCE: opts.source ?? "push", CI_COMMIT_BRANCH: branch, CI_COMMIT_REF_NAME: branch, CI_COMMIT_REF_PROTECTED: String(opts.protectedRef), ...opts.vars },
  };
}

/** The pipeline, after checking GitLab would create it as it is (no dangling needs, declared stages). */
function pipeline(ctx: PipelineContext, file: CiFile = ci): Pipeline {
  const p = evaluatePipeline(file, ctx);
  expect(p.errors).toEqual([]);
  return p;
}

const names = (p: Pipeline) => [...p.jobs.keys()].sort();
/** Variables per job, given whether GitLab considers the ref protected (not what a pipeline variable claims). */
const received = (p: Pipeline, refProtected: boolean) =>
  Object.fromEntries([...p.jobs.values()].map((j) => [j.name, variablesFor(j, settings, refProtected)]));

const DEPLOY_SCOPES = ["alpha", "prod"];

describe("merge requests", () => {
  it("an MR from an unprotected branch that changes releases/mastodon.json gets plans, no real preview and no variable", () => {
    const p = pipeline(mergeRequest({ changed: ["releases/mastodon.json"], protectedRef: false }));
    expect(names(p)).toEqual(["plan:alpha", "plan:prod", "unit-tests"]);
    for (const job of p.jobs.values()) {
      expect(job.environment, job.name).toBeUndefined();
      expect(job.when, job.name).toBe("on_success");
    }
    expect(received(p, false)).toEqual({ "plan:alpha": [], "plan:prod": [], "unit-tests": [] });
  });

  it("an MR between protected branches that changes only releases/mastodon.json previews both stacks", () => {
    const p = pipeline(mergeRequest({ changed: ["releases/mastodon.json"], protectedRef: true }));
    expect(names(p)).toEqual(["plan:alpha", "plan:prod", "preview:alpha", "preview:prod", "unit-tests"]);
    expect(p.jobs.get("preview:prod")).toMatchObject({ when: "on_success", environment: { name: "preview/prod", action: "prepare" } });
    expect(p.jobs.get("preview:alpha")).toMatchObject({ when: "on_success", environment: { name: "preview/alpha", action: "prepare" } });
  });

  it("an MR that changes only docs runs no plan and no preview", () => {
    for (const protectedRef of [false, true]) {
      const p = pipeline(mergeRequest({ changed: ["docs/pipeline.md", "docs/runbooks/restore.md", "README.md"], protectedRef }));
      expect(names(p)).toEqual(["unit-tests"]);
    }
  });

  it("an MR that changes only one stack's file plans and previews only that stack", () => {
    const alpha = pipeline(mergeRequest({ changed: ["Pulumi.alpha.yaml"], protectedRef: true }));
    expect(names(alpha)).toEqual(["plan:alpha", "preview:alpha", "unit-tests"]);
    const prod = pipeline(mergeRequest({ changed: ["Pulumi.prod.yaml"], protectedRef: false }));
    expect(names(prod)).toEqual(["plan:prod", "unit-tests"]);
  });

  it("a fork's MR gets no real preview and no variable, even when CI_COMMIT_REF_PROTECTED is forced to true", () => {
    // A pipeline variable outranks a predefined one, so the rules see "true"; GitLab still knows the ref is not protected.
    const p = pipeline(mergeRequest({ changed: ["index.ts", "package.json"], protectedRef: false, fork: true, vars: { CI_COMMIT_REF_PROTECTED: "true" } }));
    expect(names(p)).toEqual(["plan:alpha", "plan:prod", "unit-tests"]);
    expect(Object.values(received(p, false)).flat()).toEqual([]);
  });

  it("an MR from an unprotected branch that forces CI_COMMIT_REF_PROTECTED gets a preview job that receives nothing", () => {
    const p = pipeline(mergeRequest({ changed: ["index.ts"], protectedRef: false, vars: { CI_COMMIT_REF_PROTECTED: "true" } }));
    expect(names(p)).toContain("preview:prod");
    expect(Object.values(received(p, false)).flat()).toEqual([]);
  });

  it("a job that a branch adds with environment prod receives no variable on an unprotected ref", () => {
    const tampered: CiFile = { ...ci, steal: { stage: "test", environment: { name: "prod" }, script: ["env"] }, "steal-preview": { stage: "test", environment: "preview/prod", script: ["env"] } };
    const p = pipeline(mergeRequest({ changed: ["index.ts"], protectedRef: false }), tampered);
    expect(p.jobs.has("steal")).toBe(true);
    expect(received(p, false).steal).toEqual([]);
    expect(received(p, false)["steal-preview"]).toEqual([]);
    // The same job on a protected ref would get prod's identity: the protected branch is the boundary.
    const onMain = pipeline(push("main", { changed: ["index.ts"], protectedRef: true }), tampered);
    expect(received(onMain, true).steal).toContain("PULUMI_ACCESS_TOKEN@prod");
  });
});

describe("previews on preview/N", () => {
  it("a maintainer's push to preview/42 runs the real previews, which get only the preview identity", () => {
    const p = pipeline(push("preview/42", { changed: ["components/host.ts"], protectedRef: true }));
    expect(names(p)).toEqual(["preview:alpha", "preview:prod"]);
    const got = received(p, true);
    for (const job of ["preview:prod", "preview:alpha"]) {
      expect(got[job]).toContain("PULUMI_ACCESS_TOKEN@preview/*");
      expect(got[job]).toContain("GITLAB_NOTES_TOKEN@preview/*");
      expect(got[job].filter((v) => DEPLOY_SCOPES.includes(v.split("@")[1]))).toEqual([]);
    }
  });

  it("preview/N previews only the stacks whose files differ from main", () => {
    expect(names(pipeline(push("preview/42", { changed: ["Pulumi.prod.yaml"], protectedRef: true })))).toEqual(["preview:prod"]);
    expect(names(pipeline(push("preview/42", { changed: ["docs/pipeline.md"], protectedRef: true })))).toEqual([]);
  });

  it("an unprotected preview/N branch, or any other branch without an MR, runs nothing", () => {
    expect(evaluatePipeline(ci, push("preview/43", { changed: ["index.ts"], protectedRef: false })).created).toBe(false);
    expect(evaluatePipeline(ci, push("feature", { changed: ["index.ts"], protectedRef: false })).created).toBe(false);
    expect(evaluatePipeline(ci, push("preview/not-a-number", { changed: ["index.ts"], protectedRef: true })).created).toBe(false);
  });
});

describe("deploys", () => {
  it("a push to main deploys alpha, then offers prod, which needs alpha", () => {
    const p = pipeline(push("main", { changed: ["releases/mastodon.json"], protectedRef: true }));
    expect(names(p)).toEqual(["unit-tests", "up:alpha", "up:prod"]);
    expect(p.jobs.get("up:alpha")).toMatchObject({ when: "on_success", environment: { name: "alpha" } });
    expect(p.jobs.get("up:prod")).toMatchObject({ when: "manual", allowFailure: false, environment: { name: "prod" } });
    expect(p.jobs.get("up:prod")!.job.needs).toEqual(["up:alpha"]);
    expect(p.jobs.get("up:alpha")!.job.needs).toEqual(["unit-tests"]);
    const got = received(p, true);
    expect(got["up:alpha"]).toContain("PULUMI_ACCESS_TOKEN@alpha");
    expect(got["up:alpha"].filter((v) => /@(prod|preview\/\*)$/.test(v))).toEqual([]);
    expect(got["up:prod"]).toContain("PULUMI_ACCESS_TOKEN@prod");
    expect(got["up:prod"].filter((v) => /@(alpha|preview\/\*)$/.test(v))).toEqual([]);
    expect(got["unit-tests"].every((v) => v.endsWith("@*"))).toBe(true);
  });

  it("tags, schedules and pipelines started by hand deploy nothing", () => {
    const tag = evaluatePipeline(ci, { vars: { ...base, CI_PIPELINE_SOURCE: "push", CI_COMMIT_TAG: "v1.0.0", CI_COMMIT_REF_NAME: "v1.0.0", CI_COMMIT_REF_PROTECTED: "true" } });
    expect(tag.created).toBe(false);
    expect(names(pipeline(push("main", { changed: [], protectedRef: true, source: "schedule", vars: { COOPCTL_REPORT: "behind" } })))).toEqual(["behind:weekly"]);
    expect(names(pipeline(push("main", { changed: [], protectedRef: true, source: "schedule" })))).toEqual([]);
    for (const source of ["web", "api", "trigger", "pipeline"]) {
      expect(names(pipeline(push("main", { changed: ["index.ts"], protectedRef: true, source }))), source).toEqual(["unit-tests"]);
    }
    for (const protectedRef of [false, true]) {
      const mr = pipeline(mergeRequest({ changed: ["index.ts"], protectedRef }));
      expect(names(mr).filter((n) => n.startsWith("up:"))).toEqual([]);
    }
  });

  it("deploy jobs have an environment, a resource group and are not interruptible", () => {
    const alpha = resolveJob(ci, "up:alpha");
    const prod = resolveJob(ci, "up:prod");
    expect(alpha.environment).toEqual({ name: "alpha", url: "https://alpha.social.coop", deployment_tier: "staging" });
    expect(prod.environment).toEqual({ name: "prod", url: "https://social.coop", deployment_tier: "production" });
    expect([alpha.resource_group, prod.resource_group]).toEqual(["stack-alpha", "stack-prod"]);
    expect([alpha.interruptible, prod.interruptible]).toEqual([false, false]);
    const stages = ci.stages as string[];
    expect(stages.indexOf(prod.stage!)).toBeGreaterThan(stages.indexOf(alpha.stage!));
    for (const job of [alpha, prod]) {
      const lines = flatLines(job.script);
      const guard = lines.findIndex((l) => l.includes("git ls-remote origin"));
      const up = lines.findIndex((l) => l.startsWith("pulumi up "));
      expect(guard).toBeGreaterThanOrEqual(0);
      expect(up).toBeGreaterThan(guard);
    }
  });
});

describe("what jobs can do", () => {
  const scripts = (name: string) => [...flatLines(resolveJob(ci, name).before_script), ...flatLines(resolveJob(ci, name).script)].join("\n");

  it("preview and plan jobs run no pulumi command that writes state", () => {
    const writes = /\bpulumi\s+(up|update|refresh|destroy|import|cancel|state|stack\s+(rm|import|rename)|config\s+(set|rm))\b/;
    for (const name of jobNames(ci).filter((n) => /^(plan|preview):/.test(n))) {
      expect(scripts(name), name).not.toMatch(writes);
    }
    expect(scripts("preview:prod")).toContain("pulumi preview --diff");
    expect(scripts("plan:prod")).not.toMatch(/\bpulumi\b/);
    expect(jobNames(ci).filter((n) => /\bpulumi up\b/.test(scripts(n))).sort()).toEqual(["up:alpha", "up:prod"]);
  });

  it("preview and plan artifacts are for members only and the preview log does not print the output", () => {
    for (const name of ["plan:prod", "plan:alpha", "preview:prod", "preview:alpha"]) {
      expect(resolveJob(ci, name).artifacts?.access, name).toBe("developer");
    }
    for (const name of ["preview:prod", "preview:alpha"]) {
      expect(scripts(name)).not.toMatch(/\b(cat|tee|head|tail|less|more)\b[^\n]*preview\.txt/);
      expect(scripts(name)).toContain('> preview.txt 2>&1');
    }
  });

  it("the jobs read exactly the variables of the table, and each one reaches the jobs that read it", () => {
    const text = readFileSync(path.join(REPO, ".gitlab-ci.yml"), "utf8");
    for (const gone of ["HCLOUD_TOKEN", "DIGITALOCEAN_TOKEN", "CLOUDFLARE_API_TOKEN"]) expect(text).not.toContain(gone);
    const tableNames = new Set(settings.map((s) => s.name));
    const referenced = new Map<string, Set<string>>();
    for (const name of jobNames(ci)) {
      const job = resolveJob(ci, name);
      const own = new Set([...Object.keys((ci.variables ?? {}) as object), ...Object.keys(job.variables ?? {})]);
      for (const m of scripts(name).matchAll(/\$\{?([A-Z][A-Z0-9_]*)/g)) {
        const v = m[1];
        if (v.startsWith("CI_") || ["PATH", "HOME"].includes(v) || own.has(v)) continue;
        if (!referenced.has(v)) referenced.set(v, new Set());
        referenced.get(v)!.add(name);
      }
    }
    expect([...referenced.keys()].filter((v) => !tableNames.has(v))).toEqual([]);
    for (const s of settings) {
      expect(s.protected, `${s.name}@${s.scope} must be protected`).toBe(true);
      if (s.name !== "PULUMI_BACKEND_URL") expect(s.masked, `${s.name}@${s.scope} must be masked`).toBe(true);
      expect(s.jobs.length, `${s.name}@${s.scope} names the jobs that read it`).toBeGreaterThan(0);
      // Some job it names gets it from GitLab, and each job it names reads it (in its script, or through a reader file).
      const receivers = s.jobs.filter((j) => scopeMatches(s.scope, environmentOf(resolveJob(ci, j))?.name));
      expect(receivers.length, `${s.name}@${s.scope} reaches none of ${s.jobs.join(", ")}`).toBeGreaterThan(0);
      for (const j of s.jobs) {
        const readsItself = referenced.get(s.name)?.has(j) ?? false;
        const readByFile = s.readers.some((f) => readFileSync(path.join(REPO, f), "utf8").includes(s.name));
        expect(readsItself || readByFile, `${j} does not read ${s.name}`).toBe(true);
      }
    }
  });

  it("every claim of docs/pipeline.md names a test that exists", () => {
    const testText = ["test/unit/ci/pipeline-rules.test.ts", "test/unit/ci/pipeline-shell.test.ts", "test/unit/ci/program-inputs.test.ts", "test/unit/ci/gitlab-schema.test.ts", "test/unit/reports/gitlab-ci.test.ts"]
      .map((f) => readFileSync(path.join(REPO, f), "utf8"))
      .join("\n");
    const claims = docClaims();
    expect(claims.length).toBeGreaterThanOrEqual(12);
    for (const { claim, tests } of claims) {
      expect(tests.length, claim).toBeGreaterThan(0);
      for (const t of tests) expect(testText, `${claim} → "${t}"`).toContain(`"${t}"`);
    }
  });
});
