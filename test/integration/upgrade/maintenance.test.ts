// maintenance.sh with real nginx including scripts/nginx/maintenance.conf: 503 with Retry-After on every
// path while on (JSON for the API, "maintenance" for /health, the page elsewhere, static files included),
// streaming and Sidekiq stopped; 200 again after off; both idempotent.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAppRig, type AppRig } from "../../fixtures/app/rig";
import { ok } from "./support";

let rig: AppRig;
beforeAll(async () => {
  rig = await startAppRig();
  await rig.deploy("v1.0.0");
});
afterAll(async () => {
  await rig?.stop();
});

const PATHS = ["/", "/api/v1/instance", "/health", "/robots.txt", "/api/v1/streaming", "/@alice/123", "/__coop_maintenance/page"];

function running(role: string): boolean {
  const pidFile = join(rig.env.COOP_APP_ROOT, "run", `${role}.pid`);
  if (!existsSync(pidFile)) return false;
  return existsSync(`/proc/${readFileSync(pidFile, "utf8").trim()}`);
}

describe("maintenance.sh", () => {
  it("off: nginx serves the app", async () => {
    expect((await rig.get("/")).status).toBe(200);
    expect((await rig.get("/health")).status).toBe(200);
    expect((await rig.get("/robots.txt")).body).toContain("fixture v1.0.0");
    // The internal location cannot be reached from outside.
    expect((await rig.get("/__coop_maintenance/page")).status).toBe(404);
    expect(ok(await rig.script("maintenance.sh", ["status"]), "status").output.trim()).toBe("off");
  });

  it("on: every path answers 503 with Retry-After; the API in JSON, /health says maintenance", async () => {
    ok(await rig.script("maintenance.sh", ["on"]), "maintenance on");
    ok(await rig.script("maintenance.sh", ["on"]), "maintenance on again");
    for (const path of PATHS) {
      const r = await rig.get(path);
      expect(r.status, path).toBe(503);
      expect(r.headers.get("retry-after"), path).toBe("300");
      expect(r.headers.get("cache-control"), path).toBe("no-store");
    }
    const api = await rig.get("/api/v1/instance");
    expect(api.headers.get("content-type")).toBe("application/json");
    expect(JSON.parse(api.body).error).toMatch(/maintenance/);
    expect((await rig.get("/health")).body.trim()).toBe("maintenance");
    const page = await rig.get("/");
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.body).toContain("We are upgrading the server");
    expect(running("streaming")).toBe(false);
    expect(running("sidekiq")).toBe(false);
    expect(ok(await rig.script("maintenance.sh", ["status"]), "status").output).toMatch(/^on: maintenance since /);
  });

  it("off refuses while an upgrade run is unfinished, unless forced", async () => {
    const journal = join(rig.env.COOP_STATE_DIR, "upgrade-app.journal");
    await rig.bash(`mkdir -p "${rig.env.COOP_STATE_DIR}" && echo target=v1.1.0 > "${journal}"`);
    const refused = await rig.script("maintenance.sh", ["off"]);
    expect(refused.code).not.toBe(0);
    expect(refused.output).toContain("an interrupted upgrade-app.sh run is not finished");
    expect((await rig.get("/")).status).toBe(503);
    ok(await rig.script("maintenance.sh", ["off"], { COOP_FORCE: "1" }), "forced maintenance off");
    expect((await rig.get("/")).status).toBe(200);
    await rig.bash(`rm -f "${journal}"`);
    ok(await rig.script("maintenance.sh", ["on"]), "maintenance on again");
    expect((await rig.get("/")).status).toBe(503);
  });

  it("off: 200 on every app path again, streaming and Sidekiq running", async () => {
    ok(await rig.script("maintenance.sh", ["off"]), "maintenance off");
    ok(await rig.script("maintenance.sh", ["off"]), "maintenance off again");
    expect((await rig.get("/")).status).toBe(200);
    expect((await rig.get("/health")).status).toBe(200);
    expect((await rig.get("/health")).headers.get("retry-after")).toBeNull();
    expect(JSON.parse((await rig.get("/api/v1/instance")).body).version).toBe("v1.0.0");
    expect((await rig.get("/robots.txt")).status).toBe(200);
    expect((await rig.get("/api/v1/streaming")).status).toBe(200);
    expect(running("streaming")).toBe(true);
    expect(running("sidekiq")).toBe(true);
  });
});
