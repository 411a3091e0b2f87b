// install-backup.sh for both roles against a temporary root (COOP_ETC_DIR, COOP_SYSTEMD_DIR), with
// COOP_SKIP_APT and COOP_SKIP_SYSTEMCTL: files, modes, owners, parseable configs, verifiable units,
// idempotence, convergence after a kill, secrets in no output and no readable file, and --uninstall (the
// Backup component's delete command) with systemctl and sudo stubbed on PATH to record what they are asked.
import { createHash } from "node:crypto";
import { appendFileSync, chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installId, uninstallCommand } from "../../components/backup";
import { ensureUser, makeTempDir, run, startPostgres, type RunResult, type SystemUser, type TempDir } from "../../src/local";

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
    // The alert template as the instance a failed drill starts (OnFailure=coop-alert@%n.service).
    const template = readFileSync(join(root("repo"), "systemd", "coop-alert@.service"), "utf8");
    const instance = join(tmp.path, "coop-alert@coop-drill.service.service");
    writeFileSync(instance, template);
    const a = await run("systemd-analyze", ["verify", "--man=no", instance], { allowFailure: true });
    expect(`${a.code} ${a.stdout}${a.stderr}`.trim()).toBe("0");
    expect(readFileSync(join(root("repo"), "systemd", "coop-drill.service"), "utf8")).toContain("OnFailure=coop-alert@%n.service");
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

  it("an S3 endpoint on its own port with a private CA: pgBackRest and restic are told both; without the CA again, the file goes", async () => {
    const ca = await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=minio.test", "-keyout", "/dev/null"]);
    const pem = ca.stdout;
    const caB64 = Buffer.from(pem).toString("base64");
    const before = snapshot(root("db"));
    const refused = await install("db", { ...repoKeys, COOP_S3_ENDPOINT: "https://s3.invalid:9443", COOP_S3_CA_CERT_B64: "bm90IGEgY2VydA==" });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("COOP_S3_CA_CERT_B64 is not a base64 PEM certificate");
    const pathRefused = await install("db", { ...repoKeys, COOP_S3_ENDPOINT: "https://s3.invalid/socialcoop-backups" });
    expect(pathRefused.stderr).toContain("COOP_S3_ENDPOINT must be https://host or https://host:port");
    expect(snapshot(root("db")), "refused before anything changed").toEqual(before);

    ok(await install("db", { ...repoKeys, COOP_S3_ENDPOINT: "https://s3.invalid:9443", COOP_S3_CA_CERT_B64: caB64 }), "db with the CA");
    const caFile = join(etc("db"), "coop", "s3-ca.pem");
    expect(readFileSync(caFile, "utf8")).toBe(pem);
    expect(mode(caFile)).toBe("0644");
    const conf = readFileSync(join(etc("db"), "pgbackrest", "pgbackrest.conf"), "utf8");
    expect(conf).toMatch(/^repo2-s3-endpoint=s3\.invalid$/m);
    expect(conf).toMatch(/^repo2-storage-port=9443$/m);
    expect(conf).toContain(`repo2-storage-ca-file=${caFile}\n`);
    const env = readFileSync(join(etc("db"), "coop", "backup.env"), "utf8");
    expect(env).toContain(`SSL_CERT_FILE="${caFile}"`);
    expect(env).toContain("s3:https://s3.invalid:9443/socialcoop-backups/restic");
    // pgBackRest takes the new options (a misspelt one fails the same check above).
    const info = await run("timeout", ["30", "pgbackrest", `--config=${join(etc("db"), "pgbackrest", "pgbackrest.conf")}`, "--stanza=main", "--repo=1", "info"], { allowFailure: true });
    expect(`${info.stdout}${info.stderr}`).not.toMatch(/invalid option|ERROR: \[0(29|31|32|37)\]/);

    ok(await install("db", repoKeys), "db as before");
    expect(existsSync(caFile)).toBe(false);
    expect(snapshot(root("db"))).toEqual(before);
  });
});

