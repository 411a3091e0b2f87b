// The shell that .gitlab-ci.yml runs before `pulumi`, run here as the runner would (bash -e), with the
// variables GitLab would set, against real git repositories and stack files in a temp folder.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { flatLines, resolveJob } from "./gitlab-rules";
import { loadCi } from "./pipeline-doc";

const ci = loadCi();
const temps: string[] = [];
const tempDir = (prefix: string) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  temps.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

/** A hidden key's script lines (a YAML anchor used in the jobs). */
function snippet(key: string): string {
  return flatLines(ci[key] as string[]).join("\n");
}

function run(script: string, cwd: string, env: Record<string, string>): { code: number; out: string } {
  const r = spawnSync("bash", ["-e", "-o", "pipefail", "-c", script], { cwd, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: cwd, ...env }, encoding: "utf8" });
  return { code: r.status ?? 1, out: `${r.stdout}${r.stderr}` };
}

const git = (cwd: string, ...args: string[]) => execFileSync("git", args, { cwd, encoding: "utf8", env: { ...process.env, GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.org", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.org" } }).trim();

describe("newest-commit check", () => {
  it("the deploy jobs run it before pulumi up", () => {
    const guard = snippet(".newest-commit");
    for (const name of ["up:alpha", "up:prod"]) expect(flatLines(resolveJob(ci, name).script)[0]).toBe(guard);
  });

  it("the newest-commit check deploys the tip of main and refuses an older commit", () => {
    const origin = tempDir("origin-");
    git(origin, "init", "--quiet", "--bare", "--initial-branch=main");
    const work = tempDir("work-");
    git(work, "init", "--quiet", "--initial-branch=main");
    git(work, "remote", "add", "origin", origin);
    writeFileSync(path.join(work, "index.ts"), "// 1\n");
    git(work, "add", "index.ts");
    git(work, "commit", "--quiet", "-m", "one");
    const older = git(work, "rev-parse", "HEAD");
    git(work, "push", "--quiet", "origin", "main");
    writeFileSync(path.join(work, "index.ts"), "// 2\n");
    git(work, "commit", "--quiet", "-am", "two");
    const newer = git(work, "rev-parse", "HEAD");
    git(work, "push", "--quiet", "origin", "main");
    // The runner checks out the pipeline's commit, detached.
    git(work, "checkout", "--quiet", older);

    const env = { CI_DEFAULT_BRANCH: "main", STACK: "prod" };
    const old = run(snippet(".newest-commit"), work, { ...env, CI_COMMIT_SHA: older });
    expect(old.code).toBe(1);
    expect(old.out).toContain(`refusing to deploy ${older} to prod: main is at ${newer}`);

    git(work, "checkout", "--quiet", newer);
    expect(run(snippet(".newest-commit"), work, { ...env, CI_COMMIT_SHA: newer })).toEqual({ code: 0, out: "" });

    // No answer from the remote is a refusal too, not a pass.
    git(work, "remote", "set-url", "origin", path.join(origin, "missing"));
    const unreachable = run(snippet(".newest-commit"), work, { ...env, CI_COMMIT_SHA: newer });
    expect(unreachable.code).not.toBe(0);
  });
});

describe("backend check", () => {
  const check = () => snippet(".backend-check");
  const stackDir = (salt: boolean) => {
    const dir = tempDir("stack-");
    writeFileSync(path.join(dir, "Pulumi.prod.yaml"), `${salt ? "encryptionsalt: v1:c2FsdA==:v1:AAAA:BBBB\n" : ""}config:\n  socialcoop:stackRole: prod\n`);
    return dir;
  };

  it("every job that runs pulumi runs it first", () => {
    for (const name of ["preview:prod", "preview:alpha", "up:alpha", "up:prod"]) {
      const before = flatLines(resolveJob(ci, name).before_script);
      expect(before[before.length - 1], name).toBe(check());
      expect(before.findIndex((l) => l.includes("get.pulumi.com")), name).toBeLessThan(before.length - 1);
    }
  });

  it("the backend check accepts Pulumi Cloud or a complete self-managed backend and refuses the rest", () => {
    const base = { STACK: "prod", CI_ENVIRONMENT_NAME: "prod" };
    const cloud = run(check(), stackDir(false), { ...base, PULUMI_ACCESS_TOKEN: "pul-xyz" });
    expect(cloud).toEqual({ code: 0, out: "state: Pulumi Cloud\n" });

    const selfManaged = { ...base, PULUMI_BACKEND_URL: "s3://state?endpoint=fsn1.example.org", PULUMI_CONFIG_PASSPHRASE: "p", AWS_ACCESS_KEY_ID: "k", AWS_SECRET_ACCESS_KEY: "s" };
    expect(run(check(), stackDir(true), selfManaged)).toEqual({ code: 0, out: "state: self-managed backend, passphrase secrets\n" });
    expect(run(check(), stackDir(true), { ...selfManaged, PULUMI_BACKEND_URL: "file:///srv/state", AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" }).code).toBe(0);

    const noSalt = run(check(), stackDir(false), selfManaged);
    expect(noSalt.code).toBe(1);
    expect(noSalt.out).toContain("Pulumi.prod.yaml has no encryptionsalt");
    const noPassphrase = run(check(), stackDir(true), { ...selfManaged, PULUMI_CONFIG_PASSPHRASE: "" });
    expect(noPassphrase.code).toBe(1);
    expect(noPassphrase.out).toContain("PULUMI_CONFIG_PASSPHRASE is not available to environment prod");
    const noBucketKey = run(check(), stackDir(true), { ...selfManaged, AWS_SECRET_ACCESS_KEY: "" });
    expect(noBucketKey.code).toBe(1);
    expect(noBucketKey.out).toContain("needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    // What an unprotected pipeline sees: nothing.
    const nothing = run(check(), stackDir(true), base);
    expect(nothing.code).toBe(1);
    expect(nothing.out).toContain("neither PULUMI_ACCESS_TOKEN (Pulumi Cloud) nor PULUMI_BACKEND_URL (self-managed)");
    for (const r of [cloud, noSalt, noPassphrase, noBucketKey]) expect(r.out).not.toMatch(/pul-xyz|=p\b/);
  });
});

describe("preview note target", () => {
  it("on preview/N the note goes to merge request N", () => {
    const line = flatLines(resolveJob(ci, "preview:prod").script).find((l) => l.includes("CI_MERGE_REQUEST_IID="));
    expect(line).toBeDefined();
    const show = `${line}\nprintf '%s' "$CI_MERGE_REQUEST_IID"`;
    const dir = tempDir("note-");
    expect(run(show, dir, { CI_COMMIT_BRANCH: "preview/42" }).out).toBe("42");
    // In a merge-request pipeline GitLab sets the IID (and no CI_COMMIT_BRANCH).
    expect(run(show, dir, { CI_MERGE_REQUEST_IID: "7" }).out).toBe("7");
  });
});
