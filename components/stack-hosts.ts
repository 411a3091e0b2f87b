// The stack's hosts from its config: SSH keys once per provider, then one Host per configured host.
// Kept out of index.ts so the program file stays a short list of components.
import * as pulumi from "@pulumi/pulumi";
import type { HostName, StackConfig } from "../config";
import type { HostConfig, Provider, Role } from "../src/config/schema";
import { publicKeyFromPrivateKey } from "../src/ssh/openssh-key";
import type { DnsTarget } from "./dns";
import { Host } from "./host";
import { Providers } from "./providers";
import { SshKeys } from "./ssh-keys";

export interface StackHosts {
  readonly hosts: ReadonlyMap<HostName, Host>;
  /** The host serving each role, for DNS. */
  readonly roleHosts: ReadonlyMap<Role, DnsTarget>;
}

export function declareHosts(cfg: StackConfig, providers: Providers): StackHosts {
  const deployKey = pulumi.output(cfg.secrets.sshPrivateKey ?? "");
  // The public half is not sensitive; unsecret it so user-data and key uploads stay readable in diffs.
  const deployPublicKey = pulumi.unsecret(deployKey.apply(publicKeyFromPrivateKey));
  const authorizedKeys: pulumi.Input<string>[] = [...cfg.sshKeys, deployPublicKey];

  const hostConfigs: [HostName, HostConfig][] = [["primary", cfg.hosts.primary]];
  if (cfg.hosts.secondary) hostConfigs.push(["secondary", cfg.hosts.secondary]);

  const keys = new Map<Provider, SshKeys>();
  for (const provider of new Set(hostConfigs.map(([, h]) => h.provider))) {
    const opts = { providers: [providers.cloud(provider)] };
    keys.set(provider, new SshKeys(`${cfg.stackName}-${provider}-keys`, { provider, publicKeys: authorizedKeys }, opts));
  }

  const hosts = new Map<HostName, Host>();
  const roleHosts = new Map<Role, DnsTarget>();
  for (const [hostName, h] of hostConfigs) {
    const sshKeyRefs = (keys.get(h.provider) as SshKeys).refs;
    const host = new Host(
      `${cfg.stackName}-${hostName}`,
      { ...h, adminUser: cfg.adminUser, authorizedKeys, sshKeyRefs, deployPrivateKey: deployKey, protect: cfg.stackRole === "prod" },
      { providers: [providers.cloud(h.provider)] },
    );
    hosts.set(hostName, host);
    for (const role of h.roles) roleHosts.set(role, host);
  }
  return { hosts, roleHosts };
}
