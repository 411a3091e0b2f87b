/**
 * Which repository files `pulumi preview` / `pulumi up` of this program depend on, derived from the
 * program itself rather than written down:
 *  - the project file and what it says about the runtime: Pulumi.yaml; package.json (entry point and
 *    dependencies); the lock file of its package manager; tsconfig.json when it runs TypeScript;
 *  - every module reached by following imports (static, `export ... from`, `import()`, `require()`)
 *    from the entry point;
 *  - every path those modules build from `__dirname` with literal segments: a file is an input; a
 *    directory is an input as a whole, or only as the files matching the last segment of each
 *    `path.join(DIR, \`${x}.json\`)` when that is the only way the directory is used;
 *  - every file a shell input sources (`source "${DIR}/lib/x.sh"`, `# shellcheck source=...`).
 * A module that reads files without any path from `__dirname` is reported as unresolved, so a new
 * kind of read fails the test instead of slipping past it.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import ts from "typescript";
import { parse } from "yaml";

export interface ProgramInputs {
  /** Repository-relative files (posix separators), sorted. */
  readonly files: readonly string[];
  /** Why each file is an input (the first reason found). */
  readonly why: ReadonlyMap<string, string>;
  /** Reads or references the analysis could not resolve to files in the repository. */
  readonly unresolved: readonly string[];
}

/** Files in the work tree that git would commit (tracked, or untracked and not ignored). */
export function repoFiles(root: string): string[] {
  const out = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "-z"], { cwd: root, encoding: "utf8" });
  return out.split("\0").filter((f) => f && fs.existsSync(path.join(root, f))).sort();
}

const FS_READS = new Set(["readFileSync", "readFile", "readdirSync", "readdir", "createReadStream", "existsSync", "statSync", "openSync", "copyFileSync", "cpSync", "FileAsset", "FileArchive"]);
const MODULE_EXTENSIONS = ["", ".ts", ".tsx", ".js", ".cjs", ".mjs", ".json", "/index.ts", "/index.js"];

