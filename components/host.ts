// Host: a hardened Debian 12 VPS with a data volume at /srv, on Hetzner Cloud or DigitalOcean.
import * as command from "@pulumi/command";
import * as digitalocean from "@pulumi/digitalocean";
import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import type { Provider, Role } from "../src/config/schema";
import { renderUserData } from "./lib/cloud-init";
import { ANYWHERE, inboundTcpPorts } from "./lib/firewall";
import { HostScripts, folderHash, scriptsFolderArchive, uploadPath } from "./lib/script";
import { type LocalNetworkRef, localMachine, parseMachineInfo } from "./local-cloud";

export interface HostArgs {
  /** Which cloud runs this host. */
  readonly provider: Provider;
  /** Hetzner location or DigitalOcean region. */
  readonly location: string;
  /** Provider size slug. */
  readonly size: string;
  /** Size of the data volume mounted at /srv. */
  readonly volumeGb: number;
  /** What runs here; decides the open ports. */
  readonly roles: readonly Role[];
  /** The sudo user that operators and command resources log in as. */
  readonly adminUser: string;
  /** Every public key authorized for adminUser (operators' and the deploy key). */
  readonly authorizedKeys: pulumi.Input<string>[];
  /** Provider-side SSH key references from SshKeys (IDs on Hetzner, fingerprints on DigitalOcean). */
  readonly sshKeyRefs: pulumi.Input<pulumi.Input<string>[]>;
  /** Private half of the deploy key; a secret. */
  readonly deployPrivateKey: pulumi.Input<string>;
  /** Ask the provider and Pulumi to refuse deleting this host's server and data volume. */
  readonly protect?: boolean;
  /** For `provider: local`: the stack's bridge and this host's addresses on it. */
  readonly local?: { readonly network: LocalNetworkRef; readonly address4: string; readonly address6: string };
}

/** What @pulumi/command needs to reach a host. */
export interface HostConnection {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly privateKey: string;
  /** The host's SSH key, pinned (`ssh-ed25519 AAAA...`); known at creation for local machines. */
  readonly hostKey?: string;
}

/** How each provider names an attached volume under /dev/disk/by-id. */
export const DATA_DEVICE_GLOB: Record<Provider, string> = {
  hcloud: "/dev/disk/by-id/scsi-0HC_Volume_*",
  digitalocean: "/dev/disk/by-id/scsi-0DO_Volume_*",
  // tools/local-cloud/machine.sh passes the loop device in under this name (no udev in a container).
  local: "/dev/coop-data",
};

interface Machine {
  readonly ipv4: pulumi.Output<string>;
  readonly ipv6: pulumi.Output<string>;
  readonly hostKey?: pulumi.Output<string>;
  /** What must exist before commands may run (the volume attachment, the machine). */
  readonly attached: pulumi.Resource;
}

/**
 * Run first on every host, before any other command: waits until cloud-init has finished (packages,
 * users, the sshd drop-in, the volume mount) and checks /srv is the data volume. It also proves that
 * sshd passes COOP_* variables (AcceptEnv), which every host script depends on.
 */
export const READY_COMMAND = [
  'test -n "${COOP_HOST_NAME:-}" || { echo "sshd did not pass COOP_HOST_NAME: the AcceptEnv COOP_* drop-in is missing" >&2; exit 1; }',
  'if ! cloud-init status --wait >/dev/null; then sudo cloud-init status --long >&2; echo "cloud-init failed on $COOP_HOST_NAME" >&2; exit 1; fi',
  'src=$(findmnt -n -o SOURCE,FSTYPE /srv) || { echo "/srv is not mounted on $COOP_HOST_NAME: the data volume is missing" >&2; exit 1; }',
  'echo "ready: $COOP_HOST_NAME, /srv on $src"',
].join("\n");

/** Writes the authorized keys from stack config, so added or removed operator keys reach existing hosts. */
export const AUTHORIZED_KEYS_COMMAND = [
  "set -eu",
  "umask 077",
  "mkdir -p ~/.ssh",
  'printf "%s\\n" "$COOP_AUTHORIZED_KEYS" > ~/.ssh/authorized_keys.new',
  "mv ~/.ssh/authorized_keys.new ~/.ssh/authorized_keys",
  'echo "authorized keys: $(grep -c . ~/.ssh/authorized_keys)"',
].join("\n");

