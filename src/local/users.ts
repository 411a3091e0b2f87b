import { execFileSync } from "node:child_process";
import { run } from "./run";

export interface SystemUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

/** The unprivileged account the harness runs servers as unless told otherwise. */
export const DEFAULT_TEST_USER = "coop-test";

function lookup(name: string): SystemUser | undefined {
  try {
    const line = execFileSync("getent", ["passwd", name], { encoding: "utf8" }).trim();
    const [, , uid, gid, , home] = line.split(":");
    return { name, uid: Number(uid), gid: Number(gid), home: home ?? `/home/${name}` };
  } catch {
    return undefined;
  }
}

/**
 * Creates the user if missing and sets its shadow password to `*`: with `UsePAM no`, sshd treats `!`
 * (useradd's default) as a locked account and refuses even key logins, while `*` only forbids passwords.
 */
export async function ensureUser(name: string): Promise<SystemUser> {
  // Test files run in parallel forks and useradd/usermod fail while another holds /etc/passwd's lock.
  let lastError = "";
  for (let attempt = 0; attempt < 20; attempt++) {
    if (!lookup(name)) {
      const r = await run("useradd", ["-m", "-s", "/bin/bash", name], { allowFailure: true });
      lastError = r.stderr;
    }
    const user = lookup(name);
    if (user) {
      const r = await run("usermod", ["-p", "*", name], { allowFailure: true });
      if (r.code === 0) return user;
      lastError = r.stderr;
    }
    await new Promise((resolve) => setTimeout(resolve, 100 + attempt * 50));
  }
  throw new Error(`could not create user ${name}: ${lastError.trim()}`);
}
