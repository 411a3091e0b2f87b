// Renders the cloud-init user-data that hardens a fresh Debian 12 host. Rendered from a typed
// document with the yaml library (not string templates), so no value can break the YAML.
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";

export interface CloudInitArgs {
  /** The sudo user that operators and `pulumi up` log in as. */
  readonly adminUser: string;
  /** Every public key allowed to log in as adminUser (operators' and the deploy key). */
  readonly authorizedKeys: readonly string[];
  /** Glob of the data volume's device as the provider names it under /dev/disk/by-id. */
  readonly dataDeviceGlob: string;
  readonly hostname: string;
}

/** Where the data volume is mounted: PostgreSQL, media and the backup spool live there. */
export const DATA_MOUNT = "/srv";

const MOUNT_SCRIPT = fs.readFileSync(path.join(__dirname, "..", "..", "cloud-init", "mount-data-volume.sh"), "utf8");

/** The sshd drop-in: keys only, no root, and `COOP_*` environment for command resources. */
export function sshdDropIn(adminUser: string): string {
  return [
    "# Managed by the social.coop Pulumi program (components/lib/cloud-init.ts).",
    "PermitRootLogin no",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PubkeyAuthentication yes",
    `AllowUsers ${adminUser}`,
    "# @pulumi/command passes each parameter as a COOP_* environment variable.",
    "AcceptEnv COOP_*",
    "",
  ].join("\n");
}

/**
 * The commands' COOP_* parameters pass through sudo kept, not listed: sudo logs the values of variables
 * named with `--preserve-env=` (ENV=NAME=value) in the journal, and some of them are secrets.
 */
export function sudoersDropIn(adminUser: string): string {
  return [
    "# Managed by the social.coop Pulumi program: @pulumi/command's COOP_* parameters reach the scripts",
    "# through sudo without sudo logging their values (it logs those given with --preserve-env=).",
    `Defaults:${adminUser} env_keep += "COOP_*"`,
    "",
  ].join("\n");
}

export function renderUserData(args: CloudInitArgs): string {
  const doc = {
    hostname: args.hostname,
    preserve_hostname: false,
    users: [
      {
        name: args.adminUser,
        groups: ["sudo"],
        shell: "/bin/bash",
        sudo: "ALL=(ALL) NOPASSWD:ALL",
        lock_passwd: true,
        ssh_authorized_keys: [...args.authorizedKeys],
      },
    ],
    disable_root: true,
    ssh_pwauth: false,
    package_update: true,
    package_upgrade: true,
    // python3-systemd: Debian 12 logs sshd only to the journal, which fail2ban reads through it.
    packages: ["unattended-upgrades", "apt-listchanges", "fail2ban", "python3-systemd", "chrony"],
    write_files: [
      { path: "/etc/ssh/sshd_config.d/50-socialcoop.conf", permissions: "0644", owner: "root:root", content: sshdDropIn(args.adminUser) },
      {
        path: "/etc/apt/apt.conf.d/20auto-upgrades",
        permissions: "0644",
        content: 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n',
      },
      {
        path: "/etc/fail2ban/jail.d/sshd.local",
        permissions: "0644",
        content: "[sshd]\nenabled = true\nbackend = systemd\nmaxretry = 5\nbantime = 1h\n",
      },
      { path: "/usr/local/sbin/coop-mount-data-volume", permissions: "0755", owner: "root:root", content: MOUNT_SCRIPT },
      { path: "/etc/sudoers.d/90-coop-env", permissions: "0440", owner: "root:root", content: sudoersDropIn(args.adminUser) },
    ],
    runcmd: [
      ["/usr/local/sbin/coop-mount-data-volume", args.dataDeviceGlob, DATA_MOUNT],
      ["systemctl", "restart", "ssh"],
      ["systemctl", "enable", "--now", "fail2ban", "chrony", "unattended-upgrades"],
    ],
  };
  return `#cloud-config\n${stringify(doc, { lineWidth: 0, sortMapEntries: false })}`;
}
