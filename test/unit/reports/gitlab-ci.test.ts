import { readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

interface Rule { if?: string; changes?: string[]; when?: string; allow_failure?: boolean }
interface Job { extends?: string; stage?: string; rules?: Rule[]; script?: string[]; variables?: Record<string, string>; resource_group?: string }

const ci = parse(readFileSync(path.resolve(__dirname, "../../../.gitlab-ci.yml"), "utf8")) as Record<string, Job> & { stages: string[] };
const script = (job: Job): string[] => [...(job.extends ? script(ci[job.extends]) : []), ...(job.script ?? [])];

describe(".gitlab-ci.yml", () => {
  for (const stack of ["prod", "alpha"]) {
    it(`preview:${stack} runs only on merge_request_event and only when ${stack}'s files change`, () => {
      const job = ci[`preview:${stack}`];
      expect(job.rules).toHaveLength(1);
      expect(job.rules![0].if).toBe('$CI_PIPELINE_SOURCE == "merge_request_event"');
      expect(job.rules![0].changes).toEqual([`Pulumi.${stack}.yaml`, "index.ts", "config.ts", "components/**/*", "scripts/**/*", "cloud-init/**/*"]);
      expect(job.variables?.STACK).toBe(stack);
      const lines = script(job).join("\n");
      expect(lines).toContain('pulumi preview --diff --color never --non-interactive --stack "$STACK"');
      expect(lines).toContain('npx tsx scripts/ci/post-preview-note.ts --stack "$STACK" --file preview.txt --exit-code "$status"');
    });
  }

  it("up:alpha runs automatically on pushes to the default branch", () => {
    const rules = ci["up:alpha"].rules!;
    expect(rules).toEqual([{ if: '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE == "push"' }]);
    expect(script(ci["up:alpha"]).join("\n")).toContain("pulumi up --yes --diff --color never --non-interactive --stack alpha");
  });

  it("up:prod is manual and only on the default branch", () => {
    const rules = ci["up:prod"].rules!;
    expect(rules).toHaveLength(1);
    expect(rules[0]).toMatchObject({ if: '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE == "push"', when: "manual" });
    expect(script(ci["up:prod"]).join("\n")).toContain("--stack prod");
  });

  it("the two stacks deploy in separate resource groups so runs of one stack never overlap", () => {
    expect([ci["up:alpha"].resource_group, ci["up:prod"].resource_group]).toEqual(["stack-alpha", "stack-prod"]);
  });

  it("behind:weekly runs only from a schedule and runs coopctl behind", () => {
    expect(ci["behind:weekly"].rules).toEqual([{ if: '$CI_PIPELINE_SOURCE == "schedule" && $COOPCTL_REPORT == "behind"' }]);
    expect(script(ci["behind:weekly"]).some((l) => /coopctl\.mjs behind --stack prod$/.test(l))).toBe(true);
  });

  it("no deploy or preview job can run from a schedule", () => {
    for (const name of ["preview:prod", "preview:alpha", "up:alpha", "up:prod"]) {
      for (const rule of ci[name].rules!) expect(rule.if).not.toContain('"schedule"');
    }
  });

  it("every job's stage is declared", () => {
    for (const [name, job] of Object.entries(ci)) {
      if (name.startsWith(".") || typeof job !== "object" || !("script" in job)) continue;
      expect(ci.stages).toContain(job.stage);
    }
  });
});