export function programInputs(root: string): ProgramInputs {
  const all = repoFiles(root);
  const present = new Set(all);
  const why = new Map<string, string>();
  const unresolved: string[] = [];
  const add = (file: string, reason: string) => {
    if (!why.has(file)) why.set(file, reason);
  };
  /** Shell files that are inputs one by one (not as part of a whole directory): their sources count too. */
  const shellFiles: Array<{ file: string; top: string }> = [];
  const rel = (abs: string) => path.relative(root, abs).split(path.sep).join("/");
  const isDir = (r: string) => all.some((f) => f.startsWith(`${r}/`));

  // The project file and the runtime it names.
  if (!present.has("Pulumi.yaml")) throw new Error("no Pulumi.yaml in the repository");
  add("Pulumi.yaml", "the Pulumi CLI reads the project file");
  const project = parse(fs.readFileSync(path.join(root, "Pulumi.yaml"), "utf8")) as {
    main?: string;
    runtime: string | { name: string; options?: { typescript?: boolean; packagemanager?: string } };
  };
  const runtime = typeof project.runtime === "string" ? { name: project.runtime, options: {} } : project.runtime;
  if (runtime.name !== "nodejs") throw new Error(`runtime ${runtime.name}: only nodejs is analysed`);
  add("package.json", "the Node.js language host reads the entry point and the dependencies");
  const lockFiles: Record<string, string> = { npm: "package-lock.json", yarn: "yarn.lock", pnpm: "pnpm-lock.yaml" };
  const lock = lockFiles[runtime.options?.packagemanager ?? "npm"];
  if (lock && present.has(lock)) add(lock, `${runtime.options?.packagemanager ?? "npm"} installs the dependencies from it`);
  if (runtime.options?.typescript !== false && present.has("tsconfig.json")) add("tsconfig.json", "ts-node compiles the program with it");
  const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { main?: string };
  const entry = resolveModule(path.join(root, project.main ?? pkg.main ?? "index.ts"));
  if (!entry) throw new Error("the program's entry point (Pulumi.yaml main, package.json main or index.ts) does not exist");

  const modules = new Map<string, ts.SourceFile>();
  const queue: Array<{ file: string; from: string }> = [{ file: entry, from: "the entry point (package.json main)" }];
  while (queue.length > 0) {
    const { file, from } = queue.shift()!;
    if (modules.has(file)) continue;
    const source = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true);
    modules.set(file, source);
    add(rel(file), from);
    for (const spec of moduleSpecifiers(source)) {
      if (!spec.startsWith(".")) continue; // a package: package.json and the lock file cover it
      const target = resolveModule(path.resolve(path.dirname(file), spec));
      if (!target) unresolved.push(`${rel(file)}: import "${spec}" resolves to no file`);
      else if (target.endsWith(".json")) add(rel(target), `imported by ${rel(file)}`);
      else queue.push({ file: target, from: `imported by ${rel(file)}` });
    }
  }

  for (const [file, source] of modules) {
    const from = rel(file);
    const anchored = dirnamePaths(source);
    for (const p of anchored) {
      const where = `${from}:${p.line}`;
      if (p.segments === null) {
        unresolved.push(`${where}: a path from __dirname with a computed segment`);
        continue;
      }
      const target = rel(path.resolve(path.dirname(file), ...p.segments));
      if (target.startsWith("..")) {
        unresolved.push(`${where}: ${target} is outside the repository`);
      } else if (present.has(target)) {
        add(target, `read by ${where}`);
        if (target.endsWith(".sh")) shellFiles.push({ file: target, top: target });
      } else if (isDir(target)) {
        const globs = p.variable ? directoryGlobs(source, p.variable, modules, file) : null;
        const matchers = (globs ?? ["**"]).map((g) => globLastSegment(g));
        for (const f of all) {
          if (!f.startsWith(`${target}/`)) continue;
          const rest = f.slice(target.length + 1);
          if (matchers.some((m) => m(rest))) add(f, `under ${target}/, read by ${where}${globs ? ` as ${globs.join(", ")}` : ""}`);
        }
      } else {
        unresolved.push(`${where}: ${target} does not exist`);
      }
    }
    const reads = fsReads(source);
    if (reads.length > 0 && anchored.length === 0) {
      unresolved.push(`${from}:${reads[0]}: reads files, but builds no path from __dirname, so which files cannot be told`);
    }
  }

  // Shell files the inputs source, transitively. A sourced path is relative to the sourcing file, to
  // the script that was started (whose folder the variable before it usually holds), or to the root.
  for (let i = 0; i < shellFiles.length; i++) {
    const { file, top } = shellFiles[i];
    for (const sourced of sourcedScripts(path.join(root, file))) {
      const target = [path.dirname(file), path.dirname(top), "."]
        .map((dir) => path.posix.normalize(path.posix.join(dir, sourced)))
        .find((candidate) => present.has(candidate));
      if (!target) {
        unresolved.push(`${file}: sources ${sourced}, which does not exist`);
      } else if (!shellFiles.some((s) => s.file === target)) {
        add(target, `sourced by ${file}`);
        shellFiles.push({ file: target, top });
      }
    }
  }

  return { files: [...why.keys()].sort(), why, unresolved };
}

function resolveModule(base: string): string | null {
  for (const ext of MODULE_EXTENSIONS) {
    const candidate = base + ext;
    if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) return candidate;
  }
  return null;
}

function lineOf(source: ts.SourceFile, node: ts.Node): number {
  return source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
}

function moduleSpecifiers(source: ts.SourceFile): string[] {
  const specs: string[] = [];
  const visit = (node: ts.Node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      specs.push(node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression)) {
      specs.push(node.moduleReference.expression.text);
    } else if (ts.isCallExpression(node) && (node.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(node.expression) && node.expression.text === "require"))) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteralLike(arg)) specs.push(arg.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return specs;
}

/** The callee's last name: `path.join` → join, `join` → join, `new pulumi.asset.FileAsset` → FileAsset. */
function calleeName(expr: ts.Expression): string | undefined {
  if (ts.isIdentifier(expr)) return expr.text;
  if (ts.isPropertyAccessExpression(expr)) return expr.name.text;
  return undefined;
}

interface AnchoredPath {
  readonly line: number;
  /** The segments after __dirname, or null when one is not a literal. */
  readonly segments: readonly string[] | null;
  /** The const it is assigned to, if any. */
  readonly variable?: string;
}

