// The jobs of .gitlab-ci.yml and their rules, as written; test/unit/ci/ evaluates them as GitLab does.
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { flatLines, jobNames, resolveJob, type CiFile, type Rule } from "../ci/gitlab-rules";

const REPO = path.resolve(__dirname, "../../..");
const ci = parse(readFileSync(path.join(REPO, ".gitlab-ci.yml"), "utf8")) as CiFile;
const script = (name: string): string => [...flatLines(resolveJob(ci, name).before_script), ...flatLines(resolveJob(ci, name).script)].join("\n");
const rules = (name: string): readonly Rule[] => resolveJob(ci, name).rules ?? [];

const MR = '$CI_PIPELINE_SOURCE == "merge_request_event"';
const PROTECTED_MR = `${MR} && $CI_COMMIT_REF_PROTECTED == "true" && $CI_MERGE_REQUEST_SOURCE_PROJECT_ID == $CI_PROJECT_ID`;
const PREVIEW_BRANCH = '$CI_COMMIT_BRANCH =~ /^preview\\/[0-9]+$/ && $CI_COMMIT_REF_PROTECTED == "true"';
const MAIN_PUSH = '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE == "push"';

describe(".gitlab-ci.yml", () => {
  it("has exactly the jobs of the pipeline", () => {
    expect(jobNames(ci).sort()).toEqual(["behind:weekly", "plan:alpha", "plan:prod", "preview:alpha", "preview:prod", "unit-tests", "up:alpha", "up:prod"]);
  });

  it("workflow runs merge requests, schedules, the default branch and protected preview/N branches", () => {
    expect((ci.workflow as { rules: Rule[] }).rules).toEqual([
      { if: MR },
      { if: "$CI_COMMIT_BRANCH && $CI_OPEN_MERGE_REQUESTS", when: "never" },
      { if: '$CI_PIPELINE_SOURCE == "schedule"' },
      { if: "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" },
      { if: PREVIEW_BRANCH },
    ]);
  });

  for (const stack of ["prod", "alpha"]) {
    it(`plan:${stack} runs on every merge request that changes ${stack}'s files, offline`, () => {
      const r = rules(`plan:${stack}`);
      expect(r).toHaveLength(1);
      expect(r[0].if).toBe(MR);
      expect(r[0].changes).toContain(`Pulumi.${stack}.yaml`);
      expect(resolveJob(ci, `plan:${stack}`).variables?.STACK).toBe(stack);
      expect(resolveJob(ci, `plan:${stack}`).environment).toBeUndefined();
      expect(script(`plan:${stack}`)).toContain('node bin/coopctl.mjs plan --stack "$STACK"');
    });

    it(`preview:${stack} runs only in protected pipelines and only when ${stack}'s files change`, () => {
      const job = resolveJob(ci, `preview:${stack}`);
      const r = rules(`preview:${stack}`);
      expect(r.map((x) => x.if)).toEqual([PROTECTED_MR, PREVIEW_BRANCH]);
      expect(r[0].changes).toEqual(rules(`plan:${stack}`)[0].changes);
      expect(r[1].changes).toEqual({ paths: rules(`plan:${stack}`)[0].changes, compare_to: "refs/heads/main" });
      expect(job.variables?.STACK).toBe(stack);
      expect(job.environment).toEqual({ name: `preview/${stack}`, action: "prepare" });
      const lines = script(`preview:${stack}`);
      expect(lines).toContain('pulumi preview --diff --color never --non-interactive --stack "$STACK"');
      expect(lines).toContain('npx tsx ci/post-preview-note.ts --stack "$STACK" --file preview.txt --exit-code "$status"');
    });
  }

  it("up:alpha runs automatically on pushes to the default branch, after the unit tests", () => {
    expect(rules("up:alpha")).toEqual([{ if: MAIN_PUSH }]);
    expect(resolveJob(ci, "up:alpha").needs).toEqual(["unit-tests"]);
    expect(script("up:alpha")).toContain('pulumi up --yes --diff --color never --non-interactive --stack "$STACK"');
    expect(resolveJob(ci, "up:alpha").variables?.STACK).toBe("alpha");
  });

  it("up:prod is manual, only on the default branch, and needs up:alpha", () => {
    expect(rules("up:prod")).toEqual([{ if: MAIN_PUSH, when: "manual", allow_failure: false }]);
    expect(resolveJob(ci, "up:prod").needs).toEqual(["up:alpha"]);
    expect(resolveJob(ci, "up:prod").variables?.STACK).toBe("prod");
  });

  it("the two stacks deploy in separate resource groups so runs of one stack never overlap", () => {
    expect([resolveJob(ci, "up:alpha").resource_group, resolveJob(ci, "up:prod").resource_group]).toEqual(["stack-alpha", "stack-prod"]);
  });

  it("behind:weekly runs only from a schedule and runs coopctl behind", () => {
    expect(rules("behind:weekly")).toEqual([{ if: '$CI_PIPELINE_SOURCE == "schedule" && $COOPCTL_REPORT == "behind"' }]);
    expect(script("behind:weekly").split("\n").some((l) => /coopctl\.mjs behind --stack prod$/.test(l))).toBe(true);
  });

  it("no deploy or preview job can run from a schedule", () => {
    for (const name of ["plan:prod", "plan:alpha", "preview:prod", "preview:alpha", "up:alpha", "up:prod"]) {
      for (const rule of rules(name)) expect(rule.if).not.toContain('"schedule"');
    }
  });

  it("every job's stage is declared", () => {
    for (const name of jobNames(ci)) expect(ci.stages as string[]).toContain(resolveJob(ci, name).stage);
  });

  it("runs on a maintained Node.js that package.json's engines allows", () => {
    const image = (ci.default as { image: string }).image;
    const major = Number(/^node:(\d+)(-|$)/.exec(image)?.[1]);
    // Node 20 reached its end of life in April 2026.
    expect(major).toBeGreaterThanOrEqual(22);
    const engines = (JSON.parse(readFileSync(path.join(REPO, "package.json"), "utf8")) as { engines: { node: string } }).engines.node;
    expect(Number(/^>=\s*(\d+)$/.exec(engines)?.[1])).toBeLessThanOrEqual(major);
    for (const name of jobNames(ci)) expect(resolveJob(ci, name).image ?? image, name).toBe(image);
  });
});
