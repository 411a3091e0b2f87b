// The chain's PostgreSQL link decides on the host whether there is anything to upgrade, before
// touching anything (the upgrade itself is upgrade-postgres.sh, tested in upgrade-postgres.test.ts).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const SCRIPT = join(__dirname, "..", "..", "scripts", "upgrade-postgres-chain.sh");
const tmp = mkdtempSync(join(tmpdir(), "coop-pgchain-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cluster(major: string): string {
  const data = join(tmp, major, "main");
  mkdirSync(data, { recursive: true });
  writeFileSync(join(data, "PG_VERSION"), `${major}\n`);
  const link = join(tmp, `link-${major}`);
  if (!existsSync(link)) symlinkSync(data, link);
  return link;
}

function chain(link: string, target: string) {
  const state = join(tmp, `state-${target}-${Math.random().toString(36).slice(2)}`);
  const r = spawnSync("bash", [SCRIPT], {
    encoding: "utf8",
    env: { ...process.env, COOP_PG_TARGET_MAJOR: target, COOP_PG_DATA_LINK: link, COOP_PG_DATA_ROOT: tmp, COOP_STATE_DIR: state },
  });
  return { code: r.status, output: `${r.stdout}${r.stderr}`, state };
}

describe("upgrade-postgres-chain.sh", () => {
  it("does nothing, successfully, when the live cluster already runs the configured major", () => {
    const r = chain(cluster("15"), "15");
    expect(r.code).toBe(0);
    expect(r.output).toContain("PostgreSQL 15 is live at");
    expect(r.output).toContain("nothing to upgrade");
    expect(existsSync(join(r.state, "upgrade-postgres-15.env"))).toBe(false);
  });

  it("refuses a configured major lower than the live one, naming the way back", () => {
    const r = chain(cluster("16"), "15");
    expect(r.code).not.toBe(0);
    expect(r.output).toContain("the live cluster runs PostgreSQL 16, newer than the configured 15: lower versions.postgres only by restoring a backup");
  });

  it("refuses a data link that is not a cluster", () => {
    const r = chain(join(tmp, "nowhere"), "15");
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(/nowhere is not a PostgreSQL data directory/);
  });
});
