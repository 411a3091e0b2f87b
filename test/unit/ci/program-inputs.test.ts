// The `changes` of the plan and preview jobs against the files the program reads, derived from the program.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { changePaths, matchesGlob, resolveJob } from "./gitlab-rules";
import { REPO, loadCi } from "./pipeline-doc";
import { programInputs, repoFiles } from "./program-inputs";

const ci = loadCi();
const STACKS = ["prod", "alpha"] as const;

/** Files of `expected` that no pattern matches, and patterns that match none of `expected`. */
export function coverage(patterns: readonly string[], expected: readonly string[]): { missing: string[]; unused: string[] } {
  return {
    missing: expected.filter((f) => !patterns.some((p) => matchesGlob(p, f))),
    unused: patterns.filter((p) => !expected.some((f) => matchesGlob(p, f))),
  };
}

/** The change patterns of every rule of a job (each rule must list the same ones). */
function jobChanges(name: string): string[][] {
  return (resolveJob(ci, name).rules ?? []).map((r) => [...(changePaths(r) ?? [])]);
}

describe("rules:changes of the plan and preview jobs", () => {
  const inputs = programInputs(REPO);

  it("the program's reads all resolve to files in the repository", () => {
    expect(inputs.unresolved).toEqual([]);
  });

  it("the changes of each stack cover every file the program reads, and nothing else", () => {
    for (const stack of STACKS) {
      const expected = [...inputs.files, `Pulumi.${stack}.yaml`];
      for (const job of [`plan:${stack}`, `preview:${stack}`]) {
        const lists = jobChanges(job);
        expect(lists.length, job).toBeGreaterThan(0);
        for (const patterns of lists) {
          const { missing, unused } = coverage(patterns, expected);
          expect(missing.map((f) => `${f} (${inputs.why.get(f) ?? "the stack's config"})`), `${job}: files the program reads but changes leaves out`).toEqual([]);
          expect(unused, `${job}: entries that match no file the program reads`).toEqual([]);
          const other = STACKS.find((s) => s !== stack);
          expect(patterns.some((p) => matchesGlob(p, `Pulumi.${other}.yaml`)), `${job} must not run for Pulumi.${other}.yaml`).toBe(false);
        }
      }
    }
  });

  it("the derived inputs are what the program is known to read, and not docs, tests (but the fixture app local stacks deploy) or the CLI", () => {
    for (const f of [
      "Pulumi.yaml", "package.json", "package-lock.json", "tsconfig.json", "index.ts", "config.ts",
      "src/config/schema.ts", "src/upgrade/path.ts", "src/upgrade/catalog.ts", "src/ssh/openssh-key.ts",
      "releases/mastodon.json", "releases/hometown.json", "scripts/backup.sh", "scripts/lib/common.sh",
      "cloud-init/mount-data-volume.sh",
    ]) expect(inputs.files, f).toContain(f);
    const files = repoFiles(REPO);
    const outside = files.filter((f) => /^(docs\/|test\/(?!fixtures\/app\/)|bench\/|src\/cli\/|src\/plan\/|\.ci\/)|^README\.md$|^releases\/README\.md$/.test(f));
    expect(inputs.files).toContain("test/fixtures/app/adapter.sh");
    expect(outside.length).toBeGreaterThan(0);
    expect(inputs.files.filter((f) => outside.includes(f))).toEqual([]);
  });

  it("a release catalog is a program input, and the docs are not", () => {
    for (const stack of STACKS) {
      for (const patterns of jobChanges(`preview:${stack}`)) {
        expect(patterns.some((p) => matchesGlob(p, "releases/mastodon.json"))).toBe(true);
        for (const doc of ["docs/pipeline.md", "docs/runbooks/restore.md", "README.md", "releases/README.md"]) {
          expect(patterns.some((p) => matchesGlob(p, doc)), doc).toBe(false);
        }
      }
    }
  });

  it("a list without releases/*.json or src/** would be caught", () => {
    const patterns = jobChanges("preview:prod")[0];
    const expected = [...inputs.files, "Pulumi.prod.yaml"];
    expect(coverage(patterns.filter((p) => p !== "releases/*.json"), expected).missing).toEqual(["releases/hometown.json", "releases/mastodon.json"]);
    expect(coverage(patterns.filter((p) => !p.startsWith("src/")), expected).missing).toEqual(expect.arrayContaining(["src/config/schema.ts", "src/ssh/openssh-key.ts", "src/reports/versions.ts"]));
  });
});

