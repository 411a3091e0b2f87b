// The Alerts component in the real program under mocks: one install-alerts.sh per host, after the
// backup installs, its destinations in the environment, the SMTP password and the webhook URL only as
// secrets, and no component at all without `alerts` in the stack config.
import * as path from "node:path";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { CHECK_UPSTREAM_REPOS, checkUpstreamRepo } from "../../../components/alerts";
import { APP_UPSTREAM } from "../../../src/reports/upstream";
import type { OfflineRun } from "../../../src/plan/offline";
import { isSecretValue, runOffline } from "../../../src/plan/offline";
import { SECRET_VALUES, prodConfig } from "../../support/stack-config";
import { ofType, one, planFor, plainStrings } from "../../support/offline";

const ALERTS = { email: ["ops@social.coop", "tech@social.coop"], from: "alerts@social.coop", smtpUrl: "smtps://smtp.example.org:465", smtpLogin: "alerts@social.coop" };

/** The environment's values, inside the secret wrapper it comes in when it holds a secret. */
function unwrap(env: unknown): Record<string, unknown> {
  return (isSecretValue(env) ? env.value : env) as Record<string, unknown>;
}

let withAlerts: OfflineRun;
let without: OfflineRun;
beforeAll(async () => {
  withAlerts = await planFor({ ...prodConfig(), alerts: ALERTS, backup: { drillMaxAgeHours: 30 } });
  without = await planFor(prodConfig());
});

