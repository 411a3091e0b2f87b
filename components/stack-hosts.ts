// The stack's hosts from its config: SSH keys once per provider, then one Host per configured host.
// Kept out of index.ts so the program file stays a short list of components.
import * as pulumi from "@pulumi/pulumi";
import type { HostName, StackConfig } from "../config";
import type { HostConfig, Provider, Role } from "../src/config/schema";
import { publicKeyFromPrivateKey } from "../src/ssh/openssh-key";
import { Host } from "./host";
import { LocalNetwork, type LocalNetworkRef, localHostNumber, subnetAddress } from "./local-cloud";
import { Providers } from "./providers";
import { SshKeys } from "./ssh-keys";

export interface StackHosts {
  readonly hosts: ReadonlyMap<HostName, Host>;
  /** The host serving each role, for DNS. */
  readonly roleHosts: ReadonlyMap<Role, Host>;
}

export function declareHosts(cfg: StackConfig, providers: Providers): StackHosts {
  const deployKey = pulumi.output(cfg.secrets.sshPrivateKey ?? "");
  // The public half is not sensitive; unsecret it so user-data and key uploads stay readable in diffs.
  const deployPublicKey = pulumi.unsecret(deployKey.apply(publicKeyFromPrivateKey));
  const authorizedKeys: pulumi.Input<string>[] = [...cfg.sshKeys, deployPublicKey];

  const hostConfigs: [HostName, HostConfig][] = [["primary", cfg.hosts.primary]];
  if (cfg.hosts.secondary) hostConfigs.push(["secondary", cfg.hosts.secondary]);

  // Local machines take their keys from user-data alone; the clouds also keep a copy per project.
  const keys = new Map<Provider, SshKeys>();
  for (const provider of new Set(hostConfigs.map(([, h]) => h.provider))) {
    if (provider === "local") continue;
    const opts = { providers: [providers.cloud(provider)] };
    keys.set(provider, new SshKeys(`${cfg.stackName}-${provider}-keys`, { provider, publicKeys: authorizedKeys }, opts));
  }
  const lc = cfg.localCloud;
  const network: LocalNetworkRef | undefined = !hostConfigs.some(([, h]) => h.provider === "local")
    ? undefined
    : lc.joinNetwork
      ? { name: lc.network }
      : new LocalNetwork(`${cfg.stackName}-network`, lc);

  const hosts = new Map<HostName, Host>();
  const roleHosts = new Map<Role, Host>();
  for (const [hostName, h] of hostConfigs) {
    const sshKeyRefs = keys.get(h.provider)?.refs ?? [];
    const local = network && {
      network,
      address4: subnetAddress(lc.subnet4, localHostNumber(lc.firstHost, hostName)),
      address6: subnetAddress(lc.subnet6, localHostNumber(lc.firstHost, hostName)),
    };
    // Local machines are rehearsals: never protected, so `pulumi destroy` always cleans up.
    const protect = cfg.stackRole === "prod" && h.provider !== "local";
    const host = new Host(
      `${cfg.stackName}-${hostName}`,
      { ...h, adminUser: cfg.adminUser, authorizedKeys, sshKeyRefs, deployPrivateKey: deployKey, protect, local },
      h.provider === "local" ? {} : { providers: [providers.cloud(h.provider)] },
    );
    hosts.set(hostName, host);
    for (const role of h.roles) roleHosts.set(role, host);
  }
  return { hosts, roleHosts };
}
