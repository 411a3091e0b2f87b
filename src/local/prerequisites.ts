// The Debian packages the local rehearsal needs: checked before anything starts, installed when
// running as root (a fresh machine), otherwise named with the command that installs them.
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const PACKAGE_LIST = join(__dirname, "..", "..", ".ci", "debian-packages.txt");

export function requiredPackages(): string[] {
  return readFileSync(PACKAGE_LIST, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

export function missingPackages(packages = requiredPackages()): string[] {
  return packages.filter((p) => {
    const r = spawnSync("dpkg-query", ["-W", "-f=${Status}", p], { encoding: "utf8" });
    return !(r.status === 0 && r.stdout.includes("install ok installed"));
  });
}

export interface EnsureOptions {
  readonly install: boolean;
  readonly log: (line: string) => void;
}

/** Throws with the apt-get command to run when packages are missing and may not be installed here. */
export function ensurePackages(opts: EnsureOptions): void {
  const missing = missingPackages();
  if (missing.length === 0) return;
  const command = `apt-get update && apt-get install -y ${missing.join(" ")}`;
  if (!opts.install || process.getuid?.() !== 0) {
    throw new Error(`missing Debian packages: ${missing.join(", ")}\n  install them (as root): ${command}`);
  }
  opts.log(`installing Debian packages: ${missing.join(" ")} (apt-get; set COOP_NO_INSTALL=1 to refuse)`);
  execFileSync("apt-get", ["update", "-qq"], { stdio: ["ignore", "ignore", "inherit"] });
  execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
}
