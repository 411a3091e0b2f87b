// `coopctl status` on facts status.sh really gathered from a backed-up, drilled instance: healthy exits 0;
// a failed drill, a disk past its threshold and a certificate near expiry each exit 1 and are named.
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackupRig } from "../../src/local/backup-rig";
import type { BackupFacts, DiskFacts, HostFacts } from "../../src/reports/status";
import { run } from "../../src/local/run";
import { main as status } from "../../src/cli/status";
import { ok, restic, rigWithInstance } from "./backup/rig-support";

/** status.sh's JSON as it prints it (a superset of what the evaluator reads). */
type Facts = HostFacts & { readonly backup: (BackupFacts & { readonly newestInRepository: { readonly label: string } | null }) | null };

let rig: BackupRig;
let extra: Record<string, string>;
const outputs: string[] = [];

/** A self-signed certificate valid for `days` days, as certbot's fullchain.pem would be read. */
async function certificate(days: number, name: string): Promise<string> {
  const dir = join(rig.dir, `cert-${name}`);
  mkdirSync(dir, { recursive: true });
  const cert = join(dir, "fullchain.pem");
  await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "privkey.pem"), "-out", cert, "-days", String(days), "-subj", `/CN=${name}`]);
  return cert;
}

/** status.sh with the rig's environment; its stdout is the facts. */
async function facts(more: Record<string, string> = {}): Promise<{ file: string; value: Facts }> {
  const r = ok(await rig.script("status.sh", { ...extra, ...more }), "status.sh");
  outputs.push(r.output);
  const file = join(rig.dir, `facts-${outputs.length}.json`);
  writeFileSync(file, r.stdout);
  return { file, value: JSON.parse(r.stdout) as Facts };
}

function dataDisk(f: Facts): DiskFacts {
  const d = f.disks.find((x) => x.what === "data");
  if (!d) throw new Error(`status.sh reported no data disk: ${JSON.stringify(f.disks)}`);
  return d;
}

async function coopctl(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await status(argv, { out: (t) => (out += t), err: (t) => (err += t), env });
  outputs.push(out, err);
  return { code, out, err };
}

beforeAll(async () => {
  rig = await rigWithInstance(7);
  ok(await rig.script("backup.sh"), "backup");
  ok(await rig.script("drill.sh"), "drill");
  const appRoot = join(rig.dir, "app");
  mkdirSync(join(appRoot, "releases", "v4.3.8"), { recursive: true });
  symlinkSync("releases/v4.3.8", join(appRoot, "current"));
  extra = {
    COOP_REPO_PATH: rig.pgbackrestRepoDir,
    COOP_TLS_CERT: await certificate(90, "healthy.invalid"),
    COOP_APP_ROOT: appRoot,
    COOP_MAINTENANCE_FLAG: join(rig.dir, "maintenance", "on"),
  };
});
afterAll(async () => {
  await rig?.stop();
});