describe("deriving a program's inputs", () => {
  const temps: string[] = [];
  afterAll(() => {
    for (const d of temps) rmSync(d, { recursive: true, force: true });
  });

  function program(files: Record<string, string>): string {
    const root = mkdtempSync(path.join(os.tmpdir(), "program-"));
    temps.push(root);
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
      writeFileSync(path.join(root, f), text);
    }
    execFileSync("git", ["init", "--quiet"], { cwd: root });
    return root;
  }

  const project = {
    "Pulumi.yaml": "name: p\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n    packagemanager: npm\n",
    "package.json": JSON.stringify({ name: "p", main: "index.ts" }),
    "package-lock.json": "{}",
    "tsconfig.json": "{}",
    "docs/readme.md": "not read",
  };

  it("follows imports, paths from __dirname, template reads of a folder and sourced scripts", () => {
    const root = program({
      ...project,
      "index.ts": 'import { catalog } from "./lib/catalog";\nexport * from "./lib/assets";\nexport const c = catalog("a");\n',
      "lib/catalog.ts": 'import * as fs from "fs";\nimport * as path from "path";\nimport type { T } from "../types";\nexport const DIR = path.join(__dirname, "..", "catalogs");\nexport function catalog(n: string, dir = DIR): T { return JSON.parse(fs.readFileSync(path.join(dir, `${n}.json`), "utf8")); }\n',
      "types.ts": "export type T = string[];\n",
      "lib/assets.ts": 'import * as path from "path";\nimport * as pulumi from "@pulumi/pulumi";\nconst ASSETS = path.join(__dirname, "..", "assets");\nexport const a = new pulumi.asset.FileArchive(ASSETS);\nexport const tool = path.join(__dirname, "..", "tool", "run.sh");\n',
      "catalogs/a.json": "[]",
      "catalogs/b.json": "[]",
      "catalogs/NOTES.md": "not read",
      "assets/x.conf": "x",
      "assets/sub/y.conf": "y",
      "tool/run.sh": '#!/usr/bin/env bash\nDIR="$(dirname "$0")"\nsource "${DIR}/lib/helper.sh"\n',
      "tool/lib/helper.sh": "true\n",
      "tool/unused.sh": "true\n",
      "unused.ts": "export {};\n",
    });
    const found = programInputs(root);
    expect(found.unresolved).toEqual([]);
    expect(found.files).toEqual([
      "Pulumi.yaml", "assets/sub/y.conf", "assets/x.conf", "catalogs/a.json", "catalogs/b.json", "index.ts",
      "lib/assets.ts", "lib/catalog.ts", "package-lock.json", "package.json", "tool/lib/helper.sh", "tool/run.sh",
      "tsconfig.json", "types.ts",
    ]);
  });

  it("reports a read it cannot follow, so a new kind of read fails the test", () => {
    const root = program({
      ...project,
      "index.ts": 'import "./a";\nimport "./b";\nimport "./c";\n',
      "a.ts": 'import { readFileSync } from "fs";\nexport const x = readFileSync(process.argv[2], "utf8");\n',
      "b.ts": 'import * as path from "path";\nconst name = "x";\nexport const p = path.join(__dirname, name);\n',
      "c.ts": 'import "./gone";\n',
    });
    expect(programInputs(root).unresolved).toEqual([
      "c.ts: import \"./gone\" resolves to no file",
      "a.ts:2: reads files, but builds no path from __dirname, so which files cannot be told",
      "b.ts:3: a path from __dirname with a computed segment",
    ]);
  });
});
