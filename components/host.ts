// Host: a hardened Debian 12 VPS with a data volume at /srv, on Hetzner Cloud or DigitalOcean.
import * as digitalocean from "@pulumi/digitalocean";
import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import type { Provider, Role } from "../src/config/schema";
import { renderUserData } from "./lib/cloud-init";
import { ANYWHERE, inboundTcpPorts } from "./lib/firewall";

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
}

/** What @pulumi/command needs to reach a host. */
export interface HostConnection {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly privateKey: string;
}

/** How each provider names an attached volume under /dev/disk/by-id. */
export const DATA_DEVICE_GLOB: Record<Provider, string> = {
  hcloud: "/dev/disk/by-id/scsi-0HC_Volume_*",
  digitalocean: "/dev/disk/by-id/scsi-0DO_Volume_*",
};

interface Machine {
  readonly ipv4: pulumi.Output<string>;
  readonly ipv6: pulumi.Output<string>;
}

export class Host extends pulumi.ComponentResource {
  public readonly ipv4: pulumi.Output<string>;
  public readonly ipv6: pulumi.Output<string>;
  /** Secret: it holds the deploy key. */
  public readonly connection: pulumi.Output<HostConnection>;

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
    const serverOpts: pulumi.CustomResourceOptions = {
      parent: this,
      protect: args.protect,
      ignoreChanges: ["userData", "sshKeys", "image"],
    };
    const volumeOpts: pulumi.CustomResourceOptions = { parent: this, protect: args.protect };
    const machine =
      args.provider === "hcloud"
        ? this.hetzner(name, args, userData, childOpts, serverOpts, volumeOpts)
        : this.digitalOcean(name, args, userData, childOpts, serverOpts, volumeOpts);

    this.ipv4 = machine.ipv4;
    this.ipv6 = machine.ipv6;
    this.connection = pulumi.secret(
      pulumi.all([machine.ipv4, args.deployPrivateKey]).apply(([host, privateKey]) => ({
        host,
        port: 22,
        user: args.adminUser,
        privateKey,
      })),
    );
    this.registerOutputs({ ipv4: this.ipv4, ipv6: this.ipv6, connection: this.connection });
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
    new hcloud.VolumeAttachment(
      `${name}-data-attachment`,
      { volumeId: volume.id.apply(Number), serverId: server.id.apply(Number), automount: false },
      childOpts,
    );
    return { ipv4: server.ipv4Address, ipv6: server.ipv6Address };
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
    new digitalocean.VolumeAttachment(
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
        tags,
      },
      childOpts,
    );
    return { ipv4: droplet.ipv4Address, ipv6: droplet.ipv6Address };
  }
}
