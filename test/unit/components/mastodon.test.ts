// MastodonApp (components/mastodon.ts): what makes its first-deploy command run again.
import { beforeAll, describe, expect, it } from "vitest";
import { scriptClosure, scriptsHash } from "../../../components/lib/script";
import type { OfflineRun } from "../../../src/plan/offline";
import { prodConfig } from "../../support/stack-config";
import { one, planFor } from "../../support/offline";

const CMD = "command:remote:Command";
let prod: OfflineRun;

beforeAll(async () => {
  prod = await planFor(prodConfig());
});

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
