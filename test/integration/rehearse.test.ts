// `npm start` is `coopctl rehearse`: the README's first command must work and clean up after itself.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";

const ROOT = join(__dirname, "..", "..");
const out = mkdtempSync(join(tmpdir(), "coop-rehearse-out-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function rehearse(args: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(ROOT, "bin", "coopctl.mjs"), "rehearse", ...args], { cwd: ROOT, env: { ...process.env, COOP_NO_INSTALL: "1" } });
    let stdout = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stdout += b.toString()));
    child.on("close", (code) => resolve({ code, stdout }));
  });
}

it("coopctl rehearse brings the local stack up with the real engine, backs up, drills, reports TTR per phase, and removes everything it started", async () => {
  const r = await rehearse(["--size", "10MB", "--out", out]);
  expect(r.code, r.stdout.slice(-3000)).toBe(0);
  for (let i = 1; i <= 8; i++) expect(r.stdout).toContain(`[${i}/8]`);
  // The real `pulumi up` created the machines and ran the hooks; the real `destroy` removed them.
  expect(r.stdout).toMatch(/\+ {2}command:local:Command local-primary-machine created/);
  expect(r.stdout).toMatch(/ready: local-primary, \/srv on \/dev\/coop-data ext4/);
  expect(r.stdout).toMatch(/primary 10\.231\.7\.11, secondary 10\.231\.7\.12/);
  expect(r.stdout).toMatch(/destroyed \d+ resources/);
  expect(existsSync("/run/netns/local-primary")).toBe(false);
  expect(r.stdout).toMatch(/\| coop\[backup\] INFO .* step 2\/7 database/);
  expect(r.stdout).toContain("Restored and verified by the drill: PASSED");
  for (const phase of ["fetch", "restore", "replay", "verify", "total"]) expect(r.stdout).toMatch(new RegExp(`^  ${phase}\\s+\\d+\\.\\d\\d s$`, "m"));
  const result = JSON.parse(readFileSync(join(out, "last-drill.json"), "utf8"));
  expect(result.ok).toBe(true);
  expect(readFileSync(join(out, "drill-report.svg"), "utf8")).toMatch(/<svg[\s\S]*<\/svg>\s*$/);
  const dir = /in (\/tmp\/coop-rig-\w+):/.exec(r.stdout)?.[1] as string;
  expect(existsSync(dir)).toBe(false);
  expect(r.stdout).toContain(`cleaning up: stopping the servers, removing ${dir}, destroying the local stack`);
  // The message comes before the destroy it announces.
  expect(r.stdout.indexOf("cleaning up:")).toBeLessThan(r.stdout.search(/destroyed \d+ resources/));
  expect(r.stdout).toMatch(/restore drill on the secondary: PASSED/);
}, 10 * 60_000);
