// The two tables of docs/pipeline.md the tests read: the CI/CD variables, and the claims with their tests.
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import type { CiFile, VariableSetting } from "./gitlab-rules";

export const REPO = path.resolve(__dirname, "../../..");
export const PIPELINE_DOC = path.join(REPO, "docs/pipeline.md");

export function loadCi(): CiFile {
  return parse(readFileSync(path.join(REPO, ".gitlab-ci.yml"), "utf8")) as CiFile;
}

/** Markdown tables of a document, each as rows of header → cell. */
export function markdownTables(text: string): Array<Array<Record<string, string>>> {
  const tables: Array<Array<Record<string, string>>> = [];
  const lines = text.split("\n");
  const cells = (line: string) => line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => c.trim());
  for (let i = 0; i + 1 < lines.length; i++) {
    if (!lines[i].trim().startsWith("|") || !/^\|\s*-/.test(lines[i + 1].trim())) continue;
    const header = cells(lines[i]);
    const rows: Array<Record<string, string>> = [];
    let j = i + 2;
    for (; j < lines.length && lines[j].trim().startsWith("|"); j++) {
      const row = cells(lines[j]);
      rows.push(Object.fromEntries(header.map((h, k) => [h, row[k] ?? ""])));
    }
    tables.push(rows);
    i = j;
  }
  return tables;
}

/** `a`, `b` → ["a", "b"]: the code spans of a cell. */
export function codeSpans(cell: string): string[] {
  return [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
}

export interface DocVariable extends VariableSetting {
  readonly masked: boolean;
  /** Jobs named in "Read by". */
  readonly jobs: readonly string[];
  /** Files named in "Read by" (after "via"): the programs that read the variable themselves. */
  readonly readers: readonly string[];
}

/** The CI/CD variables table, one entry per variable and scope (as GitLab stores them). */
export function docVariables(text = readFileSync(PIPELINE_DOC, "utf8")): DocVariable[] {
  const table = markdownTables(text).find((t) => t.length > 0 && "Variable" in t[0] && "Environment scope" in t[0]);
  if (!table) throw new Error("docs/pipeline.md has no CI/CD variables table (Variable | Environment scope | ...)");
  return table.flatMap((row) => {
    const spans = codeSpans(row["Read by"]);
    const jobs = spans.filter((s) => !s.includes("/"));
    const readers = spans.filter((s) => s.includes("/"));
    return codeSpans(row.Variable).flatMap((name) =>
      codeSpans(row["Environment scope"]).map((scope) => ({
        name, scope, protected: row.Protected === "yes", masked: row.Masked === "yes", jobs, readers,
      })),
    );
  });
}

/** Every claims table (those with a Test column): claim → the test names it cites. */
export function docClaims(text = readFileSync(PIPELINE_DOC, "utf8")): Array<{ claim: string; tests: string[] }> {
  return markdownTables(text)
    .filter((t) => t.length > 0 && "Claim" in t[0] && "Test" in t[0])
    .flat()
    .map((row) => ({ claim: row.Claim, tests: [...row.Test.matchAll(/"([^"]+)"/g)].map((m) => m[1]) }));
}
