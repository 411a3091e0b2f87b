// The cloud-init volume script against a real block device (a loop device) and a real ext4 mount.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const SCRIPT = path.join(__dirname, "..", "..", "..", "cloud-init", "mount-data-volume.sh");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "coop-mount-"));
const byId = path.join(tmp, "by-id");
const mnt = path.join(tmp, "srv");
const fstab = path.join(tmp, "fstab");
let loop = "";

function runScript(glob: string, timeout = "0", env: Record<string, string> = {}) {
  return spawnSync("bash", [SCRIPT, glob, mnt, timeout], { encoding: "utf8", env: { ...process.env, COOP_FSTAB: fstab, ...env } });
}

beforeAll(() => {
  const img = path.join(tmp, "volume.img");
  execFileSync("truncate", ["-s", "32M", img]);
  loop = execFileSync("losetup", ["-f", "--show", img], { encoding: "utf8" }).trim();
  fs.mkdirSync(byId);
  fs.symlinkSync(loop, path.join(byId, "scsi-0HC_Volume_1234"));
  fs.writeFileSync(fstab, "# test fstab\n");
});

afterAll(() => {
  spawnSync("umount", [mnt]);
  if (loop) spawnSync("losetup", ["-d", loop]);
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("mount-data-volume.sh", () => {
  it("fails with a clear message when no device appears within the timeout", () => {
    const r = runScript(path.join(byId, "scsi-0DO_Volume_*"));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/no device matched .*scsi-0DO_Volume_\* after 0s/);
  });

  it("formats a blank volume, mounts it by UUID with nofail, and a second run changes nothing", () => {
    const first = runScript(path.join(byId, "scsi-0HC_Volume_*"));
    expect(first.stderr).toMatch(/formatting/);
    expect(first.status).toBe(0);
    expect(spawnSync("mountpoint", ["-q", mnt]).status).toBe(0);
    fs.writeFileSync(path.join(mnt, "keep.txt"), "data");
    const entries = () => fs.readFileSync(fstab, "utf8").split("\n").filter((l) => l.startsWith("UUID="));
    expect(entries()).toHaveLength(1);
    expect(entries()[0]).toMatch(new RegExp(`^UUID=[0-9a-f-]{36} ${mnt} ext4 defaults,nofail,discard 0 2$`));

    const second = runScript(path.join(byId, "scsi-0HC_Volume_*"));
    expect(second.status).toBe(0);
    expect(entries()).toHaveLength(1);

    // After a reboot (unmounted), it mounts again without reformatting: the file survives.
    execFileSync("umount", [mnt]);
    const third = runScript(path.join(byId, "scsi-0HC_Volume_*"));
    expect(third.status).toBe(0);
    expect(third.stderr).not.toMatch(/formatting/);
    expect(fs.readFileSync(path.join(mnt, "keep.txt"), "utf8")).toBe("data");
    expect(entries()).toHaveLength(1);
  });

  it("in a container (no udev) mounts by device path and writes a mount unit that needs no udev", () => {
    // Local machines (systemd-nspawn) see the volume at a fixed path; systemd ignores fstab's device
    // entries in a container, so the script writes <mount-point>.mount by path, wanted by local-fs.target.
    execFileSync("umount", [mnt]);
    const units = path.join(tmp, "units");
    const r = runScript(loop, "0", { COOP_MOUNT_UNIT_DIR: units });
    expect(r.status).toBe(0);
    expect(r.stderr).not.toMatch(/formatting/);
    expect(spawnSync("findmnt", ["-n", "-o", "SOURCE", mnt], { encoding: "utf8" }).stdout.trim()).toBe(loop);
    expect(fs.readFileSync(path.join(mnt, "keep.txt"), "utf8")).toBe("data");
    const unitName = execFileSync("systemd-escape", ["--path", "--suffix=mount", mnt], { encoding: "utf8" }).trim();
    const unit = fs.readFileSync(path.join(units, unitName), "utf8");
    expect(unit).toContain(`What=${loop}\n`);
    expect(unit).toContain(`Where=${mnt}\n`);
    expect(unit).toContain("Options=defaults,nofail,discard\n");
    expect(unit).toContain("WantedBy=local-fs.target\n");
    expect(fs.readlinkSync(path.join(units, "local-fs.target.wants", unitName))).toBe(`../${unitName}`);
  });
});
