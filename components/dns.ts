// Dns: the Cloudflare records this stack owns, and only those.
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import type { Role, StackRole } from "../src/config/schema";

export interface DnsTarget {
  readonly ipv4: pulumi.Input<string>;
  readonly ipv6: pulumi.Input<string>;
}

export interface DnsArgs {
  /** Cloudflare zone ID of `domain`. */
  readonly zoneId: string;
  /** The zone apex, e.g. social.coop. */
  readonly domain: string;
  readonly stackRole: StackRole;
  /** The host serving each role of this stack. */
  readonly roleHosts: ReadonlyMap<Role, DnsTarget>;
}

export interface OwnedName {
  /** Fully qualified, no trailing dot: Cloudflare's v5+ API reports names that way, so anything else drifts. */
  readonly fqdn: string;
  /** Short label used in resource names: `apex`, `alpha`, `town`, `matrix`. */
  readonly label: string;
  readonly role: Role;
}

/**
 * The names a stack may own. Each stack owns a fixed, disjoint set, so one stack can never
 * overwrite another's records: prod the apex and matrix, alpha and town their own subdomain.
 */
export function ownedNames(domain: string, stackRole: StackRole, roles: ReadonlySet<Role>): OwnedName[] {
  const app: Role = roles.has("hometown") ? "hometown" : "mastodon";
  if (stackRole !== "prod") return [{ fqdn: `${stackRole}.${domain}`, label: stackRole, role: app }];
  const names: OwnedName[] = [{ fqdn: domain, label: "apex", role: app }];
  if (roles.has("matrix")) names.push({ fqdn: `matrix.${domain}`, label: "matrix", role: "matrix" });
  return names;
}

/** Short TTL so a failover to the spare propagates within minutes. */
export const RECORD_TTL = 300;

export class Dns extends pulumi.ComponentResource {
  /** The fully qualified names this stack serves. */
  public readonly names: string[];

  constructor(name: string, args: DnsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("socialcoop:dns:Dns", name, {}, opts);
    const owned = ownedNames(args.domain, args.stackRole, new Set(args.roleHosts.keys()));
    for (const n of owned) {
      const target = args.roleHosts.get(n.role);
      if (!target) throw new Error(`dns: no host serves role "${n.role}" for ${n.fqdn}`);
      for (const [type, content] of [["A", target.ipv4], ["AAAA", target.ipv6]] as const) {
        new cloudflare.DnsRecord(
          `${name}-${n.label}-${type.toLowerCase()}`,
          {
            zoneId: args.zoneId,
            name: n.fqdn,
            type,
            content,
            ttl: RECORD_TTL,
            // Not proxied: Mastodon's streaming API and Matrix federation need direct TLS to the host.
            proxied: false,
            comment: `managed by the social.coop Pulumi program (stack ${args.stackRole})`,
          },
          { parent: this },
        );
      }
    }
    this.names = owned.map((n) => n.fqdn);
    this.registerOutputs({ names: this.names });
  }
}
