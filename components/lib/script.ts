// The host scripts as Pulumi sees them: their content hash (for triggers), the folder to upload, and
// the COOP_* environment that is the only way parameters reach them.
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";

/** The repository's scripts folder. */
export const SCRIPTS_DIR = path.join(__dirname, "..", "..", "scripts");

/** Where the hosts keep the installed scripts; the systemd units call them there. */
export const REMOTE_SCRIPTS_DIR = "/opt/coop/scripts";

/**
 * `source "${SCRIPT_DIR}/lib/x.sh"` or `source "${SCRIPT_DIR}/x.sh"` as the scripts write it, and a default
 * behind a variable, `source "${COOP_APP_ADAPTER:-${SCRIPT_DIR}/lib/app-mastodon.sh}"`: the file real hosts run.
 */
const SOURCE_LINE = /^\s*(?:source|\.)\s+"\$\{?(?:[A-Z_]+:-\$\{)?SCRIPT_DIR\}?\/([A-Za-z0-9_./-]+\.sh)/gm;

/** Every `.sh` under the scripts folder (top level and lib/), as sorted paths relative to it. */
export function listScripts(dir: string = SCRIPTS_DIR): string[] {
  const top = fs.readdirSync(dir).filter((f) => f.endsWith(".sh"));
  const lib = fs.existsSync(path.join(dir, "lib"))
    ? fs.readdirSync(path.join(dir, "lib")).filter((f) => f.endsWith(".sh")).map((f) => `lib/${f}`)
    : [];
  return [...top, ...lib].sort();
}

/**
 * A script and everything it sources, transitively, relative to the scripts folder. Libraries source
 * nothing themselves today, but following them keeps the hash honest if one starts to.
 */
export function scriptClosure(script: string, dir: string = SCRIPTS_DIR): string[] {
  const seen = new Set<string>();
  const visit = (rel: string) => {
    if (seen.has(rel)) return;
    const file = path.join(dir, rel);
    if (!fs.existsSync(file)) throw new Error(`scripts/${rel} does not exist (needed by scripts/${script})`);
    seen.add(rel);
    for (const m of fs.readFileSync(file, "utf8").matchAll(SOURCE_LINE)) {
      // SCRIPT_DIR is the running top-level script's folder, also when a library is the one sourcing.
      visit(path.posix.normalize(m[1]));
    }
  };
  visit(script);
  return [...seen].sort();
}

/**
 * sha256 over the named scripts and everything they source: each file's relative path and content,
 * in sorted order, so the value depends on nothing but the bytes (not on mtimes or read order).
 */
export function scriptsHash(scripts: readonly string[], dir: string = SCRIPTS_DIR): string {
  const files = [...new Set(scripts.flatMap((s) => scriptClosure(s, dir)))].sort();
  const h = createHash("sha256");
  for (const rel of files) {
    const body = fs.readFileSync(path.join(dir, rel));
    h.update(`${rel}\0${body.length}\0`);
    h.update(body);
  }
  return h.digest("hex");
}

/** The hash of the whole folder as it is uploaded. */
export function folderHash(dir: string = SCRIPTS_DIR): string {
  return scriptsHash(listScripts(dir), dir);
}

/**
 * The scripts to upload: only the `.sh` files (`scripts/` holds nothing else; CI helpers live in `ci/`), one asset per file. CopyToRemote
 * accepts a FileArchive of a folder, so use `scriptsFolderArchive` for the upload itself; this archive
 * is what a trigger or a `local` command would carry.
 */
export function scriptsAssetArchive(dir: string = SCRIPTS_DIR): pulumi.asset.AssetArchive {
  const assets: Record<string, pulumi.asset.Asset> = {};
  for (const rel of listScripts(dir)) assets[rel] = new pulumi.asset.FileAsset(path.join(dir, rel));
  return new pulumi.asset.AssetArchive(assets);
}

/** The folder as @pulumi/command 1.2.1 CopyToRemote uploads it (FileAsset, StringAsset or FileArchive only). */
export function scriptsFolderArchive(dir: string = SCRIPTS_DIR): pulumi.asset.FileArchive {
  return new pulumi.asset.FileArchive(dir);
}

/**
 * Where an upload lands: a fresh folder per content hash under the SSH user's home, because the user
 * is not root (it cannot write /opt) and CopyToRemote copies a folder *into* an existing target folder.
 * install-backup.sh installs it into REMOTE_SCRIPTS_DIR as root.
 */
export function uploadPath(adminUser: string, hash: string): string {
  return `/home/${adminUser}/.coop-scripts/${hash.slice(0, 16)}`;
}

/** The scripts folder as uploaded once to a host: the upload to depend on, and where it landed. */
export interface HostScripts {
  readonly upload: pulumi.Resource;
  readonly path: string;
}

/** A parameter name in TypeScript (camelCase) as the scripts read it: `resticPassword` → `COOP_RESTIC_PASSWORD`. */
export function envName(param: string): string {
  if (!/^[a-z][A-Za-z0-9]*$/.test(param)) throw new Error(`script parameter "${param}" must be camelCase`);
  return `COOP_${param.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/([A-Z])([A-Z][a-z])/g, "$1_$2").toUpperCase()}`;
}

/** Parameters of one script; undefined leaves the variable out so the script's default applies. */
export type ScriptParams = Readonly<Record<string, pulumi.Input<string> | undefined>>;

/**
 * A command's `environment` from typed parameters: each key `COOP_<NAME>`, each value a
 * `pulumi.Input<string>`, in sorted order so a diff never churns. A secret stays the secret Output it
 * came as (never `apply`d into a string here), and nothing is interpolated into the command text.
 */
export function scriptEnvironment(params: ScriptParams): Record<string, pulumi.Input<string>> {
  const env: Record<string, pulumi.Input<string>> = {};
  for (const key of Object.keys(params).sort()) {
    const value = params[key];
    if (value !== undefined) env[envName(key)] = value;
  }
  return env;
}

/**
 * The command text that runs a script as root with its environment. The hosts' sudoers keep COOP_*
 * (`env_keep`, written by cloud-init): `sudo --preserve-env=NAME` would log every NAME=value, secrets
 * included, in the journal. Only the script's path appears here (sudo logs its command line).
 */
export function sudoScript(script: string, env: Readonly<Record<string, unknown>>, dir = "\"$COOP_SCRIPTS_FROM\""): string {
  for (const n of Object.keys(env)) if (!/^COOP_[A-Z0-9_]+$/.test(n)) throw new Error(`environment name ${n} is not COOP_*`);
  return `sudo bash ${dir}/${script}`;
}

/**
 * A delete command's text: `SCRIPT ARGS` as root from the uploaded folder, or from the installed scripts
 * when that upload's folder is gone (a later content hash replaced it), or `nothing` echoed when the host
 * has neither.
 */
export function uploadedOrInstalled(script: string, args: string, nothing: string, env: Readonly<Record<string, unknown>> = {}): string {
  const from = (dir: string) => `${sudoScript(script, env, dir)} ${args}`;
  return [
    `if [ -f "$COOP_SCRIPTS_FROM/${script}" ]; then ${from('"$COOP_SCRIPTS_FROM"')}`,
    `elif [ -f "${REMOTE_SCRIPTS_DIR}/${script}" ]; then ${from(`"${REMOTE_SCRIPTS_DIR}"`)}`,
    `else echo "${nothing}"; fi`,
  ].join("; ");
}
