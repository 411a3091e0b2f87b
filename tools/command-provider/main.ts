// A stand-in for the `command` provider (pulumi-resource-command 1.2.1), with the same resource types
// and inputs, for machines where the real plugin cannot be built (the Go module proxy here refuses
// github.com/pulumi/pulumi-command/provider). The program keeps using @pulumi/command unchanged; the
// engine starts this through tools/bin/pulumi-resource-command. Semantics follow the real provider's
// documentation: triggers replace, any other change runs `update` (or `create` again), `delete` runs
// on delete, outputs are secret when any input is, stdout/stderr stream to the engine per `logging`;
// the function `command:local:run` (local.run / local.runOutput) runs its command on every preview and up.
import * as grpc from "@grpc/grpc-js";
import { randomBytes } from "crypto";
import * as provider from "@pulumi/pulumi/provider";
import * as engrpc from "@pulumi/pulumi/proto/engine_grpc_pb";
import * as engproto from "@pulumi/pulumi/proto/engine_pb";
import { Output, runProcess } from "./process";
import { ARCHIVE_SIG, ASSET_SIG, SIG_KEY, Wire, containsSecret, secret, unwrap } from "./secrets";
import { Connection, copyToRemote, runRemote } from "./ssh";

const VERSION = "1.2.1";
const LOCAL_COMMAND = "command:local:Command";
const REMOTE_COMMAND = "command:remote:Command";
const COPY_TO_REMOTE = "command:remote:CopyToRemote";
const LOCAL_RUN = "command:local:run";
/** Inputs of each type; everything else in the state is an output. */
const INPUTS: Record<string, readonly string[]> = {
  [LOCAL_COMMAND]: ["addPreviousOutputInEnv", "create", "delete", "dir", "environment", "interpreter", "logging", "stdin", "triggers", "update"],
  [REMOTE_COMMAND]: ["addPreviousOutputInEnv", "connection", "create", "delete", "environment", "logging", "stdin", "triggers", "update"],
  [COPY_TO_REMOTE]: ["connection", "remotePath", "source", "triggers"],
};

type Props = Record<string, Wire>;

let engine: engrpc.EngineClient | undefined;

/** Sends one line to the engine, shown under the resource in `pulumi up` (like the real provider's logging). */
function engineLog(urn: string, message: string, severity = engproto.LogSeverity.INFO): Promise<void> {
  if (!engine) return Promise.resolve();
  const req = new engproto.LogRequest();
  req.setSeverity(severity);
  req.setMessage(message);
  req.setUrn(urn);
  req.setEphemeral(false);
  return new Promise((resolve) => engine?.log(req, () => resolve()));
}

function typeOf(urn: string): string {
  const type = urn.split("::")[2]?.split("$").pop();
  if (!type || !(type in INPUTS)) throw new Error(`unknown resource type in ${urn}`);
  return type;
}

function inputsOnly(type: string, props: Props): Props {
  return Object.fromEntries(Object.entries(props).filter(([k]) => INPUTS[type].includes(k)));
}

function str(v: Wire | undefined): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function environment(plain: Props, previous: Props | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  const given = plain.environment;
  if (given && typeof given === "object" && !Array.isArray(given)) {
    for (const [k, v] of Object.entries(given)) if (v !== null) env[k] = String(v);
  }
  if (previous && plain.addPreviousOutputInEnv !== false) {
    env.PULUMI_COMMAND_STDOUT = str(previous.stdout) ?? "";
    env.PULUMI_COMMAND_STDERR = str(previous.stderr) ?? "";
  }
  return env;
}

/** Runs one of the resource's commands where it belongs (here or over SSH), streaming per `logging`. */
async function runCommand(urn: string, type: string, plain: Props, command: string, previous: Props | undefined): Promise<Output> {
  const logging = str(plain.logging) ?? "stdoutAndStderr";
  const pending: Promise<void>[] = [];
  const onLine = (stream: "stdout" | "stderr", line: string) => {
    const wanted = logging === "stdoutAndStderr" || logging === stream;
    if (wanted) pending.push(engineLog(urn, line));
  };
  const env = environment(plain, previous);
  const stdin = str(plain.stdin);
  let out: Output;
  if (type === LOCAL_COMMAND) {
    out = await runLocal(plain, command, env, stdin, onLine);
  } else {
    const conn = plain.connection as unknown as Connection;
    out = await runRemote(conn, command, env, stdin, onLine, (l) => pending.push(engineLog(urn, l, engproto.LogSeverity.WARNING)));
  }
  await Promise.all(pending);
  return checked(out, command);
}

function runLocal(plain: Props, command: string, env: Record<string, string>, stdin: string | undefined, onLine: (stream: "stdout" | "stderr", line: string) => void): Promise<Output> {
  const interpreter = Array.isArray(plain.interpreter) ? plain.interpreter.map(String) : ["/bin/sh", "-c"];
  return runProcess(interpreter[0], [...interpreter.slice(1), command], { ...process.env, ...env }, stdin, onLine, str(plain.dir));
}

