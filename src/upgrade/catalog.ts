// Reads the release catalog of an app (releases/<flavor>.json): the releases upgrades may deploy.
import * as fs from "fs";
import * as path from "path";
import { type Flavor, UpgradePathError } from "./path";

export const RELEASES_DIR = path.join(__dirname, "..", "..", "releases");

export function readCatalog(flavor: Flavor, dir = RELEASES_DIR): string[] {
  const file = path.join(dir, `${flavor}.json`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new UpgradePathError(`releases/${flavor}.json: ${(e as Error).message}; it must be a JSON list of release tags`);
  }
  if (!Array.isArray(parsed) || !parsed.every((t) => typeof t === "string")) {
    throw new UpgradePathError(`releases/${flavor}.json must be a JSON list of release tags, e.g. ["v4.3.8", "v4.4.5"]`);
  }
  return parsed;
}
