// The primary dies (issue 19): a prod-shaped local stack is brought up from nothing with the real engine;
// a client writes rows; the primary machine is powered off and its disk removed, as a provider losing
// it would; then the operator's one command, `restore.from: secondary` and `pulumi up --replace` of the
// machine, brings the instance back on a fresh machine from the secondary's repositories. Measured: rows
// acknowledged before the kill against rows present after (RPO), and the time from the kill to serving.
import { spawn, spawnSync, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Stack, UpResult } from "@pulumi/pulumi/automation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AcmeServer, hasAddress, startAcmeServer } from "../../../tools/acme-server";
import { waitFor } from "../../../src/local/net";
import { makeS3Identity, startS3, type S3Identity, type S3Server } from "../../../src/local/s3";
import { engineEnv, ensurePulumi, localSecrets, openLocalStack, removeLocalMachines, REPO_ROOT } from "../../../tools/local-stack";

const STACK = "wrs";
const NETWORK = "coop-wrs";
const SUBNET = "10.231.11";
const PRIMARY = `${SUBNET}.11`;
const SECONDARY = `${SUBNET}.12`;
const GATEWAY = `${SUBNET}.1`;
/** The stack's S3 repository: s3rver over TLS on the gateway, with a CA of its own (backup.s3.caCert). */
const S3_PORT = 9443;
const NAME = "social.coop.test";
const MINUTE = 60_000;
/**
 * Extra data for a larger instance (figures for the runbook, not for CI): COOP_RESTORE_BENCH_MB adds that
 * many MiB of table rows and as many of media files before the nightly backup. Default 0.
 */
const BENCH_MB = Number(process.env.COOP_RESTORE_BENCH_MB ?? "0");
/** archive_timeout (scripts/lib/database-install.sh) plus one asynchronous push. */
const RPO_BOUND_S = 75;

const root = fs.mkdtempSync(path.join(os.tmpdir(), "coop-wrs-"));
const logs: string[] = [];
const log = (s: string) => logs.push(s);
let stack: Stack;
let acme: AcmeServer;
let first: UpResult;
let s3Identity: S3Identity;
let s3: S3Server | undefined;

