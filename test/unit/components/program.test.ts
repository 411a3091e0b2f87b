import { beforeAll, describe, expect, it } from "vitest";
import type { OfflineRun } from "../../../src/plan/offline";
import { isSecretValue } from "../../../src/plan/offline";
import { renderTable } from "../../../src/plan/table";
import { OPERATOR_KEY, DEPLOY_KEY, SECRET_VALUES, alphaConfig, prodConfig } from "../../support/stack-config";
import { ofType, one, planFor, plainStrings } from "../../support/offline";

const ANY = ["0.0.0.0/0", "::/0"];
const hcloudRule = (port: number) => ({ direction: "in", protocol: "tcp", port: String(port), sourceIps: ANY, description: `tcp ${port}` });
const doRule = (port: number) => ({ protocol: "tcp", portRange: String(port), sourceAddresses: ANY });

/** prod with the providers swapped: DigitalOcean primary (mastodon+matrix), Hetzner secondary (spare). */
function swappedProd() {
  const cfg = prodConfig();
  cfg.hosts = {
    primary: { provider: "digitalocean", location: "fra1", size: "s-4vcpu-8gb", volumeGb: 200, roles: ["mastodon", "matrix"] },
    secondary: { provider: "hcloud", location: "hel1", size: "cpx31", volumeGb: 250, roles: ["spare"] },
  };
  return cfg;
}

let prod: OfflineRun;
let swapped: OfflineRun;
let alpha: OfflineRun;

beforeAll(async () => {
  prod = await planFor(prodConfig());
  swapped = await planFor(swappedProd());
  alpha = await planFor(alphaConfig());
});

describe("hosts on Hetzner Cloud", () => {
  it("a Hetzner host has its server, firewall, volume, attachment and the stack's SSH keys", () => {
    for (const [run, host] of [[prod, "prod-primary"], [swapped, "prod-secondary"]] as const) {
      const children = run.resources.filter((r) => r.parent === host).map((r) => r.type).sort();
      expect(children).toEqual(
        [
          "command:remote:Command",
          "command:remote:Command",
          "command:remote:CopyToRemote",
          "hcloud:index/firewall:Firewall",
          "hcloud:index/server:Server",
          "hcloud:index/volume:Volume",
          "hcloud:index/volumeAttachment:VolumeAttachment",
        ].sort(),
      );
      expect(ofType(run, "hcloud:index/sshKey:SshKey").map((k) => k.inputs.publicKey)).toEqual([
        OPERATOR_KEY,
        DEPLOY_KEY.publicKey.split(" ").slice(0, 2).join(" "),
      ]);
    }
  });

  it("the Hetzner firewall opens tcp 22, 80, 443 and 8448 on the matrix host, and nothing else", () => {
    expect(one(prod, "hcloud:index/firewall:Firewall", "prod-primary-firewall").inputs.rules).toEqual([22, 80, 443, 8448].map(hcloudRule));
    expect(one(swapped, "hcloud:index/firewall:Firewall", "prod-secondary-firewall").inputs.rules).toEqual([22, 80, 443].map(hcloudRule));
  });

  it("the Hetzner server runs Debian 12 behind that firewall with the configured size and place", () => {
    const server = one(prod, "hcloud:index/server:Server", "prod-primary-server");
    const firewall = one(prod, "hcloud:index/firewall:Firewall", "prod-primary-firewall");
    expect(server.inputs).toMatchObject({ image: "debian-12", serverType: "cpx41", location: "fsn1", deleteProtection: true });
    expect(server.inputs.firewallIds).toHaveLength(1);
    expect(server.dependsOn).toContain(firewall.name);
    expect(one(prod, "hcloud:index/volume:Volume", "prod-primary-data").inputs).toMatchObject({ size: 200, location: "fsn1", format: "ext4" });
  });
});

describe("every host, before any command runs on it", () => {
  it("waits for cloud-init and its volume (ready after the attachment), then syncs the authorized keys", () => {
    for (const [host, attachment] of [["prod-primary", "prod-primary-data-attachment"], ["prod-secondary", "prod-secondary-data-attachment"]]) {
      const ready = one(prod, "command:remote:Command", `${host}-ready`);
      expect(ready.dependsOn).toContain(attachment);
      expect(ready.inputs.environment).toEqual({ COOP_HOST_NAME: host });
      expect(one(prod, "command:remote:Command", `${host}-authorized-keys`).dependsOn).toContain(`${host}-ready`);
    }
  });

  it("each host uploads the scripts once, only after it is ready and has its keys", () => {
    for (const host of ["prod-primary", "prod-secondary"]) {
      expect(one(prod, "command:remote:CopyToRemote", `${host}-scripts`).dependsOn).toContain(`${host}-authorized-keys`);
    }
  });
});

