// A program of one Alerts component, for test/unit/components/alerts.test.ts: the app's flavor as
// index.ts would hand it over (the real program gets it once index.ts passes `appFlavor`).
import * as pulumi from "@pulumi/pulumi";
import { Alerts } from "../../../components/alerts";
import { alertsSchema } from "../../../src/config/schema";

const upload = new pulumi.ComponentResource("test:scripts:Upload", "upload", {});
const flavor = new pulumi.Config("socialcoop").get("appFlavor");
new Alerts("t-alerts", {
  stack: "t",
  alerts: alertsSchema.parse({ securityGraceHours: 48 }),
  drillMaxAgeHours: 26,
  hosts: [{ name: "primary", connection: { host: "203.0.113.11", user: "coop", port: 22, privateKey: "test-key" }, scripts: { upload, path: "/home/coop/.coop-scripts/x" } }],
  appFlavor: flavor === "mastodon" || flavor === "hometown" ? flavor : undefined,
});