export class Host extends pulumi.ComponentResource {
  public readonly ipv4: pulumi.Output<string>;
  public readonly ipv6: pulumi.Output<string>;
  /** Secret: it holds the deploy key. */
  public readonly connection: pulumi.Output<HostConnection>;
  /** The host's SSH key as pinned by the connection; undefined where the cloud does not report it at creation. */
  public readonly hostKey: pulumi.Output<string | undefined>;
  /**
   * The host has finished cloud-init, has its volume and the stack's authorized keys: every command on
   * it must `dependsOn` this.
   */
  public readonly ready: command.remote.Command;
  /** The host scripts, uploaded once per content hash after `ready`; every script command depends on it. */
  public readonly scripts: HostScripts;

  constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("socialcoop:host:Host", name, {}, opts);
    const userData = pulumi.all(args.authorizedKeys).apply((keys) =>
      renderUserData({
        adminUser: args.adminUser,
        authorizedKeys: keys,
        dataDeviceGlob: DATA_DEVICE_GLOB[args.provider],
        hostname: name,
      }),
    );
    // Changing user-data or keys would replace the server (and its local disk); they apply at creation only.
    const childOpts: pulumi.CustomResourceOptions = { parent: this };
    // A replaced server is a lost one (docs/runbooks/restore.md): the old goes first, so that the new
    // can take its name and there is never a second primary.
    const serverOpts: pulumi.CustomResourceOptions = {
      parent: this,
      protect: args.protect,
      ignoreChanges: ["userData", "sshKeys", "image"],
      deleteBeforeReplace: true,
    };
    const volumeOpts: pulumi.CustomResourceOptions = { parent: this, protect: args.protect };
    const machine =
      args.provider === "hcloud"
        ? this.hetzner(name, args, userData, childOpts, serverOpts, volumeOpts)
        : args.provider === "digitalocean"
          ? this.digitalOcean(name, args, userData, childOpts, serverOpts, volumeOpts)
          : this.local(name, args, userData);

