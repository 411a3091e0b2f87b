// Runs the Pulumi program with no engine and no cloud: pulumi.runtime.setMocks answers every
// resource, and every registration is recorded as the engine would have received it.
import * as pulumi from "@pulumi/pulumi";
import * as path from "path";
import { NAMESPACE } from "../config/problems";

/** A resource registration as the engine would see it. */
export interface RecordedResource {
  readonly type: string;
  readonly name: string;
  /** Inputs after serialization; secrets keep Pulumi's secret wrapper (see isSecretValue). */
  readonly inputs: Record<string, unknown>;
  readonly custom: boolean;
  /** Name of the parent resource, or undefined for a top-level resource. */
  readonly parent?: string;
  readonly parentType?: string;
  readonly dependsOn: readonly string[];
  readonly protect: boolean;
  readonly ignoreChanges: readonly string[];
  /** Outputs the engine must store as secrets whatever their value. */
  readonly additionalSecretOutputs: readonly string[];
}

export interface OfflineRun {
  readonly resources: readonly RecordedResource[];
  readonly outputs: Record<string, unknown>;
}

export interface OfflineConfig {
  readonly stack: string;
  /** Keys without the `socialcoop:` prefix; objects already JSON-encoded. */
  readonly values: Readonly<Record<string, string>>;
  readonly secretKeys: ReadonlySet<string>;
}

// Pulumi's wire marker for a secret value (sdk/nodejs/runtime/rpc.ts); stable across SDK versions.
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export function isSecretValue(v: unknown): v is { value: unknown } {
  return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

/** Addresses from the documentation ranges (RFC 5737, RFC 3849): never a real host. */
function fakeState(type: string, name: string, n: number): Record<string, unknown> {
  const ip = { ipv4Address: `203.0.113.${10 + n}`, ipv6Address: `2001:db8::${10 + n}` };
  switch (type) {
    case "hcloud:index/server:Server":
    case "digitalocean:index/droplet:Droplet":
      return ip;
    case "digitalocean:index/sshKey:SshKey":
      return { fingerprint: `fp:${name}` };
    default:
      return {};
  }
}

// The mock monitor hides parent and options from MockResourceArgs; read them off the RPC request.
interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getDependenciesList(): string[];
  getProtect(): boolean;
  getIgnorechangesList(): string[];
  getAdditionalsecretoutputsList(): string[];
}
interface MonitorLike {
  registerResource(req: RegisterRequest, cb: unknown): unknown;
}

function urnName(urn: string): { name: string; type: string } {
  const parts = urn.split("::");
  return { name: parts[parts.length - 1], type: (parts[2] ?? "").split("$").pop() ?? "" };
}

export async function runOffline(cfg: OfflineConfig, programPath = path.join(__dirname, "..", "..", "index.ts")): Promise<OfflineRun> {
  const recorded: RecordedResource[] = [];
  const options = new Map<string, Pick<RecordedResource, "parent" | "parentType" | "dependsOn" | "protect" | "ignoreChanges" | "additionalSecretOutputs">>();
  let servers = 0;
  let ids = 1000;

  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const n = args.type.endsWith(":Server") || args.type.endsWith(":Droplet") ? servers++ : 0;
        const opts = options.get(`${args.type}::${args.name}`);
        recorded.push({
          type: args.type,
          name: args.name,
          inputs: args.inputs as Record<string, unknown>,
          custom: args.custom ?? false,
          parent: opts?.parent,
          parentType: opts?.parentType,
          dependsOn: opts?.dependsOn ?? [],
          protect: opts?.protect ?? false,
          ignoreChanges: opts?.ignoreChanges ?? [],
          additionalSecretOutputs: opts?.additionalSecretOutputs ?? [],
        });
        // Numeric IDs, as Hetzner and DigitalOcean hand out, so `id.apply(Number)` holds up.
        return { id: String(ids++), state: { ...args.inputs, ...fakeState(args.type, args.name, n) } };
      },
      call(args) {
        throw new Error(`offline run: unexpected data-source call ${args.token}; add it to src/plan/offline.ts on purpose`);
      },
    },
    "socialcoop",
    cfg.stack,
    true,
  );

  const monitor = pulumi.runtime.getMonitor() as unknown as MonitorLike;
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, cb) => {
    const parent = req.getParent() ? urnName(req.getParent()) : undefined;
    options.set(`${req.getType()}::${req.getName()}`, {
      parent: parent?.name,
      parentType: parent?.type,
      dependsOn: req.getDependenciesList().map((u) => urnName(u).name),
      protect: req.getProtect(),
      ignoreChanges: req.getIgnorechangesList(),
      additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
    });
    return register(req, cb);
  };

  const all: Record<string, string> = {};
  const secret: string[] = [];
  for (const [k, v] of Object.entries(cfg.values)) {
    all[`${NAMESPACE}:${k}`] = v;
    if (cfg.secretKeys.has(k)) secret.push(`${NAMESPACE}:${k}`);
  }
  pulumi.runtime.setAllConfig(all, secret);

  const program = (await import(programPath)) as Record<string, unknown>;
  const outputs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(program)) {
    outputs[k] = pulumi.Output.isInstance(v) ? await outputValue(v) : v;
  }
  await pulumi.runtime.disconnect();
  return { resources: recorded, outputs };
}

/** What a plan shows for a value that only exists once a command ran (a preview never runs it). */
export const UNKNOWN = "[unknown until pulumi up]";

async function outputValue<T>(o: pulumi.Output<T>): Promise<T | typeof UNKNOWN> {
  // An unknown Output (a command's stdout in a preview) never calls apply; the SDK keeps its known-ness
  // in a field it does not type publicly, so it is read through this narrowed cast.
  const known = await (o as unknown as { isKnown: Promise<boolean> }).isKnown;
  const value = known ? await new Promise<T | typeof UNKNOWN>((resolve) => o.apply((v) => resolve(v))) : UNKNOWN;
  // A secret stack output keeps the wrapper a secret input has (known or not), so a test can tell it is one.
  return (await pulumi.isSecret(o)) ? ({ [SIG_KEY]: SECRET_SIG, value } as unknown as T) : value;
}
