// MastodonApp: the instance on its host (Mastodon or Hometown): the release layout, the instance's own
// secrets, the first release, the nginx site with the maintenance switch, the TLS certificate (certbot,
// DNS-01), the processes as systemd units, /health over HTTPS.
// Later releases are the Upgrade chain's. On local stacks the app is the fixture app (DESIGN 9, 15),
// through the same adapter interface, its source handed over on stdin (the machines have no route out).
import * as command from "@pulumi/command";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { StackConfig } from "../config";
import { MailConfig, isLocalStack } from "../src/config/schema";
import type { Flavor } from "../src/upgrade/path";
import type { HostConnection } from "./host";
import { HostScripts, scriptEnvironment, scriptsHash, sudoScript } from "./lib/script";

/** The fixture release a local stack deploys first (tools/fixture-app-source.ts builds the repository). */
export const FIXTURE_FIRST_TAG = "v1.2.0";

/** The same release as a hometown-flavored stack deploys it (its Hometown-style tag, make-repo.ts). */
export function fixtureFirstTag(flavor: Flavor): string {
  return flavor === "hometown" ? `${FIXTURE_FIRST_TAG}+hometown-1.0.0` : FIXTURE_FIRST_TAG;
}
const FIXTURE_SOURCE_TOOL = path.join(__dirname, "..", "tools", "fixture-app-source.ts");
const FIXTURE_FILES = [
  FIXTURE_SOURCE_TOOL,
  path.join(__dirname, "..", "test", "fixtures", "app", "make-repo.ts"),
  path.join(__dirname, "..", "test", "fixtures", "app", "adapter.sh"),
  path.join(__dirname, "..", "test", "fixtures", "app", "server.js"),
];

/** Where deploy-app.sh unpacks the fixture's source (COOP_APP_SOURCE_DIR's default). */
const FIXTURE_SOURCE_DIR = "/var/lib/coop/app-source";

/** What the fixture adapter needs on a host, for the first deploy and for upgrade-app.sh alike. */
export const FIXTURE_APP_PARAMS = {
  appDbUser: "mastodon",
  appPort: "3000",
  appStreamingPort: "4000",
} as const;

/** The fixture as upgrade-app.sh finds it once the first deploy unpacked it. */
export const FIXTURE_UPGRADE_PARAMS = {
  ...FIXTURE_APP_PARAMS,
  // The fixture answers within a second of starting; Mastodon's Puma gets the script's 120 s.
  healthTimeout: "20",
  appAdapter: `${FIXTURE_SOURCE_DIR}/adapter.sh`,
  appRepo: `${FIXTURE_SOURCE_DIR}/repo.git`,
} as const;

/** The app's systemd units as the adapter names them (app_unit_name): Mastodon's, or the fixture's. */
export function appUnitNames(fixture: boolean): string {
  const prefix = fixture ? "coop-fixture-" : "mastodon-";
  return ["web", "streaming", "sidekiq"].map((role) => `${prefix}${role}.service`).join(" ");
}

/** sha256 over the fixture's sources, so a change to the fixture app rebuilds what the host gets. */
function fixtureHash(): string {
  const h = createHash("sha256");
  for (const f of FIXTURE_FILES) h.update(`${path.basename(f)}\0`).update(fs.readFileSync(f));
  return h.digest("hex");
}

/** How the app host gets its certificate (scripts/lib/tls.sh); none serves plain HTTP. */
export type TlsArgs =
  | { readonly dns: "cloudflare"; readonly acmeServer: string; readonly email: string; readonly cloudflareApiToken: pulumi.Input<string> }
  | {
      readonly dns: "challtestsrv";
      readonly acmeServer: string;
      readonly email: string;
      readonly dnsApi: string;
      /** The test ACME server's listener CA (PEM) and where it publishes its issuing root. */
      readonly acmeCa?: string;
      readonly rootsUrl?: string;
    };

/** The scripts environment of a TLS setting: the token stays the secret Output it came as. */
function tlsParams(tls: TlsArgs | undefined): Record<string, pulumi.Input<string> | undefined> {
  if (!tls) return {};
  const common = { acmeDns: tls.dns, acmeServer: tls.acmeServer, acmeEmail: tls.email };
  if (tls.dns === "cloudflare") return { ...common, cloudflareApiToken: tls.cloudflareApiToken };
  return {
    ...common,
    acmeDnsApi: tls.dnsApi,
    acmeCaB64: tls.acmeCa === undefined ? undefined : Buffer.from(tls.acmeCa).toString("base64"),
    acmeRootsUrl: tls.rootsUrl,
  };
}

/** The scripts environment of the mail setting; the password stays the secret Output it came as. */
function mailParams(mail: MailConfig | undefined, password: pulumi.Input<string> | undefined): Record<string, pulumi.Input<string> | undefined> {
  if (!mail) return {};
  return {
    mailSmtpUrl: mail.smtpUrl,
    mailFrom: mail.from,
    mailSmtpStartTls: String(mail.smtpStartTls),
    mailSmtpLogin: mail.smtpLogin,
    mailSmtpPassword: mail.smtpLogin === undefined ? undefined : password,
  };
}

/**
 * The owner account's name: the e-mail's local part as a Mastodon user name (a-z 0-9 _), e.g.
 * ops@social.coop → ops. Not `admin`, which Mastodon keeps for itself among its reserved names.
 */
export function ownerUsername(email: string): string {
  const name = email.split("@")[0].toLowerCase().replace(/[^a-z0-9_]/g, "_").slice(0, 30);
  if (!/[a-z0-9]/.test(name)) throw new Error(`adminEmail "${email}": its local part gives no usable user name`);
  return name;
}

