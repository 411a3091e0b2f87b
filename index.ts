// social.coop: stack config → hosts → DNS → stack outputs.
import * as pulumi from "@pulumi/pulumi";
import { HostName, loadStackConfig } from "./config";
import { Dns, DnsTarget } from "./components/dns";
import { Host } from "./components/host";
import { Providers } from "./components/providers";
import { SshKeys } from "./components/ssh-keys";
import type { HostConfig, Provider, Role } from "./src/config/schema";
import { publicKeyFromPrivateKey } from "./src/ssh/openssh-key";

const cfg = loadStackConfig();
const providers = new Providers(cfg);
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

const dns = new Dns(
  `${cfg.stackName}-dns`,
  { zoneId: cfg.cloudflareZoneId, domain: cfg.domain, stackRole: cfg.stackRole, roleHosts },
  { providers: [providers.cloudflare] },
);

export const primaryIpv4 = hosts.get("primary")?.ipv4;
export const primaryIpv6 = hosts.get("primary")?.ipv6;
export const secondaryIpv4 = hosts.get("secondary")?.ipv4;
export const secondaryIpv6 = hosts.get("secondary")?.ipv6;
export const names = dns.names;
