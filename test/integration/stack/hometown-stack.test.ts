// The Hometown flavor deploys the same way as Mastodon: a town-shaped local stack (one host, the
// `hometown` role) brought up from nothing with the real engine gets the fixture app's Hometown-style
// release (`v1.2.0+hometown-1.0.0`) over HTTPS, its owner account and its units, with sign-ups open as
// Pulumi.town.yaml sets them (and changed only when the config changes); then destroy.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Stack, UpResult } from "@pulumi/pulumi/automation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AcmeServer, startAcmeServer } from "../../../tools/acme-server";
import { localSecrets, openLocalStack } from "../../../tools/local-stack";

const STACK = "wht";
const NETWORK = "coop-wht";
const SUBNET = "10.231.10";
const PRIMARY = `${SUBNET}.11`;
const NAME = "town.social.coop.test";
const MINUTE = 60_000;

const root = fs.mkdtempSync(path.join(os.tmpdir(), "coop-wht-"));
const logs: string[] = [];
const log = (s: string) => logs.push(s);
let stack: Stack;
let acme: AcmeServer;
let up: UpResult;

function ssh(command: string, hostKey: string): { code: number; out: string } {
  const kh = path.join(root, "known_hosts");
  fs.writeFileSync(kh, `${PRIMARY} ${hostKey}\n`);
  const r = spawnSync(
    "ssh",
    ["-F", "/dev/null", "-i", path.join(root, "state", "deploy_key"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
      "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${kh}`, "-o", "ConnectTimeout=10", `coop@${PRIMARY}`, command],
    { encoding: "utf8", timeout: 60_000 },
  );
  return { code: r.status ?? 1, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

beforeAll(async () => {
  fs.mkdirSync(path.join(root, "state"), { recursive: true });
  acme = startAcmeServer(`${SUBNET}.1`, path.join(root, "acme"), log);
  const host = { provider: "local", location: "local", size: "local", volumeGb: 10, roles: ["hometown"] };
  stack = await openLocalStack({
    stateDir: path.join(root, "state"),
    stackName: STACK,
    stackFile: "Pulumi.local.yaml",
    config: {
      ...acme.config,
      stackRole: "town",
      registrations: "open",
      hosts: JSON.stringify({ primary: host }),
      versions: JSON.stringify({ hometown: "v4.5.11+hometown-1.2.1", postgres: 15 }),
      localCloud: JSON.stringify({ network: NETWORK, subnet4: `${SUBNET}.0/24`, subnet6: "fd42:231:10::/64" }),
    },
    secrets: localSecrets(path.join(root, "state")),
    log,
  });
  up = await stack.up({ onOutput: log });
}, 20 * MINUTE);

afterAll(async () => {
  if (stack) await stack.destroy({ onOutput: log }).catch((e: Error) => log(`destroy failed: ${e.message}`));
  await acme?.stop();
  fs.writeFileSync(path.join(os.tmpdir(), "coop-wht-last.log"), logs.join("\n"));
  fs.rmSync(root, { recursive: true, force: true });
}, 10 * MINUTE);

describe("a Hometown stack from nothing (real engine, a real machine)", () => {
  it("deploys the Hometown-style release over HTTPS, with its owner account and its units", async () => {
    expect(up.summary.result).toBe("succeeded");
    const out = await stack.outputs();
    expect(out.names.value).toEqual([NAME]);
    expect(out.appRelease.value).toBe("v1.2.0+hometown-1.0.0");
    const hostKey = String(out.primaryHostKey.value);
    // From the host itself, through nginx, verified against the host's trust store (the test ACME root).
    const version = ssh(`curl -fsS --max-time 5 --resolve ${NAME}:443:127.0.0.1 https://${NAME}/version`, hostKey);
    expect(version.out.trim()).toBe("v1.2.0+hometown-1.0.0");
    expect(ssh("readlink /home/mastodon/current", hostKey).out.trim()).toBe("releases/v1.2.0+hometown-1.0.0");
    expect(logs.join("")).toContain(`app: hometown serving https://${NAME} through nginx`);
    expect(ssh("sudo sed -n 's/^username=//p' /etc/coop/admin-password", hostKey).out.trim()).toBe("ops");
    expect(ssh("systemctl is-enabled coop-fixture-web.service", hostKey).out.trim()).toBe("enabled");
    // No secondary: no backup of its own, and the chain's hop runs without a drill.
    expect(out.lastDrill?.value).toBeUndefined();
    expect(out.upgradePath.value).toBe("v1.2.0+hometown-1.0.0");
  });

  it("opens sign-ups as the config says, changes them when it changes, and leaves the admins' own choice alone otherwise", async () => {
    const hostKey = String((await stack.outputs()).primaryHostKey.value);
    const instance = () => JSON.parse(ssh(`curl -fsS --max-time 5 --resolve ${NAME}:443:127.0.0.1 https://${NAME}/api/v1/instance`, hostKey).out) as { registrations: boolean; approval_required: boolean };
    const mode = () => ssh(`sudo -u postgres psql -X -A -t -d mastodon_production -c "select value from settings where var = 'registrations_mode'"`, hostKey).out.trim();
    expect(instance()).toMatchObject({ registrations: true, approval_required: false });
    expect(mode()).toBe("--- open");
    expect(logs.join("\n")).toContain("registrations: open");
    // An admin closes sign-ups in the admin settings: an unchanged config runs nothing and keeps that.
    expect(ssh(`sudo -u postgres psql -X -q -d mastodon_production -c "update settings set value = E'--- none\\\\n' where var = 'registrations_mode'"`, hostKey).code).toBe(0);
    expect(instance().registrations).toBe(false);
    const same = await stack.up({ onOutput: log });
    expect(Object.keys(same.summary.resourceChanges ?? {})).toEqual(["same"]);
    expect(instance().registrations).toBe(false);
    // The config changes: that one command is replaced, and its create runs again.
    await stack.setConfig("socialcoop:registrations", { value: "approved" });
    const changed = await stack.up({ onOutput: log });
    expect(changed.summary.resourceChanges).toMatchObject({ replace: 1 });
    expect(Object.keys(changed.summary.resourceChanges ?? {}).sort()).toEqual(["replace", "same"]);
    expect(instance()).toMatchObject({ registrations: true, approval_required: true });
  }, 10 * MINUTE);

  it("destroy removes the machine and the bridge", async () => {
    const result = await stack.destroy({ onOutput: log });
    expect(result.summary.result).toBe("succeeded");
    expect(spawnSync("ip", ["link", "show", NETWORK]).status).not.toBe(0);
    expect(spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout).not.toContain(`${STACK}-`);
  }, 10 * MINUTE);
});
