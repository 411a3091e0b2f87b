/**
 * Posts `pulumi preview --diff` output as one merge-request note per stack, updating that note on every
 * pipeline instead of adding another. Run in CI as
 *   npx tsx ci/post-preview-note.ts --stack prod --file preview.txt --exit-code 0
 * Environment: CI_API_V4_URL, CI_PROJECT_ID, CI_MERGE_REQUEST_IID (set by GitLab for merge-request
 * pipelines), GITLAB_NOTES_TOKEN (a masked project access token with the `api` scope, Reporter role);
 * optional CI_JOB_URL and CI_COMMIT_SHORT_SHA for the note's header. The token is sent only in the
 * PRIVATE-TOKEN header and never printed.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

/** GitLab rejects notes longer than 1,000,000 characters. */
export const GITLAB_NOTE_LIMIT = 1_000_000;

export function marker(stack: string): string {
  return `<!-- coopctl-preview:${stack} -->`;
}

export interface NoteInput {
  readonly stack: string;
  readonly output: string;
  readonly exitCode: number;
  readonly jobUrl?: string;
  readonly commit?: string;
  /** Lower in tests to exercise truncation without megabytes of text. */
  readonly limit?: number;
}

// pulumi colours its output unless told not to; escape codes would show up as garbage in the note.
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]/g;

/** The note's Markdown: marker, a one-line verdict, the diff in a fence no line of it can close. */
export function buildNoteBody(input: NoteInput): string {
  const limit = input.limit ?? GITLAB_NOTE_LIMIT;
  const output = input.output.replace(ANSI, "").replace(/\r\n/g, "\n");
  const longestTicks = Math.max(2, ...[...output.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = "`".repeat(longestTicks + 1);
  const verdict = input.exitCode === 0 ? "succeeded" : `**failed** (exit ${input.exitCode})`;
  const head = [
    marker(input.stack),
    `#### \`pulumi preview --diff --stack ${input.stack}\` ${verdict}`,
    [input.commit ? `commit ${input.commit}` : null, input.jobUrl ? `[job log](${input.jobUrl})` : null].filter(Boolean).join(" · "),
    "",
    "<details open><summary>preview output</summary>",
    "",
    `${fence}diff`,
  ].join("\n");
  const tail = `\n${fence}\n\n</details>\n`;
  const room = limit - head.length - tail.length - 1;
  return `${head}\n${truncateMiddle(output, room, input.jobUrl)}${tail}`;
}

/**
 * Keeps the start (the resource diffs) and the end (pulumi's summary and any error) and says how much
 * was cut; the full output stays in the job log.
 */
export function truncateMiddle(text: string, room: number, jobUrl?: string): string {
  if (text.length <= room) return text;
  const omitted = (n: number) => `\n… ${n.toLocaleString("en-US")} characters omitted: GitLab notes hold at most ${GITLAB_NOTE_LIMIT.toLocaleString("en-US")} characters; the full output is in the job log${jobUrl ? ` ${jobUrl}` : ""} …\n`;
  const markerRoom = omitted(text.length).length;
  const keep = Math.max(0, room - markerRoom);
  const tailLen = Math.min(Math.floor(keep / 4), 20_000);
  const headLen = keep - tailLen;
  return text.slice(0, headLen) + omitted(text.length - headLen - tailLen) + text.slice(text.length - tailLen);
}

export interface GitlabTarget {
  readonly apiUrl: string;
  readonly projectId: string;
  readonly mrIid: string;
  readonly token: string;
}

interface Note {
  readonly id: number;
  readonly body: string;
  readonly system?: boolean;
}

async function gitlab(target: GitlabTarget, method: string, path: string, body?: unknown): Promise<Response> {
  const url = `${target.apiUrl.replace(/\/+$/, "")}/projects/${encodeURIComponent(target.projectId)}/merge_requests/${encodeURIComponent(target.mrIid)}${path}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { "PRIVATE-TOKEN": target.token, "Content-Type": "application/json", Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err instanceof Error ? err.message : String(err));
    throw new Error(`${method} ${url}: could not reach GitLab (${cause}); check CI_API_V4_URL`);
  }
  if (!res.ok) {
    const hint = res.status === 401 || res.status === 403
      ? "check that the masked variable GITLAB_NOTES_TOKEN holds an unexpired token with the api scope"
      : "the response is quoted above";
    const text = (await res.text()).slice(0, 300);
    throw new Error(`${method} ${url}: HTTP ${res.status} ${text}; ${hint}`);
  }
  return res;
}

/** Our note for `stack`, searched through every page of the merge request's notes. */
export async function findPreviewNote(target: GitlabTarget, stack: string): Promise<Note | null> {
  const tag = marker(stack);
  for (let page: string | null = "1"; page;) {
    const res = await gitlab(target, "GET", `/notes?per_page=100&sort=asc&order_by=created_at&page=${page}`);
    const notes = (await res.json()) as Note[];
    // Only a note that starts with the marker is ours: a reviewer quoting the marker must not be overwritten.
    const found = notes.find((n) => !n.system && n.body.startsWith(tag));
    if (found) return found;
    page = res.headers.get("x-next-page") || null;
  }
  return null;
}

export async function upsertPreviewNote(target: GitlabTarget, stack: string, body: string): Promise<{ action: "created" | "updated"; id: number }> {
  const existing = await findPreviewNote(target, stack);
  if (existing) {
    await gitlab(target, "PUT", `/notes/${existing.id}`, { body });
    return { action: "updated", id: existing.id };
  }
  const res = await gitlab(target, "POST", "/notes", { body });
  const created = (await res.json()) as Note;
  return { action: "created", id: created.id };
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let values: { stack?: string; file?: string; "exit-code"?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { stack: { type: "string" }, file: { type: "string" }, "exit-code": { type: "string", default: "0" } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    console.error(`post-preview-note: ${err instanceof Error ? err.message : String(err)}\nusage: post-preview-note.ts --stack STACK --file OUTPUT [--exit-code N]`);
    return 2;
  }
  const missing = ["CI_API_V4_URL", "CI_PROJECT_ID", "CI_MERGE_REQUEST_IID", "GITLAB_NOTES_TOKEN"].filter((k) => !env[k]);
  if (!values.stack || !values.file || missing.length > 0) {
    console.error(`post-preview-note: need --stack and --file${missing.length ? ` and the variables ${missing.join(", ")} (a merge-request pipeline sets the CI_ ones; GITLAB_NOTES_TOKEN is a masked CI/CD variable)` : ""}`);
    return 2;
  }
  const output = readFileSync(values.file, "utf8");
  const body = buildNoteBody({
    stack: values.stack, output, exitCode: Number(values["exit-code"]), jobUrl: env.CI_JOB_URL, commit: env.CI_COMMIT_SHORT_SHA,
  });
  const target = { apiUrl: env.CI_API_V4_URL as string, projectId: env.CI_PROJECT_ID as string, mrIid: env.CI_MERGE_REQUEST_IID as string, token: env.GITLAB_NOTES_TOKEN as string };
  try {
    const { action, id } = await upsertPreviewNote(target, values.stack, body);
    console.log(`post-preview-note: ${action} note ${id} on !${target.mrIid} for stack ${values.stack} (${body.length} characters)`);
    return 0;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // Belt and braces: GitLab echoes nothing secret, but a proxy's error page might.
    console.error(`post-preview-note: ${message.split(target.token).join("[masked]")}`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