function ssh(host: string, hostKey: string, command: string): { code: number; out: string } {
  const kh = path.join(root, `known_hosts-${host}`);
  fs.writeFileSync(kh, `${host} ${hostKey}\n`);
  const r = spawnSync("ssh", sshArgs(host, kh, command), { encoding: "utf8", timeout: 120_000 });
  return { code: r.status ?? 1, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

function sshArgs(host: string, knownHosts: string, command: string): string[] {
  return ["-F", "/dev/null", "-i", path.join(root, "state", "deploy_key"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "ConnectTimeout=10", `coop@${host}`, command];
}

async function hostKeys(): Promise<{ primary: string; secondary: string }> {
  const out = await stack.outputs();
  return { primary: String(out.primaryHostKey.value), secondary: String(out.secondaryHostKey.value) };
}

/** Row counts of every table of the app's database: what the restore must bring back. */
function appCounts(hostKey: string): string {
  const sql = "select string_agg(format('%s=%s', table_name, (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I', table_name), false, true, '')))[1]::text), ' ' order by table_name) from information_schema.tables where table_schema = 'public'";
  return ssh(PRIMARY, hostKey, `sudo -u postgres psql -X -A -t -d mastodon_production -c "${sql}"`).out.trim();
}

/** A client writing one row at a time into `table` on the primary; each id it prints was committed there. */
function startWriter(hostKey: string, table: string): { proc: ChildProcess; acked: () => number } {
  const kh = path.join(root, "known_hosts-writer");
  fs.writeFileSync(kh, `${PRIMARY} ${hostKey}\n`);
  const loop = `sudo -u postgres bash -c 'while :; do psql -X -A -t -q -d postgres -c "insert into ${table} default values returning id" || exit 1; sleep 0.05; done'`;
  const proc = spawn("ssh", sshArgs(PRIMARY, kh, loop), { stdio: ["ignore", "pipe", "ignore"] });
  let last = 0;
  let buffer = "";
  proc.stdout?.on("data", (d: Buffer) => {
    buffer += d.toString();
    const lines = buffer.split("\n");
    buffer = lines.pop() ?? "";
    for (const l of lines) if (/^\d+$/.test(l.trim())) last = Math.max(last, Number(l.trim()));
  });
  return { proc, acked: () => last };
}

/** The runbook's fenced blocks marked `step=<name>`, in order: what an operator would paste. */
function runbookSteps(): Map<string, string> {
  const md = fs.readFileSync(path.join(REPO_ROOT, "docs/runbooks/restore.md"), "utf8");
  return new Map([...md.matchAll(/^```sh step=([a-z0-9-]+)\n([\s\S]*?)^```$/gm)].map((m) => [m[1], m[2]]));
}

/** One runbook step with the real CLI, as an operator's shell would run it (this stack's backend and passphrase). */
async function runStep(step: string, script: string, whileRunning?: () => Promise<void>): Promise<{ code: number; out: string }> {
  const stateDir = path.join(root, "state");
  const child = spawn("bash", ["-euo", "pipefail", "-c", script], {
    cwd: path.join(stateDir, "program"),
    env: { ...process.env, ...engineEnv(stateDir, ensurePulumi()), STACK },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number>((resolve) => child.once("exit", (code) => resolve(code ?? 1)));
  let done = false;
  const watcher = whileRunning
    ? (async () => {
        while (!done) await whileRunning();
      })()
    : Promise.resolve();
  const code = await exited;
  done = true;
  await watcher;
  log(`--- runbook step ${step} (exit ${code}) ---\n${out}`);
  return { code, out };
}

/** The provider loses a machine: powered off at once (SIGTERM, then SIGKILL without waiting), its disk and volume gone. */
function loseMachine(role: "primary" | "secondary"): void {
  const gone = spawnSync("bash", [path.join(REPO_ROOT, "tools/local-cloud/machine.sh"), "delete"], {
    env: { ...process.env, COOP_MACHINE: `${STACK}-${role}`, COOP_STOP_TIMEOUT: "0" }, encoding: "utf8", timeout: 120_000,
  });
  expect(gone.status, gone.stderr).toBe(0);
}

/** The row-loss figures of a restore: every row up to the last present is there, the missing ones are the last seconds'. */
function rpo(hostKey: string, table: string, acked: number, killedAt: number): { present: number; lostAcked: number; lostSeconds: number; text: string } {
  const rows = ssh(PRIMARY, hostKey, `sudo -u postgres psql -X -A -t -d postgres -c "select count(*), coalesce(max(id), 0), extract(epoch from max(at)) * 1000 from ${table}"`).out.trim();
  const [present, maxId, lastAtMs] = rows.split("|").map(Number);
  expect(present, `rows written for a while, none archived: ${rows}`).toBeGreaterThan(0);
  expect(present, rows).toBe(maxId);
  // A row can be committed and archived while its answer was still on the way when the machine went:
  // present rows may outnumber acknowledged ones; the loss is counted in acknowledged rows only.
  const lostAcked = Math.max(0, acked - present);
  const lostSeconds = Math.max(0, (killedAt - lastAtMs) / 1000);
  const text = `${acked} rows acknowledged before the kill, ${present} present after (${lostAcked} acknowledged rows lost: the last ${lostSeconds.toFixed(1)} s of writes; bound ${RPO_BOUND_S} s)`;
  return { present, lostAcked, lostSeconds, text };
}

/** Where the time of a restoring `up` went, from the engine's progress lines and the scripts' step logs. */
function phases(output: string, killedAt: number, servedAt: number, upEnded: number, machines: string[]): string {
  const secs = (n: number | undefined) => (n === undefined ? "?" : `${n.toFixed(1)} s`);
  const provision = Math.max(...machines.map((m) => (took(output, `${STACK}-${m}-machine`) ?? 0) + (took(output, `${STACK}-${m}-ready`) ?? 0)));
  return (
    `TTR from the kill to serving: ${((servedAt - killedAt) / 1000).toFixed(1)} s (the up, with the new full backup and its drill, ended ${((upEnded - killedAt) / 1000).toFixed(1)} s after the kill). ` +
    `Phases: provision ${secs(provision)} (machine and cloud-init), install ${secs(took(output, `${STACK}-database-install`))} (PostgreSQL, Redis) + ${secs(took(output, `${STACK}-backup-db-install`))} (backup configs), ` +
    `database ${secs(stepSeconds(output, "restore", "database"))} (pgBackRest restore) + ${secs(stepSeconds(output, "restore-instance", "database"))} (WAL replay, promotion), ` +
    `media and config ${secs(stepSeconds(output, "restore", "files"))}, Redis ${secs(stepSeconds(output, "restore-instance", "redis"))}, ` +
    `app ${secs(stepSeconds(output, "deploy-app", "release"))} (release) + ${secs(stepSeconds(output, "deploy-app", "start"))} (start), TLS ${secs(stepSeconds(output, "deploy-app", "certificate"))}, ` +
    `DNS 0 s (a local stack keeps the address), full backup ${secs(took(output, `${STACK}-backup-initial-backup`))}, drill ${secs(took(output, `${STACK}-backup-drill`))}`
  );
}

/**
 * Backups carry on after a restore: the drill of a new full backup (its label, in the manifest, is the last
 * repository's) passed on the secondary after the kill, and the runbook's `verify` step says so too.
 */
async function backupsCarryOn(secondaryKey: string, killedAt: number, steps: Map<string, string>): Promise<void> {
  const drill = JSON.parse(ssh(SECONDARY, secondaryKey, "sudo cat /var/lib/coop/drills/last.json").out) as { ok: boolean; finishedAt: string; backupLabel: string };
  expect(drill.ok).toBe(true);
  expect(Date.parse(drill.finishedAt)).toBeGreaterThan(killedAt);
  expect(drill.backupLabel).toMatch(/F$/);
  const verify = await runStep("verify", steps.get("verify") as string);
  expect(verify.code, verify.out).toBe(0);
}

/** GET /version of the instance at the primary's address from this computer (any certificate: only "is it serving"). */
function serving(): boolean {
  const r = spawnSync("curl", ["-fsSk", "--max-time", "2", "--resolve", `${NAME}:443:${PRIMARY}`, `https://${NAME}/version`], { encoding: "utf8" });
  return r.status === 0 && /^v\d/.test(r.stdout.trim());
}

/** Seconds a resource took in an `up`, from the engine's own progress lines ("... created (12s)"). */
function took(output: string, resource: string): number | undefined {
  const m = new RegExp(`${resource}\\s+(?:created replacement|created|updated|replaced)\\s+\\((\\d+)s\\)`).exec(output);
  return m ? Number(m[1]) : undefined;
}

/** Seconds of one named step of a host script, from its own log ("coop[restore] ... step 2/6 database done in 8.8s"). */
function stepSeconds(output: string, script: string, step: string): number | undefined {
  const m = new RegExp(`coop\\[${script}\\] INFO\\s+\\S+ step \\d+/\\d+ ${step} done in ([\\d.]+)s`).exec(output);
  return m ? Number(m[1]) : undefined;
}

beforeAll(async () => {
  fs.mkdirSync(path.join(root, "state"), { recursive: true });
  acme = startAcmeServer(GATEWAY, path.join(root, "acme"), log);
  s3Identity = await makeS3Identity(GATEWAY);
  const s3Config = { endpoint: `https://${GATEWAY}:${S3_PORT}`, bucket: "coop-backups", region: "us-east-1", accessKeyId: s3Identity.accessKeyId, caCert: s3Identity.certPem };
  stack = await openLocalStack({
    stateDir: path.join(root, "state"),
    stackName: STACK,
    stackFile: "Pulumi.local.yaml",
    config: { ...acme.config, backup: JSON.stringify({ s3: s3Config }), localCloud: JSON.stringify({ network: NETWORK, subnet4: `${SUBNET}.0/24`, subnet6: "fd42:231:11::/64" }) },
    secrets: { ...localSecrets(path.join(root, "state")), s3SecretAccessKey: s3Identity.secretAccessKey },
    log,
  });
  // The bucket listens on the bridge, which the up makes: from then on, before any backup reaches for it.
  const s3Started = (async () => {
    await waitFor(`the gateway ${GATEWAY}`, () => hasAddress(GATEWAY), 10 * MINUTE);
    s3 = await startS3({ identity: s3Identity, port: S3_PORT, bucket: s3Config.bucket });
    log(`s3rver listening on ${s3.endpoint}`);
  })();
  s3Started.catch(() => undefined);
  const t0 = Date.now();
  first = await stack.up({ onOutput: log });
  await s3Started;
  log(`first up took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}, 20 * MINUTE);

afterAll(async () => {
  if (stack) {
    await stack.destroy({ onOutput: log }).catch((e: Error) => {
      log(`destroy failed: ${e.message}`);
      removeLocalMachines(STACK, NETWORK, ["primary", "secondary"], log);
    });
  }
  await acme?.stop();
  await s3?.stop();
  fs.writeFileSync(path.join(os.tmpdir(), "coop-wrs-last.log"), logs.join("\n"));
  fs.rmSync(root, { recursive: true, force: true });
}, 10 * MINUTE);

describe("the primary dies: the instance comes back on a fresh machine from the secondary (real engine)", () => {
  it("restore.from: secondary and `pulumi up --replace` of the lost machine bring back every acknowledged row but the last seconds, the app, its secrets and Redis", async () => {
    expect(first.summary.result).toBe("succeeded");
    let keys = await hostKeys();
    const oldHostKey = keys.primary;
    // What the instance holds besides the rows being written: its tables, its own secret, a Redis key.
    let counts = appCounts(keys.primary);
    expect(counts).toMatch(/accounts=\d+/);
    const secret = ssh(PRIMARY, keys.primary, "sudo sed -n 's/^SECRET_KEY_BASE=//p' /home/mastodon/shared/.env.production").out.trim();
    expect(secret).toMatch(/^[0-9a-f]{128}$/);
    expect(ssh(PRIMARY, keys.primary, "redis-cli set coop:restore-probe kept && sudo -u postgres psql -X -q -d postgres -c 'create table rpo_rows (id bigserial primary key, at timestamptz not null default clock_timestamp())'").code).toBe(0);
    if (BENCH_MB > 0) {
      const rows = Math.round((BENCH_MB * 1024 * 1024) / 1100);
      const pad = ssh(PRIMARY, keys.primary, `sudo -u postgres psql -X -q -d mastodon_production -c "create table bench_pad as select g, repeat(md5(g::text), 30) as pad from generate_series(1, ${rows}) g" && ` +
        `sudo -u mastodon bash -c 'mkdir -p /home/mastodon/shared/public/system/bench && for i in $(seq 1 ${BENCH_MB}); do head -c 1048576 /dev/urandom > /home/mastodon/shared/public/system/bench/f$i; done' && ` +
        `sudo -u postgres psql -X -A -t -c "select pg_size_pretty(pg_database_size('mastodon_production'))"`);
      expect(pad.code, pad.out).toBe(0);
      log(`larger instance: database ${pad.out.trim()}, ${BENCH_MB} MiB of media added`);
      counts = appCounts(keys.primary);
    }
    // The nightly backup, as the timer would run it: it takes the Redis dump and the files.
    const nightly = ssh(PRIMARY, keys.primary, "sudo systemctl start coop-backup.service");
    expect(nightly.code, nightly.out).toBe(0);

    // Longer than archive_timeout, so that some of the writes are archived and the bound shows.
    const writer = startWriter(keys.primary, "rpo_rows");
    await new Promise((r) => setTimeout(r, 65_000));
    expect(writer.acked(), "the client wrote rows").toBeGreaterThan(200);
    const killedAt = Date.now();
    loseMachine("primary");
    writer.proc.kill("SIGKILL");
    const acked = writer.acked();
    log(`primary lost ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill began; ${acked} rows acknowledged`);

    // The operator follows docs/runbooks/restore.md: its steps, as written, in order.
    const steps = runbookSteps();
    expect([...steps.keys()]).toEqual(["configure", "replace", "verify", "configure-s3", "replace-both"]);
    const configure = await runStep("configure", steps.get("configure") as string);
    expect(configure.code, configure.out).toBe(0);
    expect(serving(), "nothing serves at the primary's address after the kill").toBe(false);
    let servedAt = 0;
    const replace = await runStep("replace", steps.get("replace") as string, async () => {
      if (!servedAt && serving()) servedAt = Date.now();
      await new Promise((r) => setTimeout(r, 1000));
    });
    expect(replace.code, replace.out.slice(-4000)).toBe(0);
    const output = replace.out;
    expect(output).toMatch(new RegExp(`${STACK}-primary-machine\\s+created replacement`));
    const upEnded = Date.now();
    expect(servedAt, "the instance served again during the up").toBeGreaterThan(0);

    keys = await hostKeys();
    expect(keys.primary, "a new machine, with a new host key").not.toBe(oldHostKey);
    // Served under a certificate the host's trust store verifies (the restored one, or one issued anew).
    const version = ssh(PRIMARY, keys.primary, `curl -fsS --max-time 5 --resolve ${NAME}:443:127.0.0.1 https://${NAME}/version`);
    expect(version.code, version.out).toBe(0);

    // RPO: every row up to the last one present is there, and what is missing was written within the bound.
    const loss = rpo(keys.primary, "rpo_rows", acked, killedAt);
    log(`RPO: ${loss.text}`);
    expect(loss.lostSeconds).toBeLessThanOrEqual(RPO_BOUND_S);

    // The instance itself: its tables, its own secrets (not new ones), its Redis data, archiving on again.
    expect(appCounts(keys.primary)).toBe(counts);
    expect(ssh(PRIMARY, keys.primary, "sudo sed -n 's/^SECRET_KEY_BASE=//p' /home/mastodon/shared/.env.production").out.trim()).toBe(secret);
    expect(ssh(PRIMARY, keys.primary, "redis-cli get coop:restore-probe").out.trim()).toBe("kept");
    expect(ssh(PRIMARY, keys.primary, "sudo -u postgres psql -X -A -t -c 'show archive_mode'").out.trim()).toBe("on");
    // The restored owner keeps the password they had: no new owner account, no reset.
    expect(output).toMatch(/already holds \d+ tables \(a restored or imported instance\): no owner account is made/);
    expect(ssh(PRIMARY, keys.primary, "sudo test -e /etc/coop/admin-password").code).not.toBe(0);

    // Backups carry on: a new full backup after the kill, and the drill of it passed on the secondary.
    await backupsCarryOn(keys.secondary, killedAt, steps);

    log(phases(output, killedAt, servedAt, upEnded, ["primary"]));
  }, 30 * MINUTE);

  it("a second up with restore still set changes nothing on the restored host", async () => {
    const again = await stack.up({ onOutput: log });
    expect(again.summary.result).toBe("succeeded");
    expect(again.summary.resourceChanges?.update ?? 0).toBe(0);
    expect(again.summary.resourceChanges?.replace ?? 0).toBe(0);
  }, 10 * MINUTE);

  it("the primary and the secondary both lost: restore.from: s3 and `pulumi up --replace` of both machines bring the instance back from S3 alone", async () => {
    let keys = await hostKeys();
    const old = { ...keys };
    const counts = appCounts(keys.primary);
    const secret = ssh(PRIMARY, keys.primary, "sudo sed -n 's/^SECRET_KEY_BASE=//p' /home/mastodon/shared/.env.production").out.trim();
    expect(secret).toMatch(/^[0-9a-f]{128}$/);
    // A table of its own: ids from a restored sequence skip ahead (it is logged 32 values at a time), so
    // rpo_rows has gaps since the first restore, and "no row missing before the last" needs a fresh one.
    expect(ssh(PRIMARY, keys.primary, "sudo -u postgres psql -X -q -d postgres -c 'create table rpo_rows_s3 (id bigserial primary key, at timestamptz not null default clock_timestamp())'").code).toBe(0);
    // No nightly backup since the first restore's full one: the restore from the bucket replays all WAL since.
    const repo2 = ssh(SECONDARY, keys.secondary, "sudo -u coop-backup pgbackrest --stanza=main --repo=2 --output=json info");
    expect(repo2.code, repo2.out).toBe(0);
    const inBucket = (JSON.parse(repo2.out) as { backup: { label: string }[] }[])[0].backup.map((b) => b.label);
    expect(inBucket.length, "the bucket holds the first up's backup and the first restore's full one").toBeGreaterThanOrEqual(2);

    // Past archive_timeout again, so the bound shows for WAL that reached S3 alone.
    const writer = startWriter(keys.primary, "rpo_rows_s3");
    await new Promise((r) => setTimeout(r, 65_000));
    expect(writer.acked(), "the client wrote rows").toBeGreaterThan(200);
    const killedAt = Date.now();
    loseMachine("primary");
    loseMachine("secondary");
    writer.proc.kill("SIGKILL");
    const acked = writer.acked();
    log(`primary and secondary lost ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill began; ${acked} rows acknowledged`);

    const steps = runbookSteps();
    const configure = await runStep("configure-s3", steps.get("configure-s3") as string);
    expect(configure.code, configure.out).toBe(0);
    let servedAt = 0;
    const replace = await runStep("replace-both", steps.get("replace-both") as string, async () => {
      if (!servedAt && serving()) servedAt = Date.now();
      await new Promise((r) => setTimeout(r, 1000));
    });
    expect(replace.code, replace.out.slice(-4000)).toBe(0);
    const upEnded = Date.now();
    const output = replace.out;
    for (const role of ["primary", "secondary"]) expect(output).toMatch(new RegExp(`${STACK}-${role}-machine\\s+created replacement`));
    expect(output).toMatch(/coop\[restore-instance\] INFO\s+\S+ restoring from s3 to latest/);
    // The new secondary's stanza was made before archiving resumed; the S3-only config (S3 key inside) is gone.
    expect(output).toMatch(/coop\[restore-instance\] INFO\s+\S+ stanza main ready in every repository/);
    expect(servedAt, "the instance served again during the up").toBeGreaterThan(0);
    keys = await hostKeys();
    expect(keys.primary).not.toBe(old.primary);
    expect(keys.secondary).not.toBe(old.secondary);

    const loss = rpo(keys.primary, "rpo_rows_s3", acked, killedAt);
    log(`RPO (S3 alone): ${loss.text}`);
    expect(loss.lostSeconds).toBeLessThanOrEqual(RPO_BOUND_S);
    expect(appCounts(keys.primary)).toBe(counts);
    expect(ssh(PRIMARY, keys.primary, "sudo sed -n 's/^SECRET_KEY_BASE=//p' /home/mastodon/shared/.env.production").out.trim()).toBe(secret);
    // The Redis dump the first restore's full backup took (the probe set before the first loss).
    expect(ssh(PRIMARY, keys.primary, "redis-cli get coop:restore-probe").out.trim()).toBe("kept");
    expect(ssh(PRIMARY, keys.primary, "sudo -u postgres psql -X -A -t -c 'show archive_mode'").out.trim()).toBe("on");
    expect(ssh(PRIMARY, keys.primary, "sudo test -e /etc/pgbackrest/restore-s3.conf").code, "restore-s3.conf left behind").not.toBe(0);

    // The new secondary started empty: its repository holds the new chain alone, one full backup, drilled.
    const repo1 = ssh(SECONDARY, keys.secondary, "sudo -u coop-backup pgbackrest --stanza=main --repo=1 --output=json info");
    expect(repo1.code, repo1.out).toBe(0);
    const sets = (JSON.parse(repo1.out) as { backup: { label: string }[] }[])[0].backup.map((b) => b.label);
    expect(sets, "repo1 on the new secondary: the new full backup only").toHaveLength(1);
    expect(sets[0]).toMatch(/F$/);
    await backupsCarryOn(keys.secondary, killedAt, steps);
    log(`(S3 alone) ${phases(output, killedAt, servedAt, upEnded, ["primary", "secondary"])}`);
  }, 30 * MINUTE);
});
