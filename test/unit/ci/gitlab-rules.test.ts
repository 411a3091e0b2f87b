// The rules model itself, on the cases GitLab's documentation gives, so the pipeline tests rest on it safely.
import { describe, expect, it } from "vitest";
import { evaluateIf, evaluatePipeline, matchesGlob, resolveJob, scopeMatches } from "./gitlab-rules";

describe("rules:if", () => {
  const vars = { CI_PIPELINE_SOURCE: "push", CI_COMMIT_BRANCH: "preview/42", CI_DEFAULT_BRANCH: "main", EMPTY: "", PATTERN: "/^preview\\//" };

  it("compares strings and variables, and treats an undefined variable as null", () => {
    expect(evaluateIf('$CI_PIPELINE_SOURCE == "push"', vars)).toBe(true);
    expect(evaluateIf("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", vars)).toBe(false);
    expect(evaluateIf("$UNDEFINED == null", vars)).toBe(true);
    expect(evaluateIf('$UNDEFINED != "x"', vars)).toBe(true);
    expect(evaluateIf("$UNDEFINED == $ALSO_UNDEFINED", vars)).toBe(true);
  });

  it("a lone variable is true only when defined and not empty", () => {
    expect(evaluateIf("$CI_COMMIT_BRANCH", vars)).toBe(true);
    expect(evaluateIf("$EMPTY", vars)).toBe(false);
    expect(evaluateIf("$UNDEFINED", vars)).toBe(false);
  });

  it("matches regular expressions, also from a variable, and never matches an undefined variable", () => {
    expect(evaluateIf("$CI_COMMIT_BRANCH =~ /^preview\\/[0-9]+$/", vars)).toBe(true);
    expect(evaluateIf("$CI_COMMIT_BRANCH =~ /^PREVIEW/i", vars)).toBe(true);
    expect(evaluateIf("$CI_COMMIT_BRANCH =~ $PATTERN", vars)).toBe(true);
    expect(evaluateIf("$UNDEFINED =~ /.*/", vars)).toBe(false);
    expect(evaluateIf("$CI_COMMIT_BRANCH !~ /^main$/", vars)).toBe(true);
  });

  it("&& binds tighter than ||, and parentheses group", () => {
    expect(evaluateIf('$EMPTY || $CI_COMMIT_BRANCH && $CI_PIPELINE_SOURCE == "push"', vars)).toBe(true);
    expect(evaluateIf('$CI_COMMIT_BRANCH || $UNDEFINED && $EMPTY', vars)).toBe(true);
    expect(evaluateIf('($CI_COMMIT_BRANCH || $UNDEFINED) && $EMPTY', vars)).toBe(false);
  });
});

describe("rules:changes globs (File.fnmatch with FNM_PATHNAME | FNM_DOTMATCH | FNM_EXTGLOB)", () => {
  it("* stays within a folder, **/ crosses any number of them", () => {
    expect(matchesGlob("releases/*.json", "releases/mastodon.json")).toBe(true);
    expect(matchesGlob("releases/*.json", "releases/old/mastodon.json")).toBe(false);
    expect(matchesGlob("components/**/*", "components/host.ts")).toBe(true);
    expect(matchesGlob("components/**/*", "components/lib/script.ts")).toBe(true);
    expect(matchesGlob("components/**/*", "components")).toBe(false);
    expect(matchesGlob("*.yaml", "Pulumi.prod.yaml")).toBe(true);
    expect(matchesGlob("*.yaml", "docs/x.yaml")).toBe(false);
    expect(matchesGlob("scripts/**/*", "scripts/.hidden")).toBe(true);
    expect(matchesGlob("Pulumi.{prod,alpha}.yaml", "Pulumi.alpha.yaml")).toBe(true);
    expect(matchesGlob("Pulumi.{prod,alpha}.yaml", "Pulumi.town.yaml")).toBe(false);
  });
});

describe("pipelines", () => {
  const ci = {
    workflow: { rules: [{ if: '$CI_PIPELINE_SOURCE == "merge_request_event"' }, { if: "$CI_COMMIT_BRANCH", when: "never" }] },
    stages: ["test", "deploy"],
    ".base": { stage: "test", variables: { A: "1" }, artifacts: { paths: ["a"], when: "always" } },
    docs: { extends: ".base", script: ["x"], rules: [{ if: "$X", changes: ["docs/**/*"] }, { if: "$Y", when: "manual" }] },
    late: { stage: "deploy", script: ["x"], needs: ["docs"] },
  };

  it("the first matching rule decides, a job whose rules match nothing is left out, changes need a change", () => {
    const mr = { CI_PIPELINE_SOURCE: "merge_request_event" };
    expect(evaluatePipeline(ci, { vars: { ...mr, X: "1" }, changed: ["docs/a.md"] }).jobs.get("docs")?.when).toBe("on_success");
    expect(evaluatePipeline(ci, { vars: { ...mr, X: "1", Y: "1" }, changed: ["index.ts"] }).jobs.get("docs")?.when).toBe("manual");
    const none = evaluatePipeline(ci, { vars: { ...mr, X: "1" }, changed: ["index.ts"] });
    expect(none.jobs.has("docs")).toBe(false);
    expect(none.errors).toEqual(["late: needs docs, which is not in this pipeline"]);
    expect(evaluatePipeline(ci, { vars: { CI_PIPELINE_SOURCE: "push", CI_COMMIT_BRANCH: "main" } }).created).toBe(false);
  });

  it("changes is always true where there is no push to diff", () => {
    const web = { ...ci, workflow: undefined };
    expect(evaluatePipeline(web, { vars: { CI_PIPELINE_SOURCE: "web", X: "1" }, changed: [] }).jobs.has("docs")).toBe(true);
    expect(evaluatePipeline(web, { vars: { CI_PIPELINE_SOURCE: "push", X: "1" }, changed: [], newBranch: true }).jobs.has("docs")).toBe(true);
  });

  it("extends deep-merges hashes and replaces arrays", () => {
    const job = resolveJob({ ...ci, over: { extends: "docs", variables: { B: "2" }, artifacts: { paths: ["b"] } } }, "over");
    expect(job.variables).toEqual({ A: "1", B: "2" });
    expect(job.artifacts).toEqual({ paths: ["b"], when: "always" });
    expect(job.stage).toBe("test");
  });

  it("environment scopes match by wildcard, and * matches a job without an environment", () => {
    expect(scopeMatches("preview/*", "preview/prod")).toBe(true);
    expect(scopeMatches("preview/*", "prod")).toBe(false);
    expect(scopeMatches("prod", "preview/prod")).toBe(false);
    expect(scopeMatches("*", undefined)).toBe(true);
    expect(scopeMatches("prod", undefined)).toBe(false);
  });
});
