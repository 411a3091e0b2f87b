// Shared checks of the upgrade tests: what "nothing lost, schema of the previous release" means in SQL.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import { run } from "../../../src/local/run";
import type { AppRig, ScriptRun } from "../../fixtures/app/rig";

export function ok(r: ScriptRun, what: string): ScriptRun {
  expect(r.code, `${what} failed:\n${r.output.slice(-4000)}`).toBe(0);
  return r;
}

export { MIGRATIONS_SQL, SCHEMA_SQL, ROWS_SQL, picture, writeRows, type DbPicture } from "./digests";

export async function servedVersion(rig: AppRig): Promise<string> {
  return (await rig.get("/version")).body.trim();
}

export function currentRelease(rig: AppRig): string {
  return readFileSync(join(rig.env.COOP_APP_ROOT, "current", "release.json"), "utf8").match(/"version": "([^"]+)"/)?.[1] ?? "";
}

export function maintenanceOn(rig: AppRig): boolean {
  return existsSync(rig.env.COOP_MAINTENANCE_FLAG);
}

/** True when nobody holds the operation's flock: a finished or killed run must not leave its lock held. */
export async function lockIsFree(rig: AppRig, operation: string): Promise<boolean> {
  const r = await run("flock", ["-n", join(rig.env.COOP_STATE_DIR, `${operation}.lock`), "true"], { allowFailure: true });
  return r.code === 0;
}

/** The step names a host script declares (`step <name> ...`), in order. */
export function stepsOf(script: string): string[] {
  const text = readFileSync(join(__dirname, "..", "..", "..", "scripts", script), "utf8");
  return [...text.matchAll(/^\s+step (\S+) /gm)].map((m) => m[1]);
}

/** Extra databases the upgrade may leave behind by mistake. */
export async function strayDatabases(rig: AppRig): Promise<string> {
  return rig.pg.psql(`select coalesce(string_agg(datname, ' '), '') from pg_database where datname like '${rig.database}_%'`);
}