export interface MastodonAppArgs {
  readonly flavor: Flavor;
  /** The release deployed first: the configured target (a new instance needs no intermediate hops). */
  readonly tag: string;
  /** The name the instance serves. */
  readonly domain: string;
  /** The app host (secret connection) and the scripts it was given. */
  readonly connection: pulumi.Input<HostConnection>;
  readonly scripts: HostScripts;
  /** The owner account a new instance gets (stack config adminEmail). */
  readonly adminEmail: string;
  /** The certificate; without, the site is plain HTTP (a local stack without the test ACME server). */
  readonly tls?: TlsArgs;
  /** Deploy the fixture app instead (local stacks). */
  readonly fixture?: boolean;
  /** What must be installed first (the Database). */
  readonly after: pulumi.Resource[];
  /** The instance's own mail (stack config `mail`, with the secret mailSmtpPassword): SMTP_* in .env.production. */
  readonly mail?: MailConfig;
  readonly mailPassword?: pulumi.Input<string>;
  /** Who may sign up, when the stack config says (set-registrations.sh); unset, the admins decide. */
  readonly registrations?: "open" | "approved" | "closed";
  /** A new value deploys again (a restore replaced the data under the app, which it stopped). */
  readonly redeployOn?: pulumi.Input<string>;
}

export class MastodonApp extends pulumi.ComponentResource {
  /** The first deploy is done and the instance answers /health; backups and upgrades depend on it. */
  public readonly deployed: command.remote.Command;
  /** The release the first deploy installed. */
  public readonly firstRelease: string;

  constructor(name: string, args: MastodonAppArgs, opts?: pulumi.ComponentResourceOptions) {
    super("socialcoop:app:MastodonApp", name, {}, opts);
    this.firstRelease = args.fixture ? fixtureFirstTag(args.flavor) : args.tag;
    let stdin: pulumi.Output<string> | undefined;
    const after = [...args.after, args.scripts.upload];
    if (args.fixture) {
      const source = new command.local.Command(
        `${name}-fixture-source`,
        {
          create: `node --import tsx ${JSON.stringify(FIXTURE_SOURCE_TOOL)}`,
          // tsx resolves from here (the repository's node_modules).
          dir: path.dirname(FIXTURE_SOURCE_TOOL),
          triggers: [fixtureHash()],
          logging: "stderr",
        },
        { parent: this },
      );
      stdin = source.stdout;
      after.push(source);
    }
    const environment = scriptEnvironment({
      scriptsFrom: args.scripts.path,
      appFlavor: args.flavor,
      targetTag: this.firstRelease,
      domain: args.domain,
      adminEmail: args.adminEmail,
      adminUsername: ownerUsername(args.adminEmail),
      appSourceStdin: args.fixture ? "1" : undefined,
      ...(args.fixture ? FIXTURE_APP_PARAMS : {}),
      ...tlsParams(args.tls),
      ...mailParams(args.mail, args.mailPassword),
    });
    this.deployed = new command.remote.Command(
      `${name}-deploy`,
      {
        connection: args.connection,
        create: sudoScript("deploy-app.sh", environment),
        environment,
        stdin,
        // deploy-app.sh logs steps, paths and the release; the instance's secrets and the Cloudflare
        // token stay in 0600 files on the host.
        logging: "stdoutAndStderr",
        addPreviousOutputInEnv: false,
        triggers: [scriptsHash(["deploy-app.sh", "acme-dns-hook.sh"]), ...(args.redeployOn === undefined ? [] : [args.redeployOn])],
      },
      // A new target is the upgrade chain's: the first release stays what it was.
      { parent: this, dependsOn: after, ignoreChanges: ["environment.COOP_TARGET_TAG"] },
    );
    if (args.registrations) {
      // Once per value: the value is the trigger (a new one replaces the command, whose create then runs),
      // and any other change (the scripts' upload path moves with every script change) runs the no-op
      // update, so an admin's later choice in the admin settings stands until the config changes.
      const params = { scriptsFrom: args.scripts.path, registrations: args.registrations, ...(args.fixture ? FIXTURE_UPGRADE_PARAMS : { appFlavor: args.flavor }) };
      const env = scriptEnvironment(params);
      new command.remote.Command(
        `${name}-registrations`,
        {
          connection: args.connection, create: sudoScript("set-registrations.sh", env), update: "true", environment: env,
          logging: "stdoutAndStderr", addPreviousOutputInEnv: false, triggers: [args.registrations],
        },
        { parent: this, dependsOn: [this.deployed] },
      );
    }
    this.registerOutputs({ deployed: this.deployed, firstRelease: this.firstRelease });
  }
}

/**
 * The stack's certificate setting: real stacks by DNS-01 through Cloudflare (the stack's token, a secret);
 * local stacks from the test ACME server when the runner started one (tls.dnsApi), else plain HTTP.
 */
export function tlsArgs(cfg: StackConfig): TlsArgs | undefined {
  const { acmeServer, acmeCa, acmeRootsUrl, dnsApi } = cfg.tls;
  if (isLocalStack(cfg)) {
    if (!dnsApi) {
      pulumi.log.warn("tls.dnsApi is not set: this local stack serves plain HTTP (coopctl rehearse and the tests start an ACME server and set it)");
      return undefined;
    }
    return { dns: "challtestsrv", acmeServer, email: cfg.adminEmail, dnsApi, acmeCa, rootsUrl: acmeRootsUrl };
  }
  const token = cfg.secrets.cloudflareApiToken;
  // The config parse refuses a real stack without it; this keeps the type honest.
  if (token === undefined) throw new Error("tls: a real stack needs the cloudflareApiToken secret for DNS-01");
  return { dns: "cloudflare", acmeServer, email: cfg.adminEmail, cloudflareApiToken: token };
}
