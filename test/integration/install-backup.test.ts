// install-backup.sh for both roles against a temporary root (COOP_ETC_DIR, COOP_SYSTEMD_DIR), with
// COOP_SKIP_APT and COOP_SKIP_SYSTEMCTL: files, modes, owners, parseable configs, verifiable units,
// idempotence, convergence after a kill, and secrets in no output and no readable file.
import { createHash } from "node:crypto";
import { appendFileSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureUser, makeTempDir, run, type RunResult, type SystemUser, type TempDir } from "../../src/local";

const REPO_SCRIPTS = resolve(__dirname, "../../scripts");
const SECRETS = {
  COOP_RESTIC_PASSWORD: "IB-RESTIC-PASSWORD-9f2c1e7a55d04b1e",
  COOP_PGBACKREST_CIPHER_PASS: "IB-CIPHER-PASS-0b7e4a1f9c3d2e68",
  COOP_S3_SECRET_ACCESS_KEY: 'IB-S3-SECRET/with"quote$and`tick\\',
};
// Closed loopback port: pgBackRest on the database side then fails to connect, after parsing its config.
const PEER_PORT = "1";

let tmp: TempDir;
// A frozen copy of scripts/: an edit in the working tree mid-test would otherwise look like a change.
let SCRIPTS: string;
let dbUser: SystemUser;
let repoUser: SystemUser;
const outputs: string[] = [];

type Role = "db" | "repo";
const root = (role: Role) => join(tmp.path, role);
const etc = (role: Role) => join(root(role), "etc");

function baseEnv(role: Role): Record<string, string> {
  return {
    ...SECRETS,
    COOP_BACKUP_ROLE: role,
    COOP_PEER_HOST: "127.0.0.1",
    COOP_PEER_SSH_PORT: PEER_PORT,
    COOP_ETC_DIR: etc(role),
    COOP_SYSTEMD_DIR: join(root(role), "systemd"),
    COOP_STATE_DIR: join(root(role), "state"),
    COOP_SKIP_APT: "1",
    COOP_SKIP_SYSTEMCTL: "1",
    COOP_PG_OS_USER: dbUser.name,
    COOP_REPO_OS_USER: repoUser.name,
    COOP_BACKUP_HOME: join(root(role), "var"),
    COOP_REPO_PATH: join(root(role), "srv", "pgbackrest"),
    COOP_RESTIC_REPO_PATH: join(root(role), "srv", "restic"),
    COOP_PG_DATA: join(root(role), "pgdata"),
    COOP_PG_SOCKET: join(root(role), "no-postgres-here"),
    COOP_SCRIPTS_FROM: SCRIPTS,
    COOP_SCRIPTS_DIR: join(root(role), "opt", "scripts"),
    COOP_S3_ENDPOINT: "https://s3.invalid",
    COOP_S3_BUCKET: "socialcoop-backups",
    COOP_S3_REGION: "eu-central-003",
    COOP_S3_ACCESS_KEY_ID: "003abcdef",
  };
}

async function install(role: Role, extra: Record<string, string> = {}): Promise<RunResult> {
  const r = await run("bash", [join(SCRIPTS, "install-backup.sh")], { env: { ...baseEnv(role), ...extra }, allowFailure: true, timeoutMs: 60_000 });
  outputs.push(r.stdout, r.stderr);
  return r;
}

function ok(r: RunResult, what: string): RunResult {
  expect(r.code, `${what}:\n${r.stderr.slice(-3000)}`).toBe(0);
  return r;
}

function keysOf(stdout: string): { COOP_PEER_PUBLIC_KEY: string; COOP_PEER_HOST_KEY: string } {
  const user = /^backup-user-key (.+)$/m.exec(stdout)?.[1];
  const host = /^host-key (.+)$/m.exec(stdout)?.[1];
  if (!user || !host) throw new Error(`no keys in stdout: ${stdout}`);
  return { COOP_PEER_PUBLIC_KEY: user, COOP_PEER_HOST_KEY: host };
}

