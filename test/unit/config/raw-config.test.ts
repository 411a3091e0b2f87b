// config.ts hands the parser every namespace, so a key the program would never read is refused.
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { readRawConfig } from "../../../config";

describe("readRawConfig", () => {
  it("passes socialcoop: keys without the prefix and every other key in full, secrets marked", () => {
    pulumi.runtime.setAllConfig(
      {
        "socialcoop:domain": "social.coop",
        "socialcoop:hcloudToken": "t0ken",
        "socialcop:adminUser": "ops",
        "hcloud:token": "t0ken",
        "pulumi:tags": "{}",
      },
      ["socialcoop:hcloudToken", "hcloud:token"],
    );
    const raw = readRawConfig();
    expect(raw.values).toEqual({ domain: "social.coop", hcloudToken: "t0ken", "socialcop:adminUser": "ops", "hcloud:token": "t0ken", "pulumi:tags": "{}" });
    expect([...raw.secretKeys].sort()).toEqual(["hcloud:token", "hcloudToken"]);
  });

  it("reads back what an offline plan sets for a foreign key (socialcoop: + the full key)", () => {
    pulumi.runtime.setAllConfig({ "socialcoop:socialcop:domain": "x" }, ["socialcoop:socialcop:domain"]);
    const raw = readRawConfig();
    expect(raw.values).toEqual({ "socialcop:domain": "x" });
    expect(raw.secretKeys.has("socialcop:domain")).toBe(true);
  });
});
