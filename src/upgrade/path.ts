// The upgrade path to a target release. Mastodon supports upgrading only through every minor series
// in turn (each series' migrations assume the previous one's), so a target that skips series is
// reached through the newest patch of each series in between: one hop per series.
import { compareVersions, parseHometown, parseVersion, type Version } from "../reports/versions";

export type Flavor = "mastodon" | "hometown";

export interface Hop {
  /** The minor series this hop lands on, e.g. `4.4` (Hometown: its Mastodon base's series). */
  readonly series: string;
  /** The release tag deployed by this hop. */
  readonly tag: string;
}

export class UpgradePathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UpgradePathError";
  }
}

interface Release {
  readonly tag: string;
  /** Mastodon version of the release (Hometown: its base). */
  readonly base: Version;
  /** Hometown's own version; equal to base for Mastodon. */
  readonly own: Version;
}

function parseRelease(flavor: Flavor, tag: string): Release | null {
  if (flavor === "mastodon") {
    const v = parseVersion(tag);
    return v && v.pre === null && !tag.includes("+") ? { tag, base: v, own: v } : null;
  }
  const h = parseHometown(tag);
  return h && h.base.pre === null && h.fork.pre === null ? { tag, base: h.base, own: h.fork } : null;
}

const seriesOf = (r: Release) => `${r.base.major}.${r.base.minor}`;
const byRelease = (a: Release, b: Release) => compareVersions(a.base, b.base) || compareVersions(a.own, b.own);

/**
 * Hops from the oldest series in the catalog up to the target, each the newest release of its series
 * (the target itself for the target's series). A hop is a no-op on a host already at or past it, so
 * the hops before the deployed series cost nothing; the catalog is trimmed when old series no longer matter.
 */
export function upgradeHops(flavor: Flavor, target: string, catalog: readonly string[], catalogName = `releases/${flavor}.json`): Hop[] {
  const goal = parseRelease(flavor, target);
  if (!goal) throw new UpgradePathError(`versions.${flavor}: "${target}" is not a final ${flavor} release tag`);
  const releases = catalog.map((t) => parseRelease(flavor, t)).filter((r): r is Release => r !== null);
  if (!releases.some((r) => r.tag === target)) {
    throw new UpgradePathError(
      `versions.${flavor}: ${target} is not in ${catalogName}; add it (and any releases before it) to the catalog, or pick a listed release`,
    );
  }
  const newestBySeries = new Map<string, Release>();
  for (const r of releases.filter((x) => byRelease(x, goal) <= 0).sort(byRelease)) newestBySeries.set(seriesOf(r), r);
  newestBySeries.set(seriesOf(goal), goal);
  return [...newestBySeries.entries()].map(([series, r]) => ({ series, tag: r.tag }));
}
