import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { renderUserData, sshdDropIn } from "../../../components/lib/cloud-init";
import { DATA_DEVICE_GLOB } from "../../../components/host";
import { OPERATOR_KEY } from "../../support/stack-config";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "coop-cloud-init-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function schemaCheck(text: string): { ok: boolean; output: string } {
  const file = path.join(tmp, `user-data-${Math.random().toString(36).slice(2)}.yaml`);
  fs.writeFileSync(file, text);
  const r = spawnSync("cloud-init", ["schema", "--config-file", file], { encoding: "utf8" });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

const userData = renderUserData({
  adminUser: "coop",
  authorizedKeys: [OPERATOR_KEY],
  dataDeviceGlob: DATA_DEVICE_GLOB.hcloud,
  hostname: "prod-primary",
});

describe("cloud-init user-data", () => {
  it("passes cloud-init's own schema validation", () => {
    const r = schemaCheck(userData);
    expect(r.output).toMatch(/Valid cloud-config/);
    expect(r.ok).toBe(true);
  });

  it("the validator used here does reject a broken document (control)", () => {
    const broken = userData.replace("ssh_pwauth: false", "ssh_pwauth: [1, 2]");
    expect(broken).not.toBe(userData);
    expect(schemaCheck(broken).ok).toBe(false);
  });

  it("has exactly the expected top-level keys (the schema check ignores unknown ones)", () => {
    const doc = parse(userData) as Record<string, unknown>;
    expect(Object.keys(doc).sort()).toEqual(
      ["disable_root", "hostname", "package_update", "package_upgrade", "packages", "preserve_hostname", "runcmd", "ssh_pwauth", "users", "write_files"].sort(),
    );
    expect(doc).toMatchObject({ disable_root: true, ssh_pwauth: false });
    expect(doc.packages).toEqual(expect.arrayContaining(["unattended-upgrades", "fail2ban", "chrony"]));
    const user = (doc.users as Record<string, unknown>[])[0];
    expect(user).toMatchObject({ name: "coop", lock_passwd: true, ssh_authorized_keys: [OPERATOR_KEY] });
    const runcmd = doc.runcmd as string[][];
    expect(runcmd[0]).toEqual(["/usr/local/sbin/coop-mount-data-volume", DATA_DEVICE_GLOB.hcloud, "/srv"]);
  });

  it("the sshd drop-in is accepted by the real sshd and yields keys-only, no root, COOP_* env", () => {
    const dropIn = path.join(tmp, "50-socialcoop.conf");
    fs.writeFileSync(dropIn, sshdDropIn("coop"));
    const hostKey = path.join(tmp, "host_ed25519");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
    const cfg = path.join(tmp, "sshd_config");
    fs.writeFileSync(cfg, `Include ${dropIn}\nHostKey ${hostKey}\nPidFile ${tmp}/sshd.pid\n`);
    fs.mkdirSync("/run/sshd", { recursive: true });
    const effective = execFileSync("/usr/sbin/sshd", ["-T", "-f", cfg], { encoding: "utf8" });
    expect(effective).toMatch(/^permitrootlogin no$/m);
    expect(effective).toMatch(/^passwordauthentication no$/m);
    expect(effective).toMatch(/^kbdinteractiveauthentication no$/m);
    expect(effective).toMatch(/^allowusers coop$/m);
    expect(effective).toMatch(/^acceptenv COOP_\*$/m);
  });
});
