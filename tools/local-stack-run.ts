// Bringing the local stack up and down for a person at a terminal (coopctl rehearse): the image and
// the engine built with progress, `pulumi up` with the engine's own lines, a summary of what exists.
import { spawn } from "child_process";
import * as path from "path";
import type { Stack } from "@pulumi/pulumi/automation";
import * as fs from "fs";
import { parse as parseYaml } from "yaml";
import { AcmeServer, startAcmeServer } from "./acme-server";
import { REPO_ROOT, engineEnv, ensurePulumi, localSecrets, openLocalStack } from "./local-stack";

const MACHINE_TOOL = path.join(REPO_ROOT, "tools", "local-cloud", "machine.sh");

/** Builds (or finds) the machines' root filesystem; the tool prints its own progress. */
export function ensureImage(log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [MACHINE_TOOL, "image"], { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d: string) => d.split("\n").filter((l) => l.trim()).forEach(log));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`machine.sh image failed (exit ${code})`))));
  });
}

/** Lines of `pulumi up` worth showing as it runs: each resource's start and end, errors, the summary. */
function engineLine(line: string): boolean {
  return /^\s*[+~-]+\s+\S+:\S+\s+\S+\s+(created|updated|deleted|creating failed|updating failed)|error:|Resources:|\d+ (created|unchanged|updated)|Duration:/.test(line);
}

export interface UpSummary {
  readonly stack: Stack;
  /** The ACME server the app host's certificate came from; stop it after the stack is destroyed. */
  readonly acme: AcmeServer;
  readonly seconds: number;
  readonly created: number;
  readonly outputs: Record<string, unknown>;
}

/** `pulumi up` of the local stack; on failure the stack is destroyed (unless `keepOnFailure`) and the error rethrown. */
export async function upLocalStack(stateDir: string, log: (line: string) => void, keepOnFailure = false): Promise<UpSummary> {
  ensurePulumi(log);
  const acme = startAcmeServer(localGateway(), path.join(stateDir, "acme"), log);
  const stack = await openLocalStack({ stateDir, secrets: localSecrets(stateDir), config: acme.config, log });
  const t0 = Date.now();
  let partial = "";
  const onOutput = (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const l of lines) if (engineLine(l)) log(l.trimEnd());
  };
  const result = await stack.up({ onOutput }).catch(async (e: Error) => {
    if (!keepOnFailure) {
      log("pulumi up failed: destroying what it created");
      await stack.destroy({ onOutput }).catch((d: Error) => log(`destroy failed too: ${d.message.split("\n")[0]}`));
    }
    await acme.stop();
    throw e;
  });
  const outputs = Object.fromEntries(Object.entries(result.outputs).map(([k, v]) => [k, v.secret ? "[secret]" : v.value]));
  return { stack, acme, seconds: (Date.now() - t0) / 1000, created: result.summary.resourceChanges?.create ?? 0, outputs };
}

/** The local stack's bridge address (the first of localCloud.subnet4 in Pulumi.local.yaml), where the ACME server listens. */
export function localGateway(stackFile = path.join(REPO_ROOT, "Pulumi.local.yaml")): string {
  const doc = parseYaml(fs.readFileSync(stackFile, "utf8")) as { config?: Record<string, { subnet4?: string } | undefined> };
  const subnet = doc.config?.["socialcoop:localCloud"]?.subnet4 ?? "10.231.7.0/24";
  return subnet.replace(/\.0\/24$/, ".1");
}

/** The shell lines that reach the kept stack with the same engine, for `--keep`. */
export function keptStackHelp(stateDir: string): string[] {
  const env = engineEnv(stateDir, ensurePulumi());
  const vars = ["PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_HOME", "PULUMI_SKIP_UPDATE_CHECK", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"]
    .map((k) => `${k}=${env[k]}`)
    .join(" ");
  const program = path.join(stateDir, "program");
  return [
    `export PATH=${env.PATH.split(":").slice(0, 2).join(":")}:$PATH ${vars}`,
    `pulumi -C ${program} -s local stack output          # addresses, host keys`,
    `ssh -i ${path.join(stateDir, "deploy_key")} coop@<primaryIpv4>   # a host (its key: stack output primaryHostKey)`,
    `pulumi -C ${program} -s local destroy --yes         # remove the machines, the bridge, the volumes`,
  ];
}
