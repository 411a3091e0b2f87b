import { describe, expect, it } from "vitest";
import { UpgradePathError, upgradeHops } from "../../../src/upgrade/path";

const MASTODON = ["v4.3.0", "v4.3.7", "v4.3.8", "v4.3.9", "v4.4.0-beta.1", "v4.4.0", "v4.4.4", "v4.4.5", "v4.5.0", "v4.5.1", "v4.5.2", "v4.6.0-rc.1", "v4.6.0", "v4.6.1"];

describe("upgrade path", () => {
  it("a target that skips minors goes through the newest patch of each series in order", () => {
    expect(upgradeHops("mastodon", "v4.6.1", MASTODON)).toEqual([
      { series: "4.3", tag: "v4.3.9" },
      { series: "4.4", tag: "v4.4.5" },
      { series: "4.5", tag: "v4.5.2" },
      { series: "4.6", tag: "v4.6.1" },
    ]);
  });

  it("a target inside a series lands on exactly that release, not a newer patch", () => {
    expect(upgradeHops("mastodon", "v4.4.4", MASTODON)).toEqual([
      { series: "4.3", tag: "v4.3.9" },
      { series: "4.4", tag: "v4.4.4" },
    ]);
  });

  it("hops of earlier series do not change when only the target's patch changes (stable triggers)", () => {
    const a = upgradeHops("mastodon", "v4.6.0", MASTODON);
    const b = upgradeHops("mastodon", "v4.6.1", MASTODON);
    expect(a.slice(0, -1)).toEqual(b.slice(0, -1));
    expect(a.at(-1)).toEqual({ series: "4.6", tag: "v4.6.0" });
  });

  it("pre-releases are never hops", () => {
    const tags = upgradeHops("mastodon", "v4.6.1", MASTODON).map((h) => h.tag);
    expect(tags.some((t) => /beta|rc/.test(t))).toBe(false);
  });

  it("Hometown hops follow the Mastodon base series, newest Hometown release of each", () => {
    const catalog = ["v4.4.5+hometown-1.1.0", "v4.4.5+hometown-1.1.1", "v4.5.11+hometown-1.2.1", "v4.5.13+hometown-1.3.0"];
    expect(upgradeHops("hometown", "v4.5.13+hometown-1.3.0", catalog)).toEqual([
      { series: "4.4", tag: "v4.4.5+hometown-1.1.1" },
      { series: "4.5", tag: "v4.5.13+hometown-1.3.0" },
    ]);
  });

  it("a target missing from the catalog is refused with the key, the file and the fix", () => {
    expect(() => upgradeHops("mastodon", "v4.7.0", MASTODON)).toThrow(UpgradePathError);
    expect(() => upgradeHops("mastodon", "v4.7.0", MASTODON)).toThrow(/versions\.mastodon: v4\.7\.0 is not in releases\/mastodon\.json; add it/);
    expect(() => upgradeHops("mastodon", "v4.6.0-rc.1", MASTODON)).toThrow(/not a final mastodon release tag/);
  });
});
