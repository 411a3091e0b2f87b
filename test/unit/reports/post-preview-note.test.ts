import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildNoteBody, GITLAB_NOTE_LIMIT, marker } from "../../../ci/post-preview-note";
import { FakeGitlab, TOKEN } from "../../support/fake-gitlab";

const REPO = path.resolve(__dirname, "../../..");
const SCRIPT = path.join(REPO, "ci/post-preview-note.ts");

function runScript(args: string[], gitlab: FakeGitlab, token = TOKEN): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(path.join(REPO, "node_modules/.bin/tsx"), [SCRIPT, ...args], {
      cwd: REPO,
      env: { PATH: process.env.PATH, CI_API_V4_URL: gitlab.base, CI_PROJECT_ID: "coop/infra", CI_MERGE_REQUEST_IID: "42", GITLAB_NOTES_TOKEN: token, CI_JOB_URL: "https://git.coop/coop/infra/-/jobs/777", CI_COMMIT_SHORT_SHA: "3f2a9c1d" },
    }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }));
  });
}

function previewFile(text: string): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), "preview-")), "preview.txt");
  writeFileSync(file, text);
  return file;
}

const PREVIEW = `Previewing update (prod)\n\n  pulumi:pulumi:Stack: (same)\n    ~ hcloud:index/volume:Volume: (update)\n        [urn=urn:pulumi:prod::socialcoop::socialcoop:host:Host$hcloud:index/volume:Volume::primary-volume]\n      ~ size: 100 => 200\nResources:\n    ~ 1 to update\n    23 unchanged\n`;

let gitlab: FakeGitlab;
beforeEach(async () => {
  gitlab = new FakeGitlab();
  await gitlab.start();
});
afterEach(async () => gitlab.stop());

describe("post-preview-note.ts against a GitLab notes API on loopback", () => {
  it("creates one note the first time and updates that same note the second time", { timeout: 60_000 }, async () => {
    const first = await runScript(["--stack", "prod", "--file", previewFile(PREVIEW), "--exit-code", "0"], gitlab);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const ours = () => gitlab.notes.filter((n) => n.body.startsWith(marker("prod")));
    expect(ours()).toHaveLength(1);
    const id = ours()[0].id;
    expect(ours()[0].body).toContain("~ size: 100 => 200");

    const second = await runScript(["--stack", "prod", "--file", previewFile(PREVIEW.replace("200", "300")), "--exit-code", "1"], gitlab);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain(`updated note ${id}`);
    expect(ours()).toHaveLength(1);
    expect(ours()[0].id).toBe(id);
    expect(ours()[0].body).toContain("~ size: 100 => 300");
    expect(ours()[0].body).toContain("**failed** (exit 1)");
    // The reviewer's note that quotes the marker (not at its start) is left alone.
    expect(gitlab.notes.find((n) => n.id === 9003)?.body).toMatch(/^Quoting the bot/);
    expect(gitlab.calls.filter((c) => c.startsWith("PUT"))).toEqual([`PUT /api/v4/projects/coop%2Finfra/merge_requests/42/notes/${id}`]);
  });

  it("finds its note on a later page of the notes", { timeout: 60_000 }, async () => {
    for (let i = 0; i < 150; i++) gitlab.notes.push({ id: 20_000 + i, body: `comment ${i}`, system: false, author: { username: "ana" } });
    gitlab.notes.push({ id: 30_000, body: `${marker("alpha")}\nold`, system: false, author: { username: "project_1123_bot" } });
    const r = await runScript(["--stack", "alpha", "--file", previewFile(PREVIEW)], gitlab);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("updated note 30000");
    expect(gitlab.calls.filter((c) => c.startsWith("GET")).map((c) => new URL(c.split(" ")[1], "http://x").searchParams.get("page"))).toEqual(["1", "2"]);
  });

  it("keeps one note per stack: prod and alpha do not overwrite each other", { timeout: 60_000 }, async () => {
    await runScript(["--stack", "prod", "--file", previewFile(PREVIEW)], gitlab);
    await runScript(["--stack", "alpha", "--file", previewFile(PREVIEW)], gitlab);
    expect(gitlab.notes.filter((n) => n.body.startsWith("<!-- coopctl-preview:")).map((n) => n.body.split("\n")[0])).toEqual([marker("prod"), marker("alpha")]);
  });

  it("truncates a 3 MB diff below GitLab's 1,000,000-character limit with a clear marker, keeping the summary", { timeout: 60_000 }, async () => {
    const huge = "  ~ line of a very long diff that repeats\n".repeat(75_000) + "Resources:\n    ~ 75000 to update\n";
    expect(huge.length).toBeGreaterThan(3_000_000);
    const r = await runScript(["--stack", "prod", "--file", previewFile(huge)], gitlab);
    expect(r.code).toBe(0);
    const body = gitlab.notes.find((n) => n.body.startsWith(marker("prod")))!.body;
    expect(body.length).toBeLessThanOrEqual(GITLAB_NOTE_LIMIT);
    expect(body.length).toBeGreaterThan(GITLAB_NOTE_LIMIT - 1_000);
    expect(body).toMatch(/… [\d,]+ characters omitted: GitLab notes hold at most 1,000,000 characters; the full output is in the job log https:\/\/git\.coop\/coop\/infra\/-\/jobs\/777 …/);
    expect(body).toContain("~ 75000 to update");
  });

  it("never prints the token, also when GitLab fails", { timeout: 60_000 }, async () => {
    const ok = await runScript(["--stack", "prod", "--file", previewFile(PREVIEW)], gitlab);
    gitlab.failWith = 500;
    const failed = await runScript(["--stack", "prod", "--file", previewFile(PREVIEW)], gitlab);
    const refused = await runScript(["--stack", "prod", "--file", previewFile(PREVIEW)], gitlab, `${TOKEN}-wrong`);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain("HTTP 500");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("GITLAB_NOTES_TOKEN holds an unexpired token with the api scope");
    for (const r of [ok, failed, refused]) expect(r.stdout + r.stderr).not.toContain("Sup3rSecret");
  });
});

describe("note body", () => {
  it("uses a fence longer than any backtick run in the output, so the output cannot close it", () => {
    const body = buildNoteBody({ stack: "prod", output: "a ``` b ```` c", exitCode: 0 });
    expect(body).toContain("`````diff\na ``` b ```` c\n`````");
  });

  it("strips terminal colour codes", () => {
    expect(buildNoteBody({ stack: "prod", output: "\x1b[32m+ create\x1b[0m", exitCode: 0 })).toContain("\n+ create\n");
  });
});
