// Explicit provider instances, so each cloud token comes from this stack's secrets and nowhere else.
import * as cloudflare from "@pulumi/cloudflare";
import * as digitalocean from "@pulumi/digitalocean";
import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import type { StackConfig } from "../config";
import { Provider, isLocalStack } from "../src/config/schema";

export class Providers {
  /** Undefined on local stacks, which never call Cloudflare. */
  public readonly cloudflare?: cloudflare.Provider;
  private readonly clouds = new Map<Provider, pulumi.ProviderResource>();

  constructor(cfg: StackConfig) {
    // The config parser has already required the token of every provider a host uses.
    for (const h of [cfg.hosts.primary, cfg.hosts.secondary]) {
      if (!h || h.provider === "local" || this.clouds.has(h.provider)) continue;
      this.clouds.set(
        h.provider,
        h.provider === "hcloud"
          ? new hcloud.Provider("hcloud", { token: cfg.secrets.hcloudToken })
          : new digitalocean.Provider("digitalocean", { token: cfg.secrets.digitaloceanToken }),
      );
    }
    if (!isLocalStack(cfg)) this.cloudflare = new cloudflare.Provider("cloudflare", { apiToken: cfg.secrets.cloudflareApiToken });
  }

  cloud(provider: Provider): pulumi.ProviderResource {
    const p = this.clouds.get(provider);
    if (!p) throw new Error(`no ${provider} provider: no host in this stack uses it`);
    return p;
  }
}
