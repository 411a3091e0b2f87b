// One provider's copy of the public keys that may log in to this stack's hosts.
import * as digitalocean from "@pulumi/digitalocean";
import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import type { Provider } from "../src/config/schema";

export interface SshKeysArgs {
  /** Which cloud the keys are uploaded to. */
  readonly provider: Provider;
  /** Public key lines (operators' keys and the deploy key). */
  readonly publicKeys: pulumi.Input<string>[];
}

/**
 * Hetzner and DigitalOcean refuse the same key twice in one project, so keys are uploaded once per
 * provider per stack (not once per host), and each stack should live in its own cloud project.
 */
export class SshKeys extends pulumi.ComponentResource {
  /** Provider-side references: Hetzner key IDs, DigitalOcean fingerprints. */
  public readonly refs: pulumi.Output<string[]>;

  constructor(name: string, args: SshKeysArgs, opts?: pulumi.ComponentResourceOptions) {
    super("socialcoop:host:SshKeys", name, {}, opts);
    const refs = args.publicKeys.map((publicKey, i) => {
      const keyName = `${name}-${i}`;
      if (args.provider === "hcloud") {
        return new hcloud.SshKey(keyName, { name: keyName, publicKey }, { parent: this }).id;
      }
      return new digitalocean.SshKey(keyName, { name: keyName, publicKey }, { parent: this }).fingerprint;
    });
    this.refs = pulumi.all(refs);
    this.registerOutputs({ refs: this.refs });
  }
}
