import { beforeAll, describe, expect, it } from "vitest";
import { scriptClosure, scriptsHash } from "../../../components/lib/script";
import type { OfflineRun } from "../../../src/plan/offline";
import { isSecretValue } from "../../../src/plan/offline";
import { alphaConfig, prodConfig } from "../../support/stack-config";
import { one, planFor } from "../../support/offline";

const CMD = "command:remote:Command";
let prod: OfflineRun;
let prodAgain: OfflineRun;
let alpha: OfflineRun;

beforeAll(async () => {
  prod = await planFor(prodConfig());
  prodAgain = await planFor(prodConfig());
  alpha = await planFor(alphaConfig());
});

const chain = (run: OfflineRun, stack: string) => run.resources.filter((r) => r.parent === `${stack}-upgrade`);

describe("the upgrade chain", () => {
  it("runs drill → drill result → PostgreSQL → app hop(s) → health check, each waiting for the one before", () => {
    const names = chain(prod, "prod").map((r) => r.name);
    expect(names).toEqual(["prod-upgrade-drill", "prod-upgrade-drill-result", "prod-upgrade-postgres", "prod-upgrade-app-4.3", "prod-upgrade-health"]);
    for (let i = 1; i < names.length; i++) expect(one(prod, CMD, names[i]).dependsOn, names[i]).toContain(names[i - 1]);
    // The first drill waits for the backup component's installs and nightly drill.
    expect(one(prod, CMD, "prod-upgrade-drill").dependsOn).toEqual(expect.arrayContaining(["prod-backup-drill", "prod-backup-db-install"]));
  });

  it("the drill and its result run on the repository host, the upgrades on the app host", () => {
    const host = (name: string) => {
      const conn = one(prod, CMD, name).inputs.connection;
      expect(isSecretValue(conn)).toBe(true);
      return ((conn as { value: { host: string } }).value).host;
    };
    expect(host("prod-upgrade-drill")).toBe(prod.outputs.secondaryIpv4);
    expect(host("prod-upgrade-drill-result")).toBe(prod.outputs.secondaryIpv4);
    expect(host("prod-upgrade-postgres")).toBe(prod.outputs.primaryIpv4);
    expect(host("prod-upgrade-app-4.3")).toBe(prod.outputs.primaryIpv4);
  });

  it("an app hop passes its tag, the flavor, the drill's age limit and the hop mode as COOP_* environment, never in the command text", () => {
    const hop = one(prod, CMD, "prod-upgrade-app-4.3");
    expect(hop.inputs.create).toBe('sudo bash "$COOP_SCRIPTS_FROM"/upgrade-app.sh');
    expect(Object.keys(hop.inputs.environment as Record<string, string>).sort()).toEqual(["COOP_APP_FLAVOR", "COOP_DRILL_MAX_AGE_HOURS", "COOP_DRILL_RESULT_JSON", "COOP_SCRIPTS_FROM", "COOP_SKIP_OLDER", "COOP_TARGET_TAG"]);
    // backup.drillMaxAgeHours (its default here) reaches the preflight that refuses a stale drill.
    expect((hop.inputs.environment as Record<string, string>).COOP_DRILL_MAX_AGE_HOURS).toBe("26");
    expect(String(hop.inputs.create)).not.toContain("v4.3.8");
    expect((hop.inputs.triggers as unknown[])[0]).toBe("v4.3.8");
    expect(prod.outputs.upgradePath).toBe("v4.3.8");
  });

  it("an app hop re-runs when upgrade-app.sh or a library it sources changes, both restore-point mechanisms included", () => {
    expect(scriptClosure("upgrade-app.sh")).toEqual(expect.arrayContaining(["lib/upgrade.sh", "lib/restore-point.sh", "lib/restore-point-copy.sh", "lib/restore-point-wal.sh"]));
    expect(one(prod, CMD, "prod-upgrade-app-4.3").inputs.triggers).toEqual(["v4.3.8", scriptsHash(["upgrade-app.sh"])]);
  });

  it("an unchanged stack runs nothing: every trigger is identical across two runs", () => {
    const triggers = (run: OfflineRun) => Object.fromEntries(chain(run, "prod").map((r) => [r.name, JSON.stringify(r.inputs.triggers)]));
    expect(triggers(prodAgain)).toEqual(triggers(prod));
  });

  it("a stack without a secondary has no drill link and upgrades Hometown", () => {
    const names = chain(alpha, "alpha").map((r) => r.name);
    expect(names).toEqual(["alpha-upgrade-postgres", "alpha-upgrade-app-4.5", "alpha-upgrade-health"]);
    // The app host's own upload comes first.
    expect(one(alpha, CMD, "alpha-upgrade-postgres").dependsOn).toContain("alpha-primary-scripts");
    // With no drill to wait behind, the chain itself waits for the first deploy (database included).
    expect(one(alpha, CMD, "alpha-upgrade-postgres").dependsOn).toContain("alpha-app-deploy");
    const env = one(alpha, CMD, "alpha-upgrade-app-4.5").inputs.environment as Record<string, string>;
    expect(env).toMatchObject({ COOP_APP_FLAVOR: "hometown", COOP_TARGET_TAG: "v4.5.11+hometown-1.2.1", COOP_SKIP_OLDER: "1", COOP_REQUIRE_DRILL: "0" });
    expect(one(alpha, CMD, "alpha-upgrade-health").inputs.create).toContain("--resolve alpha.social.coop:443:127.0.0.1 https://alpha.social.coop/health");
  });

  it("a target outside the release catalog stops the program, naming the key and the file", async () => {
    const cfg = prodConfig();
    (cfg.versions as Record<string, unknown>).mastodon = "v4.9.0";
    await expect(planFor(cfg)).rejects.toThrow(/versions\.mastodon: v4\.9\.0 is not in releases\/mastodon\.json/);
  });
});