describe("Alerts", () => {
  it("installs the destinations on each host, from the uploaded scripts, with a delete", () => {
    const installs = ofType(withAlerts, "command:remote:Command").filter((r) => r.name.startsWith("prod-alerts-"));
    expect(installs.map((r) => r.name).sort()).toEqual(["prod-alerts-primary", "prod-alerts-secondary"]);
    for (const r of installs) {
      expect(r.inputs.create).toBe('sudo bash "$COOP_SCRIPTS_FROM"/install-alerts.sh');
      expect(String(r.inputs.delete)).toContain("install-alerts.sh --uninstall");
      const env = unwrap(r.inputs.environment);
      expect(env.COOP_ALERT_EMAIL_TO).toBe("ops@social.coop,tech@social.coop");
      expect(env.COOP_ALERT_EMAIL_FROM).toBe("alerts@social.coop");
      expect(env.COOP_ALERT_SMTP_URL).toBe("smtps://smtp.example.org:465");
      expect(env.COOP_ALERT_SMTP_STARTTLS).toBe("yes");
      expect(env.COOP_ALERT_STACK).toBe("prod");
      // The daily check's thresholds: coopctl status's defaults, the drill's from backup.drillMaxAgeHours.
      expect([env.COOP_CHECK_AT, env.COOP_CHECK_BACKUP_MAX_AGE_HOURS, env.COOP_CHECK_DRILL_MAX_AGE_HOURS, env.COOP_CHECK_DISK_MAX_PERCENT, env.COOP_CHECK_CERT_MIN_DAYS, env.COOP_CHECK_WAL_MAX_LAG_SECONDS, env.COOP_CHECK_SECURITY_GRACE_HOURS]).toEqual(["07:00", "26", "30", "85", "14", "300", "72"]);
    }
  });

  it("runs after the backup installs, whose units name the alert unit", () => {
    const install = one(withAlerts, "command:remote:Command", "prod-alerts-secondary");
    expect(install.dependsOn.some((d) => d.includes("prod-backup-repo-install"))).toBe(true);
  });

  it("the SMTP password and the webhook URL reach the hosts only as secrets", () => {
    for (const r of ofType(withAlerts, "command:remote:Command").filter((x) => x.name.startsWith("prod-alerts-"))) {
      // A secret inside makes the whole environment a secret, in state and in the diff.
      expect(isSecretValue(r.inputs.environment)).toBe(true);
      const env = unwrap(r.inputs.environment);
      expect(env.COOP_ALERT_SMTP_PASSWORD).toBe(SECRET_VALUES.alertSmtpPassword);
      expect(env.COOP_ALERT_WEBHOOK_URL).toBe(SECRET_VALUES.alertWebhookUrl);
      expect(String(r.inputs.create)).not.toContain(SECRET_VALUES.alertSmtpPassword);
      const plain = plainStrings(r.inputs).join("\n");
      expect(plain).not.toContain(SECRET_VALUES.alertSmtpPassword);
      expect(plain).not.toContain("ALERT-WEBHOOK-TOKEN");
    }
  });

  it("without alerts in the stack config, and without a webhook, there is no Alerts component", async () => {
    const none = await planFor(prodConfig(), { secrets: { ...SECRET_VALUES, alertWebhookUrl: "" } });
    expect(none.resources.filter((r) => r.name.startsWith("prod-alerts"))).toEqual([]);
  });

  it("a webhook alone (the secret, no alerts section) installs alerts with the defaults", () => {
    const installs = ofType(without, "command:remote:Command").filter((r) => r.name.startsWith("prod-alerts-"));
    expect(installs).toHaveLength(2);
    const env = unwrap(installs[0].inputs.environment);
    expect(env.COOP_ALERT_EMAIL_TO).toBe("");
    expect(env.COOP_ALERT_WEBHOOK_URL).toBe(SECRET_VALUES.alertWebhookUrl);
    expect(env.COOP_CHECK_DISK_MAX_PERCENT).toBe("85");
  });

  it("alerts without an SMTP server of their own go through the instance's mail, its login and password (a secret) with it", async () => {
    const mail = { smtpUrl: "smtp://mail.example.org:587", from: "notifications@social.coop", smtpLogin: "notifications" };
    const viaMail = await planFor({ ...prodConfig(), mail, alerts: { email: ["ops@social.coop"] } });
    const r = one(viaMail, "command:remote:Command", "prod-alerts-primary");
    expect(isSecretValue(r.inputs.environment)).toBe(true);
    const env = unwrap(r.inputs.environment);
    expect([env.COOP_ALERT_SMTP_URL, env.COOP_ALERT_EMAIL_FROM, env.COOP_ALERT_SMTP_LOGIN, env.COOP_ALERT_SMTP_STARTTLS]).toEqual([mail.smtpUrl, mail.from, "notifications", "yes"]);
    expect(env.COOP_ALERT_SMTP_PASSWORD).toBe(SECRET_VALUES.mailSmtpPassword);
    expect(plainStrings(r.inputs).join("\n")).not.toContain(SECRET_VALUES.mailSmtpPassword);
    // Their own server, when they name one, stays theirs.
    const own = await planFor({ ...prodConfig(), mail, alerts: ALERTS });
    const ownEnv = unwrap(one(own, "command:remote:Command", "prod-alerts-primary").inputs.environment);
    expect([ownEnv.COOP_ALERT_SMTP_URL, ownEnv.COOP_ALERT_EMAIL_FROM, ownEnv.COOP_ALERT_SMTP_PASSWORD]).toEqual([ALERTS.smtpUrl, ALERTS.from, SECRET_VALUES.alertSmtpPassword]);
  });

  it("a replacement carries a new install ID, so the old install's delete leaves the new one alone", () => {
    const env = unwrap(one(withAlerts, "command:remote:Command", "prod-alerts-primary").inputs.environment);
    expect(env.COOP_INSTALL_ID).toMatch(/^[0-9a-f]{16}$/);
  });

  it("the daily check compares the app with its flavor's upstream repository, and with none without a flavor", async () => {
    expect([checkUpstreamRepo("mastodon"), checkUpstreamRepo("hometown"), checkUpstreamRepo(undefined)]).toEqual(["mastodon/mastodon", "hometown-fork/hometown", undefined]);
    // coopctl behind's upstreams.
    expect(CHECK_UPSTREAM_REPOS).toEqual(APP_UPSTREAM);
    const program = path.join(__dirname, "alerts-only.program.ts");
    const envOf = async (appFlavor?: string) => {
      vi.resetModules();
      const r = await runOffline({ stack: "t", values: appFlavor ? { appFlavor } : {}, secretKeys: new Set() }, program);
      return unwrap(one(r, "command:remote:Command", "t-alerts-primary").inputs.environment);
    };
    const hometown = await envOf("hometown");
    expect([hometown.COOP_CHECK_UPSTREAM_REPO, hometown.COOP_CHECK_SECURITY_GRACE_HOURS]).toEqual(["hometown-fork/hometown", "48"]);
    expect((await envOf("mastodon")).COOP_CHECK_UPSTREAM_REPO).toBe("mastodon/mastodon");
    // A local stack's fixture app has no upstream: the variable is left out, so the check compares nothing.
    expect(await envOf()).not.toHaveProperty("COOP_CHECK_UPSTREAM_REPO");
  });
});
