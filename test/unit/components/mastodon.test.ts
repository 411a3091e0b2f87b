// MastodonApp (components/mastodon.ts): what makes its first-deploy command run again.
import { beforeAll, describe, expect, it } from "vitest";
import { scriptClosure, scriptsHash } from "../../../components/lib/script";
import { isSecretValue, type OfflineRun } from "../../../src/plan/offline";
import { SECRET_VALUES, prodConfig } from "../../support/stack-config";
import { one, planFor, plainStrings } from "../../support/offline";

const CMD = "command:remote:Command";
let prod: OfflineRun;
let withMail: OfflineRun;
const MAIL = { smtpUrl: "smtps://smtp.example.org:465", from: "notifications@social.coop", smtpLogin: "notifications@social.coop" };

beforeAll(async () => {
  prod = await planFor(prodConfig());
  withMail = await planFor({ ...prodConfig(), mail: MAIL, registrations: "approved" });
});

const reveal = (v: unknown): unknown => (isSecretValue(v) ? reveal(v.value) : v);

describe("the first deploy", () => {
  it("re-runs when deploy-app.sh or a library it sources changes, its own (app source, site, owner account) included", () => {
    expect(scriptClosure("deploy-app.sh")).toEqual(expect.arrayContaining([
      "deploy-app.sh", "lib/app-site.sh", "lib/deploy-owner.sh", "lib/deploy-site.sh", "lib/deploy-source.sh", "lib/tls.sh",
    ]));
    expect(one(prod, CMD, "prod-app-deploy").inputs.triggers).toEqual([scriptsHash(["deploy-app.sh", "acme-dns-hook.sh"])]);
  });

  it("covers the app adapter real hosts run (sourced behind COOP_APP_ADAPTER's default), so a change to its units re-deploys", () => {
    for (const script of ["deploy-app.sh", "upgrade-app.sh", "maintenance.sh"]) {
      expect(scriptClosure(script), script).toEqual(expect.arrayContaining(["lib/app-mastodon.sh", "lib/app-mastodon-processes.sh"]));
    }
  });
});

describe("the instance's mail and sign-ups from the stack config", () => {
  it("hands the deploy the SMTP settings, the password only inside a secret", () => {
    const deploy = one(withMail, CMD, "prod-app-deploy");
    expect(isSecretValue(deploy.inputs.environment)).toBe(true);
    const env = reveal(deploy.inputs.environment) as Record<string, unknown>;
    expect(env).toMatchObject({ COOP_MAIL_SMTP_URL: MAIL.smtpUrl, COOP_MAIL_FROM: MAIL.from, COOP_MAIL_SMTP_LOGIN: MAIL.smtpLogin, COOP_MAIL_SMTP_START_TLS: "true" });
    expect(env.COOP_MAIL_SMTP_PASSWORD).toBe(SECRET_VALUES.mailSmtpPassword);
    expect(plainStrings(deploy.inputs).some((s) => s.includes(SECRET_VALUES.mailSmtpPassword))).toBe(false);
    expect(plainStrings(deploy.inputs.create).join(" ")).not.toContain(SECRET_VALUES.mailSmtpPassword);
    // Without `mail`, nothing of it: the block then holds no SMTP_*.
    expect(Object.keys(reveal(one(prod, CMD, "prod-app-deploy").inputs.environment) as object).filter((k) => k.startsWith("COOP_MAIL_"))).toEqual([]);
  });

  it("sets sign-ups once per value after the first deploy, and not at all when the config leaves them to the admins", () => {
    const set = one(withMail, CMD, "prod-app-registrations");
    expect((reveal(set.inputs.environment) as Record<string, unknown>).COOP_REGISTRATIONS).toBe("approved");
    // The value alone replaces it (create runs); anything else, such as the scripts' upload path that every
    // script change moves, runs the no-op update.
    expect(set.inputs.triggers).toEqual(["approved"]);
    expect(set.inputs.update).toBe("true");
    expect(set.dependsOn).toContain("prod-app-deploy");
    expect(() => one(prod, CMD, "prod-app-registrations")).toThrow();
  });
});