function checked(out: Output, command: string): Output {
  if (out.code !== 0) {
    // Like the real provider's message: the status and the output tail; the command text holds no secret
    // in this program (parameters travel as environment), but it is kept short anyway.
    const tail = [out.stdout, out.stderr].join("\n").trim().split("\n").slice(-20).join("\n");
    throw new Error(`Process exited with status ${out.code}: running "${command.slice(0, 200)}":\n${tail}`);
  }
  return out;
}

/**
 * local.run: the command runs here on every preview and up, and its output is the result (which the SDK
 * marks secret when an input was). Arguments come as plain values or in their secret wrapper, whichever
 * way the engine hands them over. Nothing is streamed: a function has no resource to log under.
 */
async function invokeRun(inputs: Props): Promise<provider.InvokeResult> {
  const plain = unwrap(inputs as Wire) as Props;
  const command = str(plain.command);
  if (!command) return { failures: [{ property: "command", reason: "command is required" }] };
  const out = checked(await runLocal(plain, command, environment({ ...plain, addPreviousOutputInEnv: false }, undefined), str(plain.stdin), () => undefined), command);
  return { outputs: { command, stdout: out.stdout, stderr: out.stderr } };
}

/** The source of a CopyToRemote as a local path (FileAsset or FileArchive of a folder or file). */
function sourcePath(source: Wire): string {
  if (source && typeof source === "object" && !Array.isArray(source)) {
    const sig = source[SIG_KEY];
    if ((sig === ASSET_SIG || sig === ARCHIVE_SIG) && typeof source.path === "string") return source.path;
  }
  throw new Error("source: only a FileAsset or a FileArchive of a local path is supported by this command provider");
}

/** State = the inputs as given (secrets stay wrapped) + the outputs, secret when any input is. */
function state(inputs: Props, outs: Props): Props {
  const hide = containsSecret(inputs as Wire);
  const wrapped = Object.fromEntries(Object.entries(outs).map(([k, v]) => [k, hide ? secret(v) : v]));
  return { ...inputs, ...wrapped };
}

async function apply(urn: string, inputs: Props, previous: Props | undefined): Promise<Props> {
  const type = typeOf(urn);
  const plain = unwrap(inputs as Wire) as Props;
  if (type === COPY_TO_REMOTE) {
    const out = await copyToRemote(plain.connection as unknown as Connection, sourcePath(plain.source), String(plain.remotePath), (l) =>
      void engineLog(urn, l, engproto.LogSeverity.WARNING),
    );
    if (out.code !== 0) throw new Error(`copy to ${String(plain.remotePath)} failed (status ${out.code}): ${out.stderr}`);
    return state(inputs, {});
  }
  const command = previous ? (str(plain.update) ?? str(plain.create)) : str(plain.create);
  if (!command) return state(inputs, { stdout: "", stderr: "" });
  const out = await runCommand(urn, type, plain, command, previous ? (unwrap(previous as Wire) as Props) : undefined);
  return state(inputs, { stdout: out.stdout, stderr: out.stderr });
}

function changed(a: Wire | undefined, b: Wire | undefined): boolean {
  return JSON.stringify(unwrap(a ?? null)) !== JSON.stringify(unwrap(b ?? null));
}

const commandProvider: provider.Provider = {
  version: VERSION,
  async check(_urn, _olds, news) {
    return { inputs: news };
  },
  async diff(_id, urn, olds: Props, news: Props) {
    const type = typeOf(urn);
    const keys = INPUTS[type].filter((k) => changed(olds[k], news[k]));
    return { changes: keys.length > 0, replaces: keys.includes("triggers") ? ["triggers"] : [] };
  },
  async create(urn, inputs: Props) {
    const outs = await apply(urn, inputs, undefined);
    return { id: randomBytes(8).toString("hex"), outs };
  },
  async invoke(token: string, inputs: Props) {
    if (token !== LOCAL_RUN) throw new Error(`unknown function ${token}: this command provider implements ${LOCAL_RUN} only`);
    return invokeRun(inputs);
  },
  async read(id, _urn, props) {
    return { id, props };
  },
  async update(_id, urn, olds: Props, news: Props) {
    return { outs: await apply(urn, inputsOnly(typeOf(urn), news), olds) };
  },
  async delete(_id, urn, props: Props) {
    const type = typeOf(urn);
    if (type === COPY_TO_REMOTE) return;
    const plain = unwrap(props as Wire) as Props;
    const command = str(plain.delete);
    if (command) await runCommand(urn, type, plain, command, plain);
  },
};

function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a) => !a.startsWith("-"));
  if (args[0]) engine = new engrpc.EngineClient(args[0], grpc.credentials.createInsecure());
  return provider.main(commandProvider, process.argv.slice(2));
}

void main();