describe("the database on the app host", () => {
  it("installs PostgreSQL and Redis on the app host from its uploaded scripts, before any backup install", () => {
    const install = one(prod, "command:remote:Command", "prod-database-install");
    expect(install.parent).toBe("prod-database");
    expect(install.dependsOn).toContain("prod-primary-scripts");
    expect(install.inputs.environment).toMatchObject({ COOP_PG_VERSION: "15" });
    expect(String(install.inputs.create)).toMatch(/bash "\$COOP_SCRIPTS_FROM"\/install-database.sh$/);
    expect(one(prod, "command:remote:Command", "prod-backup-db-install").dependsOn).toContain("prod-database-install");
  });

  it("a PostgreSQL major bump does not re-run the install (the upgrade chain moves the cluster)", () => {
    expect(one(prod, "command:remote:Command", "prod-database-install").ignoreChanges).toContain("environment.COOP_PG_VERSION");
  });
});

describe("hosts on DigitalOcean", () => {
  it("a DigitalOcean host has its droplet, firewall, volume and attachment", () => {
    for (const [run, host] of [[prod, "prod-secondary"], [swapped, "prod-primary"]] as const) {
      const children = run.resources.filter((r) => r.parent === host).map((r) => r.type).sort();
      expect(children).toEqual(
        [
          "command:remote:Command",
          "command:remote:Command",
          "command:remote:CopyToRemote",
          "digitalocean:index/droplet:Droplet",
          "digitalocean:index/firewall:Firewall",
          "digitalocean:index/volume:Volume",
          "digitalocean:index/volumeAttachment:VolumeAttachment",
        ].sort(),
      );
      expect(ofType(run, "digitalocean:index/sshKey:SshKey")).toHaveLength(2);
    }
  });

  it("the DigitalOcean firewall opens tcp 22, 80, 443 (+8448 for matrix) inbound and allows egress", () => {
    const spare = one(prod, "digitalocean:index/firewall:Firewall", "prod-secondary-firewall");
    expect(spare.inputs.inboundRules).toEqual([22, 80, 443].map(doRule));
    expect(spare.inputs.outboundRules).toEqual([
      { protocol: "tcp", portRange: "1-65535", destinationAddresses: ANY },
      { protocol: "udp", portRange: "1-65535", destinationAddresses: ANY },
      { protocol: "icmp", destinationAddresses: ANY },
    ]);
    const matrix = one(swapped, "digitalocean:index/firewall:Firewall", "prod-primary-firewall");
    expect(matrix.inputs.inboundRules).toEqual([22, 80, 443, 8448].map(doRule));
  });

  it("each DigitalOcean firewall attaches to its own droplet only, never through a shared tag", async () => {
    const cfg = prodConfig();
    cfg.hosts = {
      primary: { provider: "digitalocean", location: "fra1", size: "s-4vcpu-8gb", volumeGb: 200, roles: ["mastodon", "matrix"] },
      secondary: { provider: "digitalocean", location: "ams3", size: "s-4vcpu-8gb", volumeGb: 250, roles: ["spare"] },
    };
    const both = await planFor(cfg);
    const dropletIds = new Set<unknown>();
    for (const host of ["prod-primary", "prod-secondary"]) {
      const firewall = one(both, "digitalocean:index/firewall:Firewall", `${host}-firewall`);
      // The attachment names the host's droplet by ID too: the firewall must name exactly that one.
      const droplet = one(both, "digitalocean:index/volumeAttachment:VolumeAttachment", `${host}-data-attachment`).inputs.dropletId;
      expect(typeof droplet).toBe("number");
      expect(firewall.inputs.dropletIds, host).toEqual([droplet]);
      expect(firewall.inputs.tags, host).toBeUndefined();
      dropletIds.add(droplet);
    }
    expect(dropletIds.size).toBe(2);
    // The droplets still carry the shared tag (for the dashboard); only firewalls must not select by it.
    for (const d of ofType(both, "digitalocean:index/droplet:Droplet")) expect(d.inputs.tags).toContain("social-coop");
  });

  it("the droplet runs Debian 12 with IPv6 in the configured region", () => {
    expect(one(prod, "digitalocean:index/droplet:Droplet", "prod-secondary-server").inputs).toMatchObject({
      image: "debian-12-x64",
      region: "ams3",
      size: "s-4vcpu-8gb",
      ipv6: true,
    });
  });
});