describe("coopctl status", () => {
  let healthy: { file: string; value: Facts };

  it("status.sh reports the backup, the drill, WAL archiving, disks, certificate, app and host as they are", async () => {
    healthy = await facts();
    const f = healthy.value;
    const manifest = JSON.parse(readFileSync(join(rig.env.COOP_SPOOL_DIR, "manifests", "latest.json"), "utf8"));
    expect(f.host).toBe(hostname());
    expect(f.backup?.manifest).toBe(manifest.id);
    expect(f.backup?.backupLabel).toBe(manifest.backupLabel);
    expect(f.backup?.ageSeconds).toBeGreaterThanOrEqual(0);
    expect(f.backup?.ageSeconds).toBeLessThan(900);
    expect(f.backup?.sizeBytes.database).toBeGreaterThan(1_000_000);
    expect(f.backup?.sizeBytes.media).toBe(manifest.media.bytes);
    expect(f.backup?.repositories).toEqual({ pgbackrest: ["repo1"], restic: [rig.env.COOP_RESTIC_REPOS] });
    expect(f.backup?.newestInRepository?.label).toBe(manifest.backupLabel);
    expect(f.drill?.ok).toBe(true);
    expect(f.drill?.backupLabel).toBe(manifest.backupLabel);
    expect(f.drill?.ageSeconds).toBeLessThan(900);
    expect(f.drill?.ttrSeconds?.total).toBeGreaterThan(0);
    expect(f.drill?.verified?.tables).toEqual(manifest.tables);
    expect(f.walArchive?.archiveMode).toBe("on");
    expect(f.walArchive?.archivedCount).toBeGreaterThan(0);
    expect(f.walArchive?.failedSinceLastSuccess).toBe(false);
    expect(f.walArchive?.pendingSegments).toBe(0);
    expect(f.walArchive?.lagSeconds).toBe(0);
    expect(f.disks.map((d) => [d.what, d.path])).toEqual(
      expect.arrayContaining([["data", rig.pg.dataDir], ["repository", rig.pgbackrestRepoDir]]),
    );
    for (const d of f.disks) expect(d.usePercent).toBeGreaterThan(0);
    expect(f.certificates).toHaveLength(1);
    expect(f.certificates[0].subject).toContain("healthy.invalid");
    expect(f.certificates[0].daysLeft).toBeGreaterThanOrEqual(89);
    expect(f.maintenance).toEqual({ on: false, since: null });
    expect(f.appVersion).toBe("v4.3.8");
  });

  it("exits 0 on the healthy instance, from saved facts and from a local run", async () => {
    const saved = await coopctl(["--facts", healthy.file]);
    expect(saved.err).toBe("");
    expect(saved.code).toBe(0);
    expect(saved.out.split("\n")[0]).toBe("OK: nothing needs a person");
    expect(saved.out).toMatch(/drill +ok/);
    const local = await coopctl(["--local", "--json"], { ...process.env, ...rig.env, ...extra });
    expect(local.err).toBe("");
    expect(local.code).toBe(0);
    const json = JSON.parse(local.out);
    expect(json.ok).toBe(true);
    expect(json.hosts[0].drill.ok).toBe(true);
  });

  it("maintenance on is reported from maintenance.sh's flag file", async () => {
    mkdirSync(join(rig.dir, "maintenance"), { recursive: true });
    writeFileSync(extra.COOP_MAINTENANCE_FLAG, "upgrade v4.3.9 since 2026-12-01T03:00:00Z\n");
    const f = (await facts()).value;
    expect(f.maintenance).toEqual({ on: true, since: "upgrade v4.3.9 since 2026-12-01T03:00:00Z" });
    rmSync(extra.COOP_MAINTENANCE_FLAG);
  });

  it("a disk threshold below the real use exits 1 and names the disk", async () => {
    const data = dataDisk(healthy.value);
    const r = await coopctl(["--facts", healthy.file, "--disk-max-percent", String(data.usePercent - 1)]);
    expect(r.code).toBe(1);
    expect(r.out.split("\n")[0]).toMatch(/^NEEDS A PERSON/);
    expect(r.out).toContain(`data ${rig.pg.dataDir}`);
    expect(r.out).toContain(`is ${data.usePercent}% full (at most ${data.usePercent - 1}%)`);
    expect(r.out).toMatch(/✗ \[.*\] disk /);
    const fine = await coopctl(["--facts", healthy.file, "--disk-max-percent", String(data.usePercent)]);
    expect(fine.code).toBe(0);
  });

  it("a certificate that expires in 3 days exits 1 and names it with the TLS runbook", async () => {
    const f = await facts({ COOP_TLS_CERT: await certificate(3, "expiring.invalid") });
    expect(f.value.certificates[0].daysLeft).toBeLessThanOrEqual(3);
    const r = await coopctl(["--facts", f.file, "--json"]);
    expect(r.code).toBe(1);
    const json = JSON.parse(r.out);
    expect(json.problems).toHaveLength(1);
    expect(json.problems[0]).toMatchObject({ kind: "certificate", threshold: 14, runbook: "docs/runbooks/tls.md" });
    expect(json.problems[0].what).toContain("expiring.invalid");
  });

  it("a drill that really failed exits 1 and names the failed drill first, with its reason", async () => {
    // A config snapshot carrying a manifest whose row count is off by one, as corruption.test.ts makes.
    const manifest = JSON.parse(readFileSync(join(rig.env.COOP_SPOOL_DIR, "staged", "manifest.json"), "utf8"));
    manifest.tables.statuses = (manifest.tables.statuses as number) + 1;
    const dir = join(rig.dir, "tampered");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
    const snap = await restic(rig, ["backup", "--json", "--host", "coop", "--tag", "coop", "--tag", "config", dir]);
    expect(snap.code, snap.stderr).toBe(0);
    const drill = await rig.script("drill.sh");
    expect(drill.code, drill.output.slice(-2000)).not.toBe(0);
    const reason = JSON.parse(readFileSync(join(rig.env.COOP_DRILL_RESULTS_DIR, "last.json"), "utf8")).reason as string;
    expect(reason).toContain("row counts differ from the manifest");

    // Also the disk and the certificate: the failed drill must still come first.
    const f = await facts({ COOP_TLS_CERT: await certificate(3, "expiring.invalid") });
    expect(f.value.drill).toMatchObject({ ok: false, reason, verified: null });
    const data = dataDisk(f.value);
    const r = await coopctl(["--facts", f.file, "--disk-max-percent", String(data.usePercent - 1)]);
    expect(r.code).toBe(1);
    const lines = r.out.split("\n");
    expect(lines[0]).toBe("NEEDS A PERSON: 3 problems");
    expect(lines[1]).toBe(`  ✗ [${hostname()}] restore drill failed: ${reason}`);
    expect(lines[2]).toBe("      runbook: docs/runbooks/restore.md");
    expect(r.out).toMatch(/disk .* full/);
    expect(r.out).toContain("expiring.invalid expires in");
    expect(r.out).toMatch(/drill +FAILED: /);

    const id = JSON.parse(snap.stdout.trim().split("\n").pop() as string).snapshot_id as string;
    expect((await restic(rig, ["forget", id])).code).toBe(0);
  });

  it("over SSH: runs status.sh on the host and judges what comes back; an unreachable host exits 3", async () => {
    // The rig's sshd, logged in as the database's OS user; the command stands in for the installed script.
    const envs = Object.entries({ ...rig.env, ...extra }).map(([k, v]) => `${k}='${v}'`).join(" ");
    const remote = `env ${envs} bash ${join(__dirname, "..", "..", "scripts", "status.sh")}`;
    const target = `coop-db@127.0.0.1:${rig.sshd.port}`;
    const ssh = ["--ssh-key", rig.sshd.keyPath, "--known-hosts", rig.sshd.knownHostsPath, "--json"];
    const r = await coopctl(["--host", target, ...ssh], { ...process.env, COOP_STATUS_REMOTE_COMMAND: remote });
    expect(r.err).toBe("");
    const json = JSON.parse(r.out);
    const f = json.hosts[0];
    // As that user the spool (0700 root) and drill results (0600 root) are unreadable: those facts come
    // from pgBackRest's repository and are missing, and a missing drill needs a person.
    expect(f.host).toBe(hostname());
    expect(f.walArchive?.archiveMode).toBe("on");
    expect(f.backup?.backupLabel).toBe(healthy.value.backup?.backupLabel);
    expect(f.backup?.manifest).toBeNull();
    expect(json.problems.map((p: { kind: string }) => p.kind)).toEqual(["drill-missing"]);
    expect(r.code).toBe(1);
    const down = await coopctl(["--host", "coop-db@127.0.0.1:1", ...ssh], { ...process.env, COOP_STATUS_REMOTE_COMMAND: remote });
    expect(down.code).toBe(3);
    expect(down.err).toContain("host coop-db@127.0.0.1:1");
  });

  it("no secret of the rig appears in any status output", () => {
    const all = outputs.join("\n");
    expect(all.length).toBeGreaterThan(1000);
    expect(all).not.toContain(rig.secrets.resticPassword);
    expect(all).not.toContain(rig.secrets.cipherPass);
  });
});
