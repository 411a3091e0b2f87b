// Names on a local stack: no Cloudflare; every host resolves the stack's names to the host serving
// them, through a managed block in /etc/hosts (rewritten whole, so a moved name never lingers).
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { Host } from "./host";

export interface LocalDnsArgs {
  /** Each name the stack serves, with the host that serves it. */
  readonly records: readonly { readonly fqdn: string; readonly host: Host }[];
  /** The hosts that must resolve them. */
  readonly hosts: readonly Host[];
}

export const HOSTS_FILE_COMMAND = [
  "set -eu",
  "tmp=$(sudo mktemp /etc/hosts.coop.XXXXXX)",
  "{ sed '/^# BEGIN social.coop stack names/,/^# END social.coop stack names/d' /etc/hosts",
  '  printf "# BEGIN social.coop stack names\\n%s\\n# END social.coop stack names\\n" "$COOP_HOSTS_ENTRIES"; } | sudo tee "$tmp" >/dev/null',
  'sudo chmod 0644 "$tmp" && sudo mv "$tmp" /etc/hosts',
  'echo "names: $(printf "%s\\n" "$COOP_HOSTS_ENTRIES" | wc -l) entries"',
].join("\n");

export class LocalDns extends pulumi.ComponentResource {
  constructor(name: string, args: LocalDnsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("socialcoop:dns:LocalDns", name, {}, opts);
    const entries = pulumi
      .all(args.records.map((r) => pulumi.all([r.host.ipv4, r.host.ipv6]).apply(([v4, v6]) => `${v4} ${r.fqdn}\n${v6} ${r.fqdn}`)))
      .apply((lines) => lines.join("\n"));
    args.hosts.forEach((host, i) => {
      new command.remote.Command(
        `${name}-${i}`,
        { connection: host.connection, create: HOSTS_FILE_COMMAND, environment: { COOP_HOSTS_ENTRIES: entries }, addPreviousOutputInEnv: false },
        { parent: this, dependsOn: [host.ready] },
      );
    });
    this.registerOutputs({});
  }
}