    this.ipv4 = machine.ipv4;
    this.ipv6 = machine.ipv6;
    this.connection = pulumi.secret(
      pulumi.all([machine.ipv4, args.deployPrivateKey, machine.hostKey]).apply(([host, privateKey, hostKey]) => ({
        host,
        port: 22,
        user: args.adminUser,
        privateKey,
        ...(hostKey ? { hostKey } : {}),
      })),
    );
    this.hostKey = pulumi.output(machine.hostKey);
    const booted = new command.remote.Command(
      `${name}-ready`,
      {
        connection: this.connection,
        create: READY_COMMAND,
        environment: { COOP_HOST_NAME: name },
        logging: "stdoutAndStderr",
        addPreviousOutputInEnv: false,
      },
      { parent: this, dependsOn: [machine.attached] },
    );
    const keys = pulumi.all(args.authorizedKeys).apply((k) => [...k].join("\n"));
    this.ready = new command.remote.Command(
      `${name}-authorized-keys`,
      {
        connection: this.connection,
        create: AUTHORIZED_KEYS_COMMAND,
        environment: { COOP_AUTHORIZED_KEYS: keys },
        logging: "stdoutAndStderr",
        addPreviousOutputInEnv: false,
      },
      { parent: this, dependsOn: [booted] },
    );
    const hash = folderHash();
    const path = uploadPath(args.adminUser, hash);
    const upload = new command.remote.CopyToRemote(
      `${name}-scripts`,
      { connection: this.connection, source: scriptsFolderArchive(), remotePath: path, triggers: [hash] },
      { parent: this, dependsOn: [this.ready] },
    );
    this.scripts = { upload, path };
    this.registerOutputs({ ipv4: this.ipv4, ipv6: this.ipv6, hostKey: this.hostKey, connection: this.connection, ready: this.ready, scripts: upload });
  }

  private local(name: string, args: HostArgs, userData: pulumi.Output<string>): Machine {
    if (!args.local) throw new Error(`hosts: ${name} is a local host but no local network was given`);
    const machine = localMachine(
      name,
      {
        network: args.local.network,
        address4: args.local.address4,
        address6: args.local.address6,
        volumeGb: args.volumeGb,
        userData,
        openTcpPorts: inboundTcpPorts(args.roles),
      },
      this,
    );
    const info = machine.stdout.apply(parseMachineInfo);
    return { ipv4: info.ipv4, ipv6: info.ipv6, hostKey: info.hostKey, attached: machine };
  }

  private hetzner(
    name: string,
    args: HostArgs,
    userData: pulumi.Output<string>,
    childOpts: pulumi.CustomResourceOptions,
    serverOpts: pulumi.CustomResourceOptions,
    volumeOpts: pulumi.CustomResourceOptions,
  ): Machine {
    const labels = { "social-coop/host": name };
    const firewall = new hcloud.Firewall(
      `${name}-firewall`,
      {
        name: `${name}-firewall`,
        labels,
        rules: inboundTcpPorts(args.roles).map((port) => ({
          direction: "in",
          protocol: "tcp",
          port: String(port),
          sourceIps: [...ANYWHERE],
          description: `tcp ${port}`,
        })),
      },
      childOpts,
    );
    const server = new hcloud.Server(
      `${name}-server`,
      {
        name,
        image: "debian-12",
        serverType: args.size,
        location: args.location,
        sshKeys: args.sshKeyRefs,
        firewallIds: [firewall.id.apply(Number)],
        userData,
        labels,
        publicNets: [{ ipv4Enabled: true, ipv6Enabled: true }],
        deleteProtection: args.protect,
        rebuildProtection: args.protect,
      },
      serverOpts,
    );
    const volume = new hcloud.Volume(
      `${name}-data`,
      {
        name: `${name}-data`,
        size: args.volumeGb,
        location: args.location,
        format: "ext4",
        labels,
        deleteProtection: args.protect,
      },
      volumeOpts,
    );
    const attached = new hcloud.VolumeAttachment(
      `${name}-data-attachment`,
      { volumeId: volume.id.apply(Number), serverId: server.id.apply(Number), automount: false },
      childOpts,
    );
    return { ipv4: server.ipv4Address, ipv6: server.ipv6Address, attached };
  }

  private digitalOcean(
    name: string,
    args: HostArgs,
    userData: pulumi.Output<string>,
    childOpts: pulumi.CustomResourceOptions,
    serverOpts: pulumi.CustomResourceOptions,
    volumeOpts: pulumi.CustomResourceOptions,
  ): Machine {
    const tags = ["social-coop", name];
    const droplet = new digitalocean.Droplet(
      `${name}-server`,
      {
        name,
        image: "debian-12-x64",
        size: args.size,
        region: args.location,
        sshKeys: args.sshKeyRefs,
        userData,
        ipv6: true,
        monitoring: true,
        tags,
      },
      serverOpts,
    );
    const volume = new digitalocean.Volume(
      `${name}-data`,
      {
        name: `${name}-data`,
        region: args.location,
        size: args.volumeGb,
        initialFilesystemType: "ext4",
        description: `data volume of ${name}, mounted at /srv`,
        tags,
      },
      volumeOpts,
    );
    const attached = new digitalocean.VolumeAttachment(
      `${name}-data-attachment`,
      { dropletId: droplet.id.apply(Number), volumeId: volume.id },
      childOpts,
    );
    new digitalocean.Firewall(
      `${name}-firewall`,
      {
        name: `${name}-firewall`,
        dropletIds: [droplet.id.apply(Number)],
        inboundRules: inboundTcpPorts(args.roles).map((port) => ({
          protocol: "tcp",
          portRange: String(port),
          sourceAddresses: [...ANYWHERE],
        })),
        // A DigitalOcean firewall without outbound rules blocks all egress (apt, backups, federation).
        outboundRules: [
          { protocol: "tcp", portRange: "1-65535", destinationAddresses: [...ANYWHERE] },
          { protocol: "udp", portRange: "1-65535", destinationAddresses: [...ANYWHERE] },
          { protocol: "icmp", destinationAddresses: [...ANYWHERE] },
        ],
        // No `tags`: a firewall applies to every droplet carrying any of its tags, and `social-coop` is on
        // every droplet of every stack, so one host's rules would reach the others. Its own droplet only.
      },
      childOpts,
    );
    return { ipv4: droplet.ipv4Address, ipv6: droplet.ipv6Address, attached };
  }
}
