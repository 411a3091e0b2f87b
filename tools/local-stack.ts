// The real Pulumi engine on this computer: the CLI built by tools/build-pulumi.sh, a file backend and a
// passphrase in a state folder, no update check, no plugin download, and the command provider from
// tools/bin. Used by `coopctl local-stack` and the whole-stack tests; nothing here needs an account.
import { execFileSync } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";

export const REPO_ROOT = path.join(__dirname, "..");
const BUILD_SCRIPT = path.join(REPO_ROOT, "tools", "build-pulumi.sh");

/** What `pulumi up` reads: the program, its scripts and templates, and the stack files. */
const PROGRAM_FILES = [
  "Pulumi.yaml",
  "package.json",
  "tsconfig.json",
  "index.ts",
  "config.ts",
  "components",
  "src",
  "scripts",
  "cloud-init",
  "releases",
  "tools",
  // The fixture app that local stacks deploy (components/mastodon.ts).
  "test/fixtures/app",
];

/** Builds the CLI and language host when they are not cached (minutes the first time); returns their bin folder. */
export function ensurePulumi(log: (line: string) => void = () => undefined): string {
  const cached = execFileSync("bash", [BUILD_SCRIPT, "--print-dir"], { encoding: "utf8" }).trim();
  if (fs.existsSync(path.join(path.dirname(cached), ".complete"))) return cached;
  log("building the Pulumi CLI and the Node.js language host from the Go module proxy (about 4 minutes the first time)");
  return execFileSync("bash", [BUILD_SCRIPT], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
}

/** The environment of every engine run against a state folder: offline, file backend, its own passphrase. */
export function engineEnv(stateDir: string, bin: string): Record<string, string> {
  fs.mkdirSync(path.join(stateDir, "backend"), { recursive: true, mode: 0o700 });
  const passFile = path.join(stateDir, "passphrase");
  if (!fs.existsSync(passFile)) fs.writeFileSync(passFile, randomBytes(24).toString("base64url"), { mode: 0o600 });
  return {
    PATH: [bin, path.join(REPO_ROOT, "tools", "bin"), process.env.PATH ?? "/usr/bin:/bin"].join(":"),
    PULUMI_BACKEND_URL: `file://${path.join(stateDir, "backend")}`,
    PULUMI_CONFIG_PASSPHRASE_FILE: passFile,
    PULUMI_HOME: path.join(stateDir, "home"),
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
  };
}

/** A copy of the program under stateDir/program (node_modules linked), so a stack never writes into the repository. */
export function copyProgram(stateDir: string): string {
  const dest = path.join(stateDir, "program");
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(dest, { recursive: true });
  for (const f of PROGRAM_FILES) fs.cpSync(path.join(REPO_ROOT, f), path.join(dest, f), { recursive: true });
  fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(dest, "node_modules"));
  return dest;
}

export interface LocalStackOptions {
  /** Holds the backend, the passphrase, the program copy. */
  readonly stateDir: string;
  /** The stack's name (default local); its machines are named after it. */
  readonly stackName?: string;
  /** The repository's stack file to start from (default Pulumi.<stackName>.yaml). */
  readonly stackFile?: string;
  /** Replaces socialcoop:<key> values of the stack file (plain). */
  readonly config?: Readonly<Record<string, string>>;
  /** socialcoop:<key> secrets. */
  readonly secrets?: Readonly<Record<string, string>>;
  readonly log?: (line: string) => void;
}

/** Selects (or creates) the stack in stateDir with the real CLI, its stack file copied from the repository. */
export async function openLocalStack(opts: LocalStackOptions): Promise<Stack> {
  const stackName = opts.stackName ?? "local";
  const bin = ensurePulumi(opts.log);
  const env = engineEnv(opts.stateDir, bin);
  const workDir = fs.existsSync(path.join(opts.stateDir, "program", "Pulumi.yaml"))
    ? path.join(opts.stateDir, "program")
    : copyProgram(opts.stateDir);
  const stackFile = path.join(workDir, `Pulumi.${stackName}.yaml`);
  if (!fs.existsSync(stackFile)) fs.copyFileSync(path.join(REPO_ROOT, opts.stackFile ?? `Pulumi.${stackName}.yaml`), stackFile);
  const pulumiCommand = await PulumiCommand.get({ root: path.dirname(bin), skipVersionCheck: true });
  const stack = await LocalWorkspace.createOrSelectStack({ stackName, workDir }, { envVars: env, pulumiCommand, pulumiHome: env.PULUMI_HOME });
  for (const [k, v] of Object.entries(opts.config ?? {})) await stack.setConfig(`socialcoop:${k}`, { value: v });
  for (const [k, v] of Object.entries(opts.secrets ?? {})) await stack.setConfig(`socialcoop:${k}`, { value: v, secret: true });
  return stack;
}

/** Fresh secrets for a local stack: a deploy key made by ssh-keygen, random passphrases. */
export function localSecrets(stateDir: string): Record<string, string> {
  const key = path.join(stateDir, "deploy_key");
  if (!fs.existsSync(key)) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "deploy@local", "-f", key]);
  return {
    sshPrivateKey: fs.readFileSync(key, "utf8"),
    resticPassword: randomBytes(24).toString("base64url"),
    pgbackrestCipherPass: randomBytes(24).toString("base64url"),
  };
}

/**
 * What a stack whose machines a test destroyed behind the engine's back can leave when `pulumi destroy`
 * then fails (a delete command cannot reach its lost host): its machines and its bridge, removed directly.
 */
export function removeLocalMachines(stackName: string, network: string, roles: readonly string[], log: (line: string) => void = () => undefined): void {
  const machineSh = path.join(REPO_ROOT, "tools", "local-cloud", "machine.sh");
  const run = (sub: string, env: Record<string, string>) => {
    try {
      execFileSync("bash", [machineSh, sub], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"], timeout: 120_000 });
    } catch (e) {
      log(`machine.sh ${sub} ${JSON.stringify(env)} failed: ${(e as Error).message}`);
    }
  };
  for (const role of roles) run("delete", { COOP_MACHINE: `${stackName}-${role}`, COOP_STOP_TIMEOUT: "0" });
  run("network-delete", { COOP_NETWORK: network });
}