describe("resource tree", () => {
  it("every cloud resource is the child of one of our components", () => {
    for (const run of [prod, swapped, alpha]) {
      const custom = run.resources.filter((r) => r.custom && !r.type.startsWith("pulumi:providers:"));
      expect(custom.length).toBeGreaterThanOrEqual(8);
      for (const r of custom) expect(r.parentType, `${r.type} ${r.name}`).toMatch(/^socialcoop:/);
    }
  });

  it("prod protects servers and data volumes from deletion; alpha does not", () => {
    const prodData = prod.resources.filter((r) => /-(server|data)$/.test(r.name));
    expect(prodData).toHaveLength(4);
    for (const r of prodData) expect(r.protect, r.name).toBe(true);
    for (const r of alpha.resources.filter((x) => /-(server|data)$/.test(x.name))) expect(r.protect, r.name).toBe(false);
  });

  it("servers ignore later user-data changes, which would otherwise replace them", () => {
    for (const r of [...ofType(prod, "hcloud:index/server:Server"), ...ofType(prod, "digitalocean:index/droplet:Droplet")]) {
      expect(r.ignoreChanges).toEqual(expect.arrayContaining(["userData", "sshKeys"]));
    }
  });
});

describe("DNS", () => {
  const records = (run: OfflineRun) =>
    ofType(run, "cloudflare:index/dnsRecord:DnsRecord").map((r) => `${String(r.inputs.type)} ${String(r.inputs.name)} ${String(r.inputs.content)}`).sort();

  it("prod owns the apex and matrix, pointing at the primary, and nothing else", () => {
    const ip4 = prod.outputs.primaryIpv4 as string;
    const ip6 = prod.outputs.primaryIpv6 as string;
    expect(ip4).not.toBe(prod.outputs.secondaryIpv4);
    expect(records(prod)).toEqual(
      [`A social.coop ${ip4}`, `AAAA social.coop ${ip6}`, `A matrix.social.coop ${ip4}`, `AAAA matrix.social.coop ${ip6}`].sort(),
    );
  });

  it("alpha owns only alpha.social.coop, pointing at its own host", () => {
    const ip4 = alpha.outputs.primaryIpv4 as string;
    expect(records(alpha)).toEqual([`A alpha.social.coop ${ip4}`, `AAAA alpha.social.coop ${alpha.outputs.primaryIpv6 as string}`].sort());
  });

  it("records are not proxied, carry the zone ID and a short TTL", () => {
    for (const r of ofType(prod, "cloudflare:index/dnsRecord:DnsRecord")) {
      expect(r.inputs).toMatchObject({ proxied: false, zoneId: "0123456789abcdef0123456789abcdef", ttl: 300 });
    }
  });
});

describe("secrets stay secret", () => {
  const secretInputs: [string, string][] = [
    ["pulumi:providers:hcloud", "token"],
    ["pulumi:providers:digitalocean", "token"],
    ["pulumi:providers:cloudflare", "apiToken"],
  ];

  it("provider tokens reach the providers as secrets", () => {
    for (const [type, key] of secretInputs) {
      const p = ofType(prod, type);
      expect(p, type).toHaveLength(1);
      expect(isSecretValue(p[0].inputs[key]), `${type}.${key}`).toBe(true);
    }
  });

  it("no secret value appears in plain text in any recorded input", () => {
    for (const run of [prod, swapped, alpha]) {
      const plain = run.resources.flatMap((r) => plainStrings(r.inputs)).join("\n");
      expect(plain.length).toBeGreaterThan(1000);
      for (const [key, value] of Object.entries(SECRET_VALUES)) {
        // A PEM key is checked by its base64 body lines, which are what a leak would show.
        const needles = key === "sshPrivateKey" ? value.split("\n").filter((l) => l.length > 40) : [value];
        for (const n of needles) expect(plain.includes(n), `${key} leaked`).toBe(false);
      }
    }
  });

  it("the plan table shows secrets as [secret] and never their values", () => {
    const table = renderTable(prod.resources);
    expect(table).toContain("token=[secret]");
    expect(table).toContain("apiToken=[secret]");
    for (const value of Object.values(SECRET_VALUES)) expect(table).not.toContain(value.split("\n")[1] ?? value);
  });
});