/** Every file under a folder: content hash, mode and owner (state files and logs aside). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) {
        if (!["state", "lock", "log"].includes(name)) walk(p);
      } else {
        out[p.slice(dir.length)] = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${createHash("sha256").update(readFileSync(p)).digest("hex")}`;
      }
    }
  };
  walk(dir);
  return out;
}

function mode(path: string): string {
  return (statSync(path).mode & 0o777).toString(8).padStart(4, "0");
}

let repoKeys: ReturnType<typeof keysOf>;
let dbKeys: ReturnType<typeof keysOf>;

beforeAll(async () => {
  dbUser = await ensureUser("coop-ib-db");
  repoUser = await ensureUser("coop-ib-repo");
  tmp = makeTempDir("install-backup");
  SCRIPTS = join(tmp.path, "upload");
  cpSync(REPO_SCRIPTS, SCRIPTS, { recursive: true });
  for (const role of ["db", "repo"] as const) {
    mkdirSync(join(etc(role), "ssh"), { recursive: true });
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(etc(role), "ssh", "ssh_host_ed25519_key")]);
  }
  // The order `pulumi up` uses: repository host, database host (trusting the repository's keys), repository again.
  repoKeys = keysOf(ok(await install("repo"), "repo, first pass").stdout);
  dbKeys = keysOf(ok(await install("db", repoKeys), "db").stdout);
  ok(await install("repo", dbKeys), "repo, second pass");
});

afterAll(() => tmp?.remove());

describe("install-backup.sh on a temporary root", () => {
  it("writes secrets only to files that root (0600) or the backup user's group (0640) can read", () => {
    const files: [string, string, string][] = [
      [join(etc("db"), "coop", "restic-password"), "0600", "root"],
      [join(etc("db"), "coop", "backup.env"), "0600", "root"],
      [join(etc("db"), "pgbackrest", "pgbackrest.conf"), "0640", dbUser.name],
      [join(etc("repo"), "coop", "restic-password"), "0600", "root"],
      [join(etc("repo"), "coop", "backup.env"), "0600", "root"],
      [join(etc("repo"), "pgbackrest", "pgbackrest.conf"), "0640", repoUser.name],
      [join(etc("repo"), "pgbackrest", "drill.conf"), "0640", dbUser.name],
    ];
    for (const [path, want, group] of files) {
      expect(mode(path), path).toBe(want);
      expect(statSync(path).uid, path).toBe(0);
      expect(statSync(path).gid, path).toBe(group === "root" ? 0 : group === dbUser.name ? dbUser.gid : repoUser.gid);
    }
    expect(readFileSync(join(etc("repo"), "coop", "restic-password"), "utf8")).toBe(SECRETS.COOP_RESTIC_PASSWORD);
    expect(mode(join(etc("db"), "coop", "backup-ssh", "id_ed25519"))).toBe("0600");
    expect(statSync(join(etc("db"), "coop", "backup-ssh", "id_ed25519")).uid).toBe(dbUser.uid);
    expect(statSync(join(etc("repo"), "coop", "backup-ssh", "id_ed25519")).uid).toBe(repoUser.uid);
  });

  it("secrets appear in no output, and in no file that anyone but root and the backup users can read", () => {
    const all = outputs.join("\n");
    expect(all.length).toBeGreaterThan(500);
    for (const s of [...Object.values(SECRETS), "IB-S3-SECRET", "IB-RESTIC", "IB-CIPHER"]) expect(all.includes(s), `${s} in script output`).toBe(false);
    const holders: string[] = [];
    for (const role of ["db", "repo"] as const) {
      for (const rel of Object.keys(snapshot(root(role)))) {
        const path = root(role) + rel;
        const text = readFileSync(path, "utf8");
        // The S3 key is stored escaped in backup.env: look for its distinctive head too.
        if ([...Object.values(SECRETS), "IB-S3-SECRET/with"].some((s) => text.includes(s))) {
          holders.push(path.slice(tmp.path.length));
          expect(statSync(path).mode & 0o007, `${path} is readable by others`).toBe(0);
        }
      }
    }
    expect(holders.sort()).toEqual(
      ["/db/etc/coop/backup.env", "/db/etc/coop/restic-password", "/db/etc/pgbackrest/pgbackrest.conf",
        "/repo/etc/coop/backup.env", "/repo/etc/coop/restic-password", "/repo/etc/pgbackrest/drill.conf", "/repo/etc/pgbackrest/pgbackrest.conf"].sort(),
    );
  });

  it("the backup environment file parses back to the exact secret (quotes, $ and backslash survive)", async () => {
    const r = await run("bash", ["-c", 'set -a; . "$1"; printf %s "$AWS_SECRET_ACCESS_KEY" | sha256sum', "_", join(etc("db"), "coop", "backup.env")]);
    expect(r.stdout.split(" ")[0]).toBe(createHash("sha256").update(SECRETS.COOP_S3_SECRET_ACCESS_KEY).digest("hex"));
  });

  it("each side trusts the other's key, only from its address, with its host key pinned", () => {
    const auth = (u: SystemUser) => readFileSync(join(u.home, ".ssh", "authorized_keys"), "utf8").trim();
    expect(auth(dbUser)).toBe(`from="127.0.0.1",restrict ${repoKeys.COOP_PEER_PUBLIC_KEY}`);
    expect(auth(repoUser)).toBe(`from="127.0.0.1",restrict ${dbKeys.COOP_PEER_PUBLIC_KEY}`);
    expect(readFileSync(join(etc("db"), "coop", "backup-ssh", "known_hosts"), "utf8").trim()).toBe(`[127.0.0.1]:${PEER_PORT} ${repoKeys.COOP_PEER_HOST_KEY}`);
    expect(readFileSync(join(etc("repo"), "ssh", "sshd_config.d", "60-coop-backup.conf"), "utf8")).toContain(`AllowUsers ${repoUser.name}@127.0.0.1`);
  });

  it("pgBackRest reads every rendered config without a config error (a broken copy shows the check can fail)", async () => {
    const configError = /invalid option|ERROR: \[0(29|31|32|37)\]/;
    const check = async (config: string) => {
      // --repo=1: repo2 is S3 at an .invalid address; the local or SSH repository is enough to load the config.
      const r = await run("timeout", ["30", "pgbackrest", `--config=${config}`, "--stanza=main", "--repo=1", "info"], { allowFailure: true });
      return `${r.stdout}${r.stderr}`;
    };
    const configs = [
      join(etc("db"), "pgbackrest", "pgbackrest.conf"),
      join(etc("repo"), "pgbackrest", "pgbackrest.conf"),
      join(etc("repo"), "pgbackrest", "drill.conf"),
    ];
    for (const c of configs) {
      const out = await check(c);
      expect(out, c).not.toMatch(configError);
      // It got past the config: the repository side reports the (missing) stanza, the database side the SSH hop.
      expect(out, c).toMatch(/stanza: main|remote-0 process|missing stanza/);
    }
    const broken = join(tmp.path, "broken.conf");
    copyFileSync(configs[1], broken);
    appendFileSync(broken, "repo1-retention-fulll=4\n");
    expect(await check(broken)).toMatch(configError);
  });

  it("systemd-analyze verify accepts the units", async () => {
    const which = await run("sh", ["-c", "command -v systemd-analyze"], { allowFailure: true });
    if (which.code !== 0) {
      console.warn("systemd-analyze is not installed: units not verified");
      return;
    }
    const units = [
      ...["coop-backup.service", "coop-backup.timer", "coop-backup-full.service", "coop-backup-full.timer"].map((u) => join(root("db"), "systemd", u)),
      ...["coop-drill.service", "coop-drill.timer"].map((u) => join(root("repo"), "systemd", u)),
    ];
    for (const u of units) expect(existsSync(u), u).toBe(true);
    for (const role of ["db", "repo"] as const) {
      const mine = units.filter((u) => u.startsWith(root(role)));
      const r = await run("systemd-analyze", ["verify", "--man=no", ...mine], { allowFailure: true });
      expect(`${r.code} ${r.stdout}${r.stderr}`.trim(), role).toBe("0");
    }
    const full = readFileSync(join(root("db"), "systemd", "coop-backup-full.timer"), "utf8");
    expect(full).toContain("OnCalendar=*-*-1/7 03:15:00 UTC");
    expect(readFileSync(join(root("db"), "systemd", "coop-backup.service"), "utf8")).toMatch(/Environment=COOP_BACKUP_TYPE=diff[\s\S]*ExecStart=.*\/backup\.sh/);
  });

  it("a second run changes nothing and prints the same keys", async () => {
    const before = { db: snapshot(root("db")), repo: snapshot(root("repo")) };
    expect(keysOf(ok(await install("db", repoKeys), "db again").stdout)).toEqual(dbKeys);
    expect(keysOf(ok(await install("repo", dbKeys), "repo again").stdout)).toEqual(repoKeys);
    expect(snapshot(root("db"))).toEqual(before.db);
    expect(snapshot(root("repo"))).toEqual(before.repo);
  });

  it("a run killed at any step converges when re-run", async () => {
    const before = snapshot(root("db"));
    for (const step of ["ssh", "configs", "units"]) {
      // Change an input, so the killed run leaves a half-updated host behind.
      const killed = await install("db", { ...repoKeys, COOP_RETENTION_FULL: "9", FAULT_AT: step });
      expect(killed.signal ?? killed.code, step).not.toBe(0);
      ok(await install("db", repoKeys), `re-run after a kill at ${step}`);
      expect(snapshot(root("db")), step).toEqual(before);
    }
  });
});
