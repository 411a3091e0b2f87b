// The local backend of Host: systemd-nspawn machines on the computer running Pulumi, created and
// deleted by the program itself through tools/local-cloud/machine.sh (so `pulumi destroy` removes them).
import * as command from "@pulumi/command";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { LocalCloudConfig } from "../src/config/schema";

/** The tool that creates, deletes and restarts local machines (runs as root on this computer). */
export const MACHINE_TOOL = path.join(__dirname, "..", "tools", "local-cloud", "machine.sh");

/** Each host's last address byte on the local network (the bridge is .1), from localCloud.firstHost. */
export function localHostNumber(firstHost: number, host: "primary" | "secondary"): number {
  return host === "primary" ? firstHost : firstHost + 1;
}

/** The bridge a machine attaches to: this stack's own (LocalNetwork), or one another local stack made. */
export interface LocalNetworkRef {
  readonly name: string;
  /** Absent when another stack owns the bridge: it exists before this stack's `up`. */
  readonly ready?: pulumi.Resource;
}

/** What `machine.sh create` prints as its last stdout line. */
export interface LocalMachineInfo {
  readonly ipv4: string;
  readonly ipv6: string;
  readonly hostKey: string;
}

export function parseMachineInfo(stdout: string): LocalMachineInfo {
  const last = stdout.trim().split("\n").pop() ?? "";
  let info: Partial<LocalMachineInfo>;
  try {
    info = JSON.parse(last) as Partial<LocalMachineInfo>;
  } catch {
    throw new Error(`machine.sh create printed no JSON line (last line: ${JSON.stringify(last.slice(0, 200))})`);
  }
  if (!info.ipv4 || !info.ipv6 || !/^ssh-ed25519 [A-Za-z0-9+/=]+$/.test(info.hostKey ?? "")) {
    throw new Error(`machine.sh create printed an incomplete machine: ${last.slice(0, 200)}`);
  }
  return { ipv4: info.ipv4, ipv6: info.ipv6, hostKey: info.hostKey as string };
}

/** An address of a /24 or /64 subnet with its prefix, e.g. ("10.231.7.0/24", 11) → "10.231.7.11/24". */
export function subnetAddress(subnet: string, n: number): string {
  const [base, prefix] = subnet.split("/");
  if (base.includes(":")) return `${base.replace(/::$/, "::")}${n.toString(16)}/${prefix}`;
  return `${base.split(".").slice(0, 3).join(".")}.${n}/${prefix}`;
}

function toolCommand(sub: string): string {
  return `bash ${JSON.stringify(MACHINE_TOOL)} ${sub}`;
}

/** The bridge the stack's local machines attach to; deleted after the last machine. */
export class LocalNetwork extends pulumi.ComponentResource implements LocalNetworkRef {
  public readonly name: string;
  public readonly ready: command.local.Command;

  constructor(name: string, args: LocalCloudConfig, opts?: pulumi.ComponentResourceOptions) {
    super("socialcoop:host:LocalNetwork", name, {}, opts);
    this.name = args.network;
    this.ready = new command.local.Command(
      `${name}-bridge`,
      {
        create: toolCommand("network-create"),
        delete: toolCommand("network-delete"),
        environment: { COOP_NETWORK: args.network, COOP_SUBNET4: args.subnet4, COOP_SUBNET6: args.subnet6 },
        logging: "stderr",
      },
      { parent: this },
    );
    this.registerOutputs({ name: this.name });
  }
}

export interface LocalMachineArgs {
  readonly network: LocalNetworkRef;
  readonly address4: string;
  readonly address6: string;
  readonly volumeGb: number;
  readonly userData: pulumi.Input<string>;
  readonly openTcpPorts: readonly number[];
}

/** One machine; `create` is idempotent, so an update (e.g. new user-data) re-prints the running machine. */
export function localMachine(name: string, args: LocalMachineArgs, parent: pulumi.Resource): command.local.Command {
  return new command.local.Command(
    `${name}-machine`,
    {
      create: toolCommand("create"),
      delete: toolCommand("delete"),
      environment: {
        COOP_MACHINE: name,
        COOP_NETWORK: args.network.name,
        COOP_ADDRESS4: args.address4,
        COOP_ADDRESS6: args.address6,
        COOP_VOLUME_GB: String(args.volumeGb),
        COOP_USER_DATA: args.userData,
        COOP_OPEN_TCP_PORTS: args.openTcpPorts.join(" "),
      },
      // The tool logs its progress on stderr; stdout is the machine's JSON.
      logging: "stderr",
    },
    // As on the clouds, user-data applies when the machine is created; later key changes reach it
    // through the Host's authorized-keys hook instead of a rebuild.
    // Replaced (a lost machine, docs/runbooks/restore.md): the old one goes first, as the new takes its name.
    { parent, dependsOn: args.network.ready ? [args.network.ready] : [], ignoreChanges: ["environment.COOP_USER_DATA"], deleteBeforeReplace: true },
  );
}
