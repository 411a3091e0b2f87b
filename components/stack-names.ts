// The stack's names: Cloudflare records on cloud stacks, /etc/hosts entries on local ones.
import type { StackConfig } from "../config";
import { isLocalStack } from "../src/config/schema";
import { Dns, ownedNames } from "./dns";
import { LocalDns } from "./local-dns";
import type { Providers } from "./providers";
import type { StackHosts } from "./stack-hosts";

/** Declares the names and returns them, fully qualified. */
export function declareNames(cfg: StackConfig, { hosts, roleHosts }: StackHosts, providers: Providers): string[] {
  if (!isLocalStack(cfg)) {
    const opts = providers.cloudflare ? { providers: [providers.cloudflare] } : {};
    const dns = new Dns(
      `${cfg.stackName}-dns`,
      { zoneId: cfg.cloudflareZoneId, domain: cfg.domain, stackRole: cfg.stackRole, roleHosts, apiToken: cfg.secrets.cloudflareApiToken },
      opts,
    );
    return dns.names;
  }
  const owned = ownedNames(cfg.domain, cfg.stackRole, new Set(roleHosts.keys()));
  const records = owned.map((n) => {
    const host = roleHosts.get(n.role);
    if (!host) throw new Error(`dns: no host serves role "${n.role}" for ${n.fqdn}`);
    return { fqdn: n.fqdn, host };
  });
  new LocalDns(`${cfg.stackName}-names`, { records, hosts: [...hosts.values()] });
  return owned.map((n) => n.fqdn);
}