function dirnamePaths(source: ts.SourceFile): AnchoredPath[] {
  const found: AnchoredPath[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isCallExpression(node) && ["join", "resolve"].includes(calleeName(node.expression) ?? "")) {
      const [first, ...rest] = node.arguments;
      if (first && ts.isIdentifier(first) && first.text === "__dirname") {
        const literal = rest.every((a) => ts.isStringLiteralLike(a));
        let variable: string | undefined;
        for (let p: ts.Node = node.parent; p && !ts.isSourceFile(p); p = p.parent) {
          if (ts.isVariableDeclaration(p) && ts.isIdentifier(p.name)) { variable = p.name.text; break; }
          if (ts.isBlock(p)) break;
        }
        found.push({ line: lineOf(source, node), segments: literal ? rest.map((a) => (a as ts.StringLiteralLike).text) : null, variable });
        return;
      }
    }
    if (ts.isIdentifier(node) && node.text === "__dirname") {
      found.push({ line: lineOf(source, node), segments: null });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

function fsReads(source: ts.SourceFile): number[] {
  const lines: number[] = [];
  const visit = (node: ts.Node) => {
    if ((ts.isCallExpression(node) || ts.isNewExpression(node)) && FS_READS.has(calleeName(node.expression) ?? "")) lines.push(lineOf(source, node));
    if (ts.isIdentifier(node) && node.text === "cwd" && ts.isPropertyAccessExpression(node.parent)) lines.push(lineOf(source, node));
    ts.forEachChild(node, visit);
  };
  visit(source);
  return lines;
}

/**
 * How a directory constant is used: if every use (directly, or through a parameter it is the default
 * of) is `path.join(DIR, <literal or template>)`, the globs of those last segments (`${x}.json` →
 * `*.json`); otherwise null, meaning the whole directory.
 */
function directoryGlobs(source: ts.SourceFile, constant: string, modules: ReadonlyMap<string, ts.SourceFile>, file: string): string[] | null {
  // Used by another module of the program: assume the whole directory.
  for (const [other, src] of modules) {
    if (other !== file && new RegExp(`\\b${constant}\\b`).test(src.text)) return null;
  }
  const globs = new Set<string>();
  let whole = false;
  const joinGlob = (ref: ts.Identifier): string | null => {
    const call = ref.parent;
    if (!ts.isCallExpression(call) || call.arguments[0] !== ref || !["join", "resolve"].includes(calleeName(call.expression) ?? "")) return null;
    if (call.arguments.length !== 2) return null;
    const last = call.arguments[1];
    if (ts.isStringLiteralLike(last)) return last.text;
    if (ts.isTemplateExpression(last)) return [last.head.text, ...last.templateSpans.map((s) => s.literal.text)].join("*");
    return null;
  };
  const references = (name: string, scope: ts.Node, skip: ts.Node): ts.Identifier[] => {
    const refs: ts.Identifier[] = [];
    const visit = (n: ts.Node) => {
      if (ts.isIdentifier(n) && n.text === name && n !== skip) refs.push(n);
      ts.forEachChild(n, visit);
    };
    visit(scope);
    return refs;
  };
  let declaration: ts.Identifier | undefined;
  const findDecl = (n: ts.Node) => {
    if (ts.isVariableDeclaration(n) && ts.isIdentifier(n.name) && n.name.text === constant) declaration = n.name;
    ts.forEachChild(n, findDecl);
  };
  findDecl(source);
  for (const ref of references(constant, source, declaration ?? source)) {
    const param = ref.parent;
    if (ts.isParameter(param) && param.initializer === ref && ts.isIdentifier(param.name)) {
      const body = param.parent;
      for (const use of references(param.name.text, body, param.name)) {
        const g = joinGlob(use);
        if (g === null) whole = true;
        else globs.add(g);
      }
      continue;
    }
    const g = joinGlob(ref);
    if (g === null) whole = true;
    else globs.add(g);
  }
  return whole || globs.size === 0 ? null : [...globs].sort();
}

/** A matcher for a path relative to the directory: `**` matches everything, else one segment's glob. */
function globLastSegment(glob: string): (rest: string) => boolean {
  if (glob === "**") return () => true;
  const re = new RegExp(`^${glob.split("*").map((s) => s.replace(/[.+?^$()|[\]{}\\]/g, "\\$&")).join("[^/]*")}$`);
  return (rest) => re.test(rest);
}

/** Scripts a shell file sources, relative to its own folder. */
function sourcedScripts(file: string): string[] {
  const text = fs.readFileSync(file, "utf8");
  const found = new Set<string>();
  for (const m of text.matchAll(/^\s*(?:source|\.)\s+"?\$\{?[A-Za-z_][A-Za-z0-9_]*\}?\/([A-Za-z0-9_./-]+\.sh)"?/gm)) found.add(m[1]);
  for (const m of text.matchAll(/#\s*shellcheck\s+source=([A-Za-z0-9_./-]+\.sh)/g)) found.add(m[1]);
  return [...found].sort();
}
