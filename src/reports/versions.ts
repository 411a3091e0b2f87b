/**
 * Release tags of Mastodon (`v4.3.8`, `v4.4.0-beta.1`), Synapse (`v1.120.0`, `v1.121.0rc1`) and
 * Hometown (`v4.5.11+hometown-1.2.1`): parsing and ordering.
 */

export interface Version {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  /** Pre-release suffix (`beta.1`, `rc1`); null for a final release, which sorts after its pre-releases. */
  readonly pre: string | null;
}

const VERSION = /^v?(\d+)\.(\d+)(?:\.(\d+))?(?:-?((?:alpha|beta|rc|pre)[0-9A-Za-z.-]*))?$/i;
const HOMETOWN = /^v?([^+]+)\+hometown-(.+)$/;

export function parseVersion(text: string): Version | null {
  const m = VERSION.exec(text.trim());
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0), pre: m[4] ?? null };
}

export interface HometownVersion {
  /** The Mastodon release Hometown is built on. */
  readonly base: Version;
  /** Hometown's own version. */
  readonly fork: Version;
}

export function parseHometown(tag: string): HometownVersion | null {
  const m = HOMETOWN.exec(tag.trim());
  if (!m) return null;
  const base = parseVersion(m[1]);
  const fork = parseVersion(m[2]);
  return base && fork ? { base, fork } : null;
}

export function compareVersions(a: Version, b: Version): number {
  if (a.major !== b.major) return a.major - b.major;
  if (a.minor !== b.minor) return a.minor - b.minor;
  if (a.patch !== b.patch) return a.patch - b.patch;
  if (a.pre === b.pre) return 0;
  if (a.pre === null) return 1;
  if (b.pre === null) return -1;
  return a.pre.localeCompare(b.pre, "en", { numeric: true });
}

/**
 * The order of Hometown releases: by the Hometown part, then by the Mastodon base. A release with a newer
 * Hometown part is newer even on an older base (the base is compared with Mastodon on a row of its own),
 * so `v4.5.13+hometown-1.3.0` is newer than a self-built `v4.6.0+hometown-1.2.1`.
 */
export function compareHometown(a: HometownVersion, b: HometownVersion): number {
  return compareVersions(a.fork, b.fork) || compareVersions(a.base, b.base);
}

export function formatVersion(v: Version): string {
  return `${v.major}.${v.minor}.${v.patch}${v.pre ? `-${v.pre}` : ""}`;
}
