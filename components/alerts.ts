// Alerts: where each host sends what needs a person (scripts/install-alerts.sh, scripts/alert.sh). The
// backup and drill units name coop-alert@.service in OnFailure=; this component tells that unit where to
// send (e-mail through the stack's SMTP server and/or a webhook) and installs the daily check
// (scripts/check.sh) with coopctl status's thresholds, which also tells a security release of the app's
// upstream missed for longer than alerts.securityGraceHours. Secrets go only in the environment.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { AlertsConfig, MailConfig } from "../src/config/schema";
import type { Flavor } from "../src/upgrade/path";
import { installId } from "./backup";
import type { HostConnection } from "./host";
import { HostScripts, REMOTE_SCRIPTS_DIR, ScriptParams, scriptEnvironment, scriptsHash, sudoScript, uploadedOrInstalled } from "./lib/script";

export interface AlertsHost {
  readonly name: string;
  readonly connection: pulumi.Input<HostConnection>;
  readonly scripts: HostScripts;
  /** What must be installed first (the backup units that name the alert unit). */
  readonly after?: readonly pulumi.Resource[];
}

export interface AlertsArgs {
  readonly stack: string;
  readonly alerts: AlertsConfig;
  /** backup.drillMaxAgeHours: the daily check flags an older drill, as the upgrade hops refuse it. */
  readonly drillMaxAgeHours: number;
  readonly hosts: readonly AlertsHost[];
  readonly smtpPassword?: pulumi.Input<string>;
  readonly webhookUrl?: pulumi.Input<string>;
  /**
   * The deployed app: its upstream's releases (mastodon/mastodon, hometown-fork/hometown) are what the daily
   * check compares the host's `current` release with. Unset (a local stack's fixture app): no comparison.
   */
  readonly appFlavor?: Flavor;
}

/**
 * The GitHub repository each flavor's releases come from: coopctl behind's (APP_UPSTREAM in
 * src/reports/upstream.ts, which the program does not import; a unit test holds the two equal).
 */
export const CHECK_UPSTREAM_REPOS: Readonly<Record<Flavor, string>> = { mastodon: "mastodon/mastodon", hometown: "hometown-fork/hometown" };

/** The GitHub repository the daily check reads the app's releases from; none without an app flavor. */
export function checkUpstreamRepo(flavor: Flavor | undefined): string | undefined {
  return flavor === undefined ? undefined : CHECK_UPSTREAM_REPOS[flavor];
}

/**
 * Alerts without an SMTP server of their own go out through the instance's (stack config `mail`, with its
 * login and password), from `alerts.from` or else the instance's sender.
 */
export function alertsThroughMail(
  alerts: AlertsConfig,
  mail: MailConfig | undefined,
  passwords: { readonly alerts?: pulumi.Input<string>; readonly mail?: pulumi.Input<string> },
): { readonly alerts: AlertsConfig; readonly smtpPassword?: pulumi.Input<string> } {
  if (alerts.smtpUrl !== undefined || mail === undefined) return { alerts, smtpPassword: passwords.alerts };
  return {
    alerts: { ...alerts, from: alerts.from ?? mail.from, smtpUrl: mail.smtpUrl, smtpLogin: mail.smtpLogin, smtpStartTls: mail.smtpStartTls },
    smtpPassword: passwords.mail,
  };
}

/** The delete: `install-alerts.sh --uninstall` from the upload, or from the installed scripts when it is gone. */
export function alertsUninstallCommand(): string {
  return uploadedOrInstalled("install-alerts.sh", "--uninstall", "no install-alerts.sh on this host: nothing to remove");
}

export class Alerts extends pulumi.ComponentResource {
  /** install-alerts.sh on each host. */
  public readonly installs: readonly command.remote.Command[];

  constructor(name: string, args: AlertsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("socialcoop:ops:Alerts", name, {}, opts);
    const a = args.alerts;
    const params: ScriptParams = {
      alertStack: args.stack,
      alertEmailTo: a.email.join(","),
      alertEmailFrom: a.from,
      alertSmtpUrl: a.smtpUrl,
      alertSmtpStarttls: a.smtpStartTls ? "yes" : "no",
      alertSmtpLogin: a.smtpLogin,
      // Secrets: the secret Outputs they are, into the environment only.
      alertSmtpPassword: a.smtpLogin !== undefined ? args.smtpPassword : undefined,
      alertWebhookUrl: args.webhookUrl,
      scriptsDir: REMOTE_SCRIPTS_DIR,
      checkAt: a.checkAt,
      checkBackupMaxAgeHours: String(a.backupMaxAgeHours),
      checkDrillMaxAgeHours: String(args.drillMaxAgeHours),
      checkWalMaxLagSeconds: String(a.walMaxLagSeconds),
      checkDiskMaxPercent: String(a.diskMaxPercent),
      checkCertMinDays: String(a.certMinDays),
      checkSecurityGraceHours: String(a.securityGraceHours),
      checkUpstreamRepo: checkUpstreamRepo(args.appFlavor),
    };
    // A replacement (new triggers) installs before the old install's delete runs: the ID recorded on the
    // host tells that delete a newer install is in place, which it must leave alone.
    const triggers = [scriptsHash(["install-alerts.sh", "alert.sh", "check.sh", "status.sh"])];
    this.installs = args.hosts.map((h) => {
      const environment = scriptEnvironment({ ...params, scriptsFrom: h.scripts.path, installId: installId(triggers) });
      return new command.remote.Command(
        `${name}-${h.name}`,
        {
          connection: h.connection,
          create: sudoScript("install-alerts.sh", environment),
          delete: alertsUninstallCommand(),
          environment,
          // install-alerts.sh logs addresses and paths; the password and the webhook URL stay in files.
          logging: "stdoutAndStderr",
          addPreviousOutputInEnv: false,
          triggers,
        },
        { parent: this, dependsOn: [h.scripts.upload, ...(h.after ?? [])] },
      );
    });
    this.registerOutputs({});
  }
}