describe("install-backup.sh --uninstall (the Backup component's delete)", () => {
  // No systemd runs here: a systemctl on PATH records each call, so the test sees exactly what a host is asked.
  let bin: string;
  let calls: string;
  // What OnFailure= of every unit starts (alert.sh); a file, never enabled or started by the install.
  const ALERT_TEMPLATE = "coop-alert@.service";
  const units = {
    db: ["coop-backup.timer", "coop-backup-full.timer", "coop-backup.service", "coop-backup-full.service"],
    repo: ["coop-drill.timer", "coop-drill.service"],
  };
  beforeAll(() => {
    bin = join(tmp.path, "bin");
    calls = join(tmp.path, "systemctl.calls");
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, "systemctl"), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${calls}'\n`);
    // We are root already: sudo (whose sudoers keep COOP_*) runs the rest as it is.
    writeFileSync(join(bin, "sudo"), '#!/bin/sh\nexec "$@"\n');
    for (const f of ["systemctl", "sudo"]) chmodSync(join(bin, f), 0o755);
  });
  const systemctlCalls = () => (existsSync(calls) ? readFileSync(calls, "utf8").trim().split("\n").filter(Boolean) : []);
  const unitFiles = (role: Role) => readdirSync(join(root(role), "systemd")).filter((f) => f.startsWith("coop-")).sort();
  /** What a host runs for the component's delete: the exact command text backup.ts declares. */
  async function uninstall(role: Role, extra: Record<string, string> = {}): Promise<RunResult> {
    rmSync(calls, { force: true });
    const e: Record<string, string> = { ...baseEnv(role), ...extra };
    delete e.COOP_SKIP_SYSTEMCTL;
    const r = await run("bash", ["-c", uninstallCommand(e)], { env: { ...e, PATH: `${bin}:${process.env.PATH ?? ""}` }, allowFailure: true, timeoutMs: 60_000 });
    outputs.push(r.stdout, r.stderr);
    return r;
  }

  it("replacing an install (new triggers): the old install's delete leaves the new one in place", async () => {
    const oldId = installId(["install-v1", "{}"]);
    const newId = installId(["install-v2", "{}"]);
    ok(await install("repo", { ...dbKeys, COOP_INSTALL_ID: oldId }), "repo install, old");
    // The engine creates the replacement first, then deletes the one it replaces.
    ok(await install("repo", { ...dbKeys, COOP_INSTALL_ID: newId }), "repo install, replacement");
    const r = ok(await uninstall("repo", { COOP_INSTALL_ID: oldId }), "delete of the replaced install");
    expect(r.stderr).toContain(`a newer install (${newId}) replaced ${oldId}: nothing to remove`);
    expect(systemctlCalls()).toEqual([]);
    expect(unitFiles("repo")).toEqual([...units.repo, ALERT_TEMPLATE].sort());
  });

  it("removing the component: timers and units stopped, disabled and removed, sshd drop-in gone, data kept", async () => {
    const newId = installId(["install-v2", "{}"]);
    for (const role of ["db", "repo"] as const) {
      const before = snapshot(root(role));
      expect(unitFiles(role), role).toEqual([...units[role], ALERT_TEMPLATE].sort());
      expect(existsSync(join(root(role), "systemd", "prometheus-node-exporter.service.d", "50-coop.conf")), role).toBe(true);
      const r = ok(await uninstall(role, { COOP_INSTALL_ID: role === "repo" ? newId : "" }), `uninstall ${role}`);
      expect(systemctlCalls(), role).toEqual([
        "cat prometheus-node-exporter",
        "disable --now prometheus-node-exporter",
        `disable --now ${units[role].join(" ")}`,
        "daemon-reload",
        `reset-failed ${units[role].join(" ")}`,
        "reload ssh",
      ]);
      expect(unitFiles(role), role).toEqual([]);
      expect(existsSync(join(root(role), "systemd", "prometheus-node-exporter.service.d")), role).toBe(false);
      expect(existsSync(join(etc(role), "ssh", "sshd_config.d", "60-coop-backup.conf")), role).toBe(false);
      expect(existsSync(join(etc(role), "coop", "backup-install.id")), role).toBe(false);
      // Kept: configs, keys and (on the repository host) both repositories, unchanged.
      const after = snapshot(root(role));
      for (const kept of ["/etc/coop/backup.env", "/etc/coop/restic-password", "/etc/pgbackrest/pgbackrest.conf", "/etc/coop/backup-ssh/id_ed25519"]) {
        expect(after[kept], `${role}${kept}`).toBe(before[kept]);
      }
      if (role === "repo") {
        for (const d of ["pgbackrest", "restic"]) expect(statSync(join(root(role), "srv", d)).isDirectory()).toBe(true);
      } else {
        // PostgreSQL is not reachable here: the script says so and how to finish by hand, instead of passing silently.
        expect(r.stderr).toMatch(/WAL archiving NOT turned off: PostgreSQL is not reachable .*alter system set archive_command = 'true'/);
      }
    }
  });

  it("a second uninstall, or one on a host with no install, changes nothing and succeeds", async () => {
    const before = snapshot(root("db"));
    const again = ok(await uninstall("db"), "uninstall db again");
    expect(again.stderr).toContain("no coop backup or drill units in");
    expect(systemctlCalls()).toEqual([]);
    expect(snapshot(root("db"))).toEqual(before);
    const none = ok(await uninstall("db", { COOP_SCRIPTS_DIR: join(tmp.path, "nothing-installed") }), "uninstall, nothing installed");
    expect(none.stdout).toContain("no backup install on this host: nothing to remove");
  });

  it("on the database host it stops WAL archiving into the removed repository, and only pgBackRest's", async () => {
    // What configure_archiving sets: with archive_mode on, this command failing forever would fill pg_wal.
    const ours = `pgbackrest --config=${join(etc("db"), "pgbackrest", "pgbackrest.conf")} --stanza=main archive-push %p`;
    const pg = await startPostgres({ user: dbUser.name, archiveCommand: ours });
    try {
      // The script's psql connects as its OS user, as `postgres` does on a host.
      await pg.psql(`create role "${dbUser.name}" superuser login`);
      await pg.psql(`alter system set archive_command = '${ours}'; alter system set archive_mode = on; select pg_reload_conf()`);
      const at = { COOP_PG_SOCKET: pg.socketDir, COOP_PG_PORT: String(pg.port) };
      const r = ok(await uninstall("db", at), "uninstall db with PostgreSQL running");
      expect(r.stderr).toMatch(/WAL archiving stopped: archive_command is now 'true', so PostgreSQL recycles WAL/);
      expect(await pg.psql("show archive_command")).toBe("true");
      expect(readFileSync(join(pg.dataDir, "postgresql.auto.conf"), "utf8")).toContain("archive_command = 'true'");
      // archive_mode is the Database component's (on from creation): left on, so a reinstall needs no restart.
      expect(await pg.psql("show archive_mode")).toBe("on");
      // Someone else's archive_command is not ours to change.
      await pg.psql("alter system set archive_command = 'cp %p /elsewhere/%f'; select pg_reload_conf()");
      const again = ok(await uninstall("db", at), "uninstall db, foreign archive_command");
      expect(again.stderr).toContain("archive_command is not pgBackRest's ('cp %p /elsewhere/%f'): left as it is");
      expect(await pg.psql("show archive_command")).toBe("cp %p /elsewhere/%f");
    } finally {
      await pg.stop();
    }
  });

  it("refuses an unknown argument instead of installing", async () => {
    const r = await run("bash", [join(SCRIPTS, "install-backup.sh"), "--uninstal"], { env: baseEnv("db"), allowFailure: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("unknown argument '--uninstal': install-backup.sh takes none, or --uninstall");
  });

  it("a reinstall after the uninstall brings the timers back", async () => {
    ok(await install("db", repoKeys), "db reinstall");
    expect(unitFiles("db")).toEqual([...units.db, ALERT_TEMPLATE].sort());
  });
});
