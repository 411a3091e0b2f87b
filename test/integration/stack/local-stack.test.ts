// The whole program with the real engine: `pulumi up` of a prod-shaped local stack from nothing, on
// two Debian 12 machines that the program creates and cloud-init configures; then an unchanged `up`,
// an injected failing hook, and `destroy`, with what is left checked on this computer.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Stack, UpResult } from "@pulumi/pulumi/automation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main as postPreviewNote, marker } from "../../../ci/post-preview-note";
import { main as coopctlStatus } from "../../../src/cli/status";
import { run } from "../../../src/local/run";
import { AcmeServer, startAcmeServer } from "../../../tools/acme-server";
import { localSecrets, openLocalStack } from "../../../tools/local-stack";
import { FakeGitlab, TOKEN } from "../../support/fake-gitlab";
import { startFediverseHost } from "../../support/fediverse-host";
import { startSmtpListener, type SmtpListener } from "../../support/smtp-listener";
import { startWebhookListener, type WebhookListener } from "../../support/webhook-listener";
import { prodCredentials } from "./prod-credentials";

const STACK = "wst";
const NETWORK = "coop-wst";
const SUBNET = "10.231.9";
const PRIMARY = `${SUBNET}.11`;
const SECONDARY = `${SUBNET}.12`;
const PROBE_NS = "coop-wst-probe";
// Another server of the fediverse, in its own namespace on the bridge: the restored remote accounts' inboxes.
const FEDI_NS = "coop-wst-fedi";
const FEDI = `${SUBNET}.98`;
const MINUTE = 60_000;
// Where the hosts' alerts go: listeners this test runs on the bridge's gateway address, once it exists.
const SMTP_PORT = 2525;
const WEBHOOK_PORT = 8089;
const WEBHOOK_TOKEN = "wst-webhook-token-4c8e1f0a9b2d7e3c";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "coop-wst-"));
let stack: Stack;
let acme: AcmeServer;
let secrets: Record<string, string>;
let first: UpResult;
/** The app's SECRET_KEY_BASE as the host made it: it must never reach Pulumi's state. */
let instanceSecret = "";
/** The owner account's first password, generated on the host: the same. */
let adminPassword = "";
/** alpha's read-only key to the secondary's repositories, from the secret output backupReaders. */
let readerKey = "";
let smtp: SmtpListener | undefined;
let webhook: WebhookListener | undefined;
const logs: string[] = [];
const log = (s: string) => logs.push(s);

function sh(cmd: string, args: string[], opts: { netns?: string } = {}): { code: number; out: string } {
  const [file, argv] = opts.netns ? ["ip", ["netns", "exec", opts.netns, cmd, ...args]] : [cmd, args];
  const r = spawnSync(file, argv, { encoding: "utf8", timeout: 60_000 });
  return { code: r.status ?? 1, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

/** The ssh command line as the admin user with the deploy key, the host key pinned from the stack's output. */
function sshArgs(host: string, hostKey: string, command: string, extra: string[] = []): string[] {
  const kh = path.join(root, `known_hosts-${host}`);
  fs.writeFileSync(kh, `${host} ${hostKey}\n`);
  return ["-F", "/dev/null", "-i", path.join(root, "state", "deploy_key"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${kh}`, "-o", "ConnectTimeout=10", ...extra, `coop@${host}`, command];
}

function ssh(host: string, hostKey: string, command: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}, input?: string): { code: number; out: string } {
  const r = spawnSync("ssh", sshArgs(host, hostKey, command, extra), { encoding: "utf8", timeout: 60_000, env: { ...process.env, ...env }, input });
  return { code: r.status ?? 1, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

/** ssh that leaves this process free meanwhile: a host talking back to a listener of this test needs it. */
async function sshAsync(host: string, hostKey: string, command: string): Promise<{ code: number; out: string }> {
  const r = await run("ssh", sshArgs(host, hostKey, command), { allowFailure: true, timeoutMs: 120_000 });
  return { code: r.code ?? 1, out: `${r.stdout}${r.stderr}` };
}

async function hostKeys(): Promise<{ primary: string; secondary: string }> {
  const out = await stack.outputs();
  return { primary: String(out.primaryHostKey.value), secondary: String(out.secondaryHostKey.value) };
}

function tcpOpen(ip: string, port: number): boolean {
  return sh("timeout", ["3", "bash", "-c", `</dev/tcp/${ip}/${port}`], { netns: PROBE_NS }).code === 0;
}

/** pebble's issuing root of this run, in a file curl can trust (and nothing else). */
async function trustRoot(): Promise<string> {
  const file = path.join(root, "acme-root.pem");
  fs.writeFileSync(file, await acme.issuingRoot());
  return file;
}

/** GET https://<name><path> of the primary from outside the hosts, verifying the chain against `ca` only. */
function httpsGet(name: string, p: string, ca: string): { code: number; out: string } {
  return sh("curl", ["-fsS", "--max-time", "5", "--cacert", ca, "--resolve", `${name}:443:${PRIMARY}`, `https://${name}${p}`], { netns: PROBE_NS });
}

/** The serial of the certificate the primary serves for `name`, as `serial=...`. */
function servedSerial(name: string): string {
  const r = sh("bash", ["-c", `openssl s_client -connect ${PRIMARY}:443 -servername ${name} </dev/null 2>/dev/null | openssl x509 -noout -serial`], { netns: PROBE_NS });
  return r.out.trim();
}

/** The labels of the backups `pgbackrest info --output=json` lists (its WAL range moves on by itself). */
function backupLabels(info: string): string {
  return (JSON.parse(info) as { backup: { label: string }[] }[])[0].backup.map((b) => b.label).join(" ");
}

/** A third machine on the stack's bridge, to send packets from outside the hosts (or to receive them). */
function addProbe(ns = PROBE_NS, veth = "coopwstprobe", address = `${SUBNET}.99`): void {
  removeProbe(ns, veth);
  execFileSync("ip", ["netns", "add", ns]);
  execFileSync("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns]);
  execFileSync("ip", ["link", "set", veth, "master", NETWORK, "up"]);
  sh("ip", ["addr", "add", `${address}/24`, "dev", "eth0"], { netns: ns });
  sh("ip", ["link", "set", "eth0", "up"], { netns: ns });
  sh("ip", ["link", "set", "lo", "up"], { netns: ns });
}

function removeProbe(ns = PROBE_NS, veth = "coopwstprobe"): void {
  spawnSync("ip", ["link", "del", veth]);
  spawnSync("ip", ["netns", "del", ns]);
}

/** Everything a local stack may leave on this computer, as text (empty = nothing). */
function leftovers(): string[] {
  const out: string[] = [];
  const ps = sh("ps", ["-eo", "pid,args"]).out.split("\n").filter((l) => l.includes("systemd-nspawn") && l.includes(`${STACK}-`));
  out.push(...ps.map((l) => `process: ${l.trim()}`));
  out.push(...sh("ip", ["netns", "list"]).out.split("\n").filter((l) => l.startsWith(`${STACK}-`)).map((l) => `netns: ${l}`));
  if (sh("ip", ["link", "show", NETWORK]).code === 0) out.push(`bridge: ${NETWORK}`);
  out.push(...sh("ip", ["-o", "link", "show"]).out.split("\n").filter((l) => l.includes(`${STACK}-`)).map((l) => `link: ${l}`));
  out.push(...sh("losetup", ["-a"]).out.split("\n").filter((l) => l.includes(`${STACK}-`)).map((l) => `loop: ${l}`));
  out.push(...sh("findmnt", ["-rn", "-o", "TARGET"]).out.split("\n").filter((l) => l.includes(`/${STACK}-`)).map((l) => `mount: ${l}`));
  return out;
}

beforeAll(async () => {
  fs.mkdirSync(path.join(root, "state"), { recursive: true });
  secrets = localSecrets(path.join(root, "state"));
  // The ACME server the app host's certbot asks, on the bridge's address once the program makes it.
  acme = startAcmeServer(`${SUBNET}.1`, path.join(root, "acme"), log);
  stack = await openLocalStack({
    stateDir: path.join(root, "state"),
    stackName: STACK,
    stackFile: "Pulumi.local.yaml",
    config: {
      ...acme.config,
      localCloud: JSON.stringify({ network: NETWORK, subnet4: `${SUBNET}.0/24`, subnet6: "fd42:231:9::/64" }),
      // alpha may read this stack's backups (and nothing more): the grant runs on the secondary.
      backup: JSON.stringify({ readers: ["alpha"] }),
      // The instance's own mail (SMTP_* in .env.production's managed block), through the test's listener:
      // plain SMTP without login stands for a relay; a real stack uses smtps:// or STARTTLS.
      mail: JSON.stringify({ smtpUrl: `smtp://${SUBNET}.1:${SMTP_PORT}`, from: "notifications@social.coop.test", smtpStartTls: false }),
      // Alerts name no server of their own: they go through the instance's, from its sender.
      alerts: JSON.stringify({ email: ["ops@social.coop.test"] }),
    },
    secrets: { ...secrets, alertWebhookUrl: `http://${SUBNET}.1:${WEBHOOK_PORT}/hook/${WEBHOOK_TOKEN}` },
    log,
  });
  const t0 = Date.now();
  first = await stack.up({ onOutput: log });
  log(`first up took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}, 20 * MINUTE);

afterAll(async () => {
  removeProbe();
  removeProbe(FEDI_NS, "coopwstfedi");
  await smtp?.close();
  await webhook?.close();
  if (stack) {
    const t0 = Date.now();
    await stack.destroy({ onOutput: log }).catch((e: Error) => log(`destroy failed: ${e.message}`));
    log(`destroy took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  await acme?.stop();
  fs.writeFileSync(path.join(os.tmpdir(), "coop-wst-last.log"), logs.join("\n"));
  fs.rmSync(root, { recursive: true, force: true });
}, 10 * MINUTE);

describe("pulumi up of the local stack from nothing (real engine, real machines)", () => {
  it("creates both machines, their readiness and key hooks, and the names, and reports their addresses", async () => {
    expect(first.summary.result).toBe("succeeded");
    const out = await stack.outputs();
    expect(out.primaryIpv4.value).toBe(PRIMARY);
    expect(out.secondaryIpv4.value).toBe(SECONDARY);
    expect(out.names.value).toEqual(["social.coop.test"]);
    expect(String(out.primaryHostKey.value)).toMatch(/^ssh-ed25519 AAAA/);
    const created = first.summary.resourceChanges?.create ?? 0;
    // stack, network + bridge, 2 hosts × (component, machine, ready, authorized keys, scripts),
    // names + 2 entries, database + install, app + fixture source + deploy, backup + 6 hooks + alpha's read
    // grant, the upgrade chain (drill, its result, PostgreSQL, the fixture hop, health), alerts + one install per host.
    expect(created).toBe(1 + 2 + 2 * 5 + 3 + 2 + 3 + 8 + 6 + 3);
    expect(out.appRelease.value).toBe("v1.2.0");
  });

  it("cloud-init made the sudo user with the deploy key; root and passwords are refused; COOP_* passes", async () => {
    const keys = await hostKeys();
    for (const [ip, key] of [[PRIMARY, keys.primary], [SECONDARY, keys.secondary]]) {
      expect(ssh(ip, key, "sudo -n id -u").out.trim()).toBe("0");
      const sshd = ssh(ip, key, "sudo -n sshd -T").out;
      expect(sshd).toMatch(/^permitrootlogin no$/m);
      expect(sshd).toMatch(/^passwordauthentication no$/m);
      expect(sshd).toMatch(/^acceptenv COOP_\*$/m);
      expect(ssh(ip, key, 'echo "probe=$COOP_PROBE"', ["-o", "SendEnv=COOP_PROBE"], { COOP_PROBE: "42" }).out).toContain("probe=42");
    }
    // The pinned key is the host's: a wrong one is refused before any command runs.
    expect(ssh(PRIMARY, keys.secondary, "true").code).toBe(255);
  });

  it("/srv is the data volume on both hosts, and the stack's names resolve there", async () => {
    const keys = await hostKeys();
    for (const [ip, key] of [[PRIMARY, keys.primary], [SECONDARY, keys.secondary]]) {
      expect(ssh(ip, key, "findmnt -n -o FSTYPE /srv; sudo blkid -o value -s LABEL \"$(findmnt -n -o SOURCE /srv)\"").out.trim()).toBe("ext4\ncoop-data");
      expect(ssh(ip, key, "getent ahostsv4 social.coop.test").out).toContain(PRIMARY);
    }
  });

  it("PostgreSQL runs in the one layout: on the volume, checksums and archive_mode on, sockets only; Redis on loopback, persisting", async () => {
    const keys = await hostKeys();
    const psql = (sql: string) => ssh(PRIMARY, keys.primary, `sudo -u postgres psql -X -A -t -c "${sql}"`).out.trim();
    // Registered through the stable link (pgBackRest's pg1-path), which points at the live major.
    expect(psql("show data_directory")).toBe("/srv/postgresql/main");
    expect(psql("show data_checksums")).toBe("on");
    expect(psql("show archive_mode")).toBe("on");
    // The RPO bound (a commit reaches the repository within about a minute however quiet the instance):
    // restore-stack.test.ts measures the rows it loses when the machine goes.
    expect(psql("show archive_timeout")).toBe("1min");
    expect(psql("show listen_addresses")).toBe("");
    expect(psql("select datname || ':' || pg_get_userbyid(datdba) from pg_database where datname = 'mastodon_production'")).toBe("mastodon_production:mastodon");
    expect(ssh(PRIMARY, keys.primary, "sudo readlink /srv/postgresql/main").out.trim()).toBe("/srv/postgresql/15/main");
    // The app's user reaches its own database by peer authentication, and only that one.
    expect(ssh(PRIMARY, keys.primary, "sudo -u mastodon psql -X -A -t -d mastodon_production -c 'select 1'").out.trim()).toBe("1");
    expect(ssh(PRIMARY, keys.primary, "sudo -u mastodon psql -X -A -t -d postgres -c 'select 1'").code).not.toBe(0);
    const listening = ssh(PRIMARY, keys.primary, "ss -Hltn").out;
    expect(listening).toMatch(/127\.0\.0\.1:6379/);
    expect(listening).not.toMatch(/0\.0\.0\.0:6379|\*:6379|:5432/);
    expect(ssh(PRIMARY, keys.primary, "redis-cli config get appendonly | tail -1; redis-cli config get dir | tail -1").out.trim()).toBe("yes\n/srv/redis");
  });

  it("the app serves over HTTPS through nginx from nothing: first release, layout, and its own secrets born on the host", async () => {
    const keys = await hostKeys();
    addProbe();
    const ca = await trustRoot();
    expect(httpsGet("social.coop.test", "/version", ca).out.trim()).toBe("v1.2.0");
    expect(httpsGet("social.coop.test", "/health", ca).out).toMatch(/ok|healthy/i);
    // Port 80 only redirects to HTTPS.
    const plain = sh("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--max-time", "5", "-H", "Host: social.coop.test", `http://${PRIMARY}/health`], { netns: PROBE_NS });
    expect(plain.out).toBe("301 https://social.coop.test/health");
    expect(ssh(PRIMARY, keys.primary, "readlink /home/mastodon/current /home/mastodon/live").out.trim()).toBe("releases/v1.2.0\ncurrent");
    expect(ssh(PRIMARY, keys.primary, "sudo stat -c '%a %U' /home/mastodon/shared/.env.production").out.trim()).toBe("600 mastodon");
    const secret = ssh(PRIMARY, keys.primary, "sudo sed -n 's/^SECRET_KEY_BASE=//p' /home/mastodon/shared/.env.production").out.trim();
    expect(secret).toMatch(/^[0-9a-f]{128}$/);
    instanceSecret = secret;
    // Web push keys too (test/integration/app-secrets.test.ts checks they are a pair).
    expect(ssh(PRIMARY, keys.primary, "sudo grep -cE '^VAPID_(PRIVATE|PUBLIC)_KEY=.+' /home/mastodon/shared/.env.production").out.trim()).toBe("2");
    // The owner account from adminEmail (ops@social.coop.test → ops), its password in a root-only file.
    expect(ssh(PRIMARY, keys.primary, "sudo stat -c '%a %U' /etc/coop/admin-password").out.trim()).toBe("600 root");
    const admin = ssh(PRIMARY, keys.primary, "sudo cat /etc/coop/admin-password").out;
    expect(admin).toMatch(/^username=ops\nemail=ops@social\.coop\.test\npassword=[0-9a-f]{32}\n$/);
    adminPassword = admin.split("password=")[1].trim();
    expect(ssh(PRIMARY, keys.primary, "sudo -u mastodon psql -X -A -t -d mastodon_production -c \"select username from accounts\"").out.trim()).toBe("ops");
  });

  it("the certificate came from the test ACME server by DNS-01 through certbot, and renewal is scheduled and works", async () => {
    const keys = await hostKeys();
    addProbe();
    // Verified against this run's pebble root (pebble makes a new one each start): issued here, now.
    const ca = await trustRoot();
    expect(httpsGet("social.coop.test", "/health", ca).code).toBe(0);
    const renewal = ssh(PRIMARY, keys.primary, "sudo cat /etc/letsencrypt/renewal/social.coop.test.conf").out;
    expect(renewal).toContain(`server = https://${SUBNET}.1:14000/dir`);
    expect(renewal).toMatch(/^authenticator = manual$/m);
    expect(renewal).toMatch(/^pref_challs = dns-01,?$/m);
    expect(ssh(PRIMARY, keys.primary, "systemctl is-enabled certbot.timer; systemctl is-active certbot.timer").out.trim()).toBe("enabled\nactive");
    const before = servedSerial("social.coop.test");
    expect(before).toMatch(/^serial=[0-9A-F]+$/);
    const renew = ssh(PRIMARY, keys.primary, "sudo certbot renew --force-renewal --no-random-sleep-on-renew 2>&1");
    expect(renew.code, renew.out).toBe(0);
    expect(renew.out).toMatch(/renewals succeeded/);
    // The deploy hook reloaded nginx: the renewed certificate is the one served (once the reload is done).
    let after = servedSerial("social.coop.test");
    for (let i = 0; i < 20 && after === before; i++) {
      await new Promise((r) => setTimeout(r, 500));
      after = servedSerial("social.coop.test");
    }
    expect(after).toMatch(/^serial=[0-9A-F]+$/);
    expect(after).not.toBe(before);
    expect(httpsGet("social.coop.test", "/health", ca).code).toBe(0);
  }, 5 * MINUTE);

  it("the app's processes are systemd units on `current`, enabled for the next boot", async () => {
    const keys = await hostKeys();
    const units = ["web", "streaming", "sidekiq"].map((r) => `coop-fixture-${r}.service`).join(" ");
    expect(ssh(PRIMARY, keys.primary, `systemctl is-enabled ${units}`).out.trim()).toBe("enabled\nenabled\nenabled");
    expect(ssh(PRIMARY, keys.primary, `systemctl is-active ${units}`).out.trim()).toBe("active\nactive\nactive");
    expect(ssh(PRIMARY, keys.primary, "systemctl show -p WorkingDirectory coop-fixture-web.service").out.trim()).toBe("WorkingDirectory=/home/mastodon/current");
    // A process that dies is started again by systemd, not left down until the next deploy.
    const pid = ssh(PRIMARY, keys.primary, "systemctl show -p MainPID --value coop-fixture-web.service").out.trim();
    ssh(PRIMARY, keys.primary, `sudo kill -9 ${pid}; sleep 4`);
    const again = ssh(PRIMARY, keys.primary, "systemctl show -p MainPID --value coop-fixture-web.service; systemctl is-active coop-fixture-web.service").out.trim().split("\n");
    expect(again[1]).toBe("active");
    expect(again[0]).not.toBe(pid);
  });

  it("the initial backup ran on the primary and the restore drill passed on the secondary", async () => {
    const keys = await hostKeys();
    const result = JSON.parse(ssh(SECONDARY, keys.secondary, "sudo cat /var/lib/coop/drills/last.json").out) as {
      ok: boolean;
      verified: { tables: Record<string, number>; mediaFiles: number } | null;
      ttrSeconds: Record<string, number>;
    };
    expect(result.ok).toBe(true);
    expect(Object.keys(result.verified?.tables ?? {})).toEqual(expect.arrayContaining(["accounts", "statuses", "favourites"]));
    // The stack reports the same drill, in plain text (no secret in it).
    const out = await stack.outputs();
    expect(out.lastDrill.secret).toBe(false);
    expect(JSON.parse(String(out.lastDrill.value))).toMatchObject({ ok: true, finishedAt: (result as unknown as { finishedAt: string }).finishedAt });
    log(`drill on the secondary: ${JSON.stringify(result.ttrSeconds)}`);
  });

  it("node_exporter serves each host's metrics and the backup's and drill's on loopback only", async () => {
    const keys = await hostKeys();
    const scrape = (host: string, hostKey: string) => ssh(host, hostKey, "curl -fsS --max-time 5 http://127.0.0.1:9100/metrics");
    const primary = scrape(PRIMARY, keys.primary);
    expect(primary.code, primary.out.slice(0, 500)).toBe(0);
    // Its own collectors, and the textfile collector reading what backup.sh wrote (0644, as node_exporter's user).
    expect(primary.out).toMatch(/^node_filesystem_avail_bytes\{.*mountpoint="\/srv"/m);
    expect(primary.out).toMatch(/^coop_backup_last_success_timestamp_seconds \d/m);
    expect(primary.out).toMatch(/^node_textfile_scrape_error 0$/m);
    const secondary = scrape(SECONDARY, keys.secondary);
    expect(secondary.out).toMatch(/^coop_drill_success 1$/m);
    expect(secondary.out).toMatch(/^coop_drill_ttr_seconds\{phase="restore"\} [\d.]+$/m);
    for (const [host, hostKey] of [[PRIMARY, keys.primary], [SECONDARY, keys.secondary]]) {
      const listening = ssh(host, hostKey, "ss -Hltn 'sport = :9100'").out.trim().split("\n");
      expect(listening.map((l) => l.split(/\s+/)[3]), host).toEqual(["127.0.0.1:9100"]);
    }
  });

  it("a drill that fails (a corrupted repository file) tells the operators once: an e-mail and a webhook post naming the host, the failure and the runbook", async () => {
    const keys = await hostKeys();
    smtp = await startSmtpListener(`${SUBNET}.1`, SMTP_PORT);
    webhook = await startWebhookListener(`${SUBNET}.1`, WEBHOOK_PORT);
    const onSecondary = (cmd: string) => ssh(SECONDARY, keys.secondary, cmd);
    expect(onSecondary("sudo stat -c '%a' /etc/coop/alerts/webhook.curl").out.trim()).toBe("600");
    const host = onSecondary("hostname -f").out.trim();
    // `coopctl status` over SSH, as an operator runs it: healthy first.
    const knownHosts = path.join(root, "known_hosts-status");
    fs.writeFileSync(knownHosts, `${PRIMARY} ${keys.primary}\n${SECONDARY} ${keys.secondary}\n`);
    const status = async (extra: string[] = []) => {
      let out = "";
      const code = await coopctlStatus(["--host", `coop@${PRIMARY}`, "--host", `coop@${SECONDARY}`, "--ssh-key", path.join(root, "state", "deploy_key"), "--known-hosts", knownHosts, "--json", ...extra],
        { out: (t) => (out += t), err: (t) => (out += t), env: process.env });
      return { code, out };
    };
    const healthy = await status();
    expect(healthy.code, healthy.out).toBe(0);
    // The same hosts judged with thresholds they miss: any disk use at all, and a certificate within 1000 days.
    const strict = await status(["--disk-max-percent", "0", "--cert-min-days", "1000"]);
    expect(strict.code, strict.out).toBe(1);
    const strictProblems = (JSON.parse(strict.out) as { problems: { kind: string; host: string }[] }).problems;
    expect(new Set(strictProblems.filter((p) => p.kind === "disk").map((p) => p.host)).size, strict.out).toBe(2);
    expect(strictProblems.filter((p) => p.kind === "certificate"), strict.out).toHaveLength(1);
    // One file of the newest backup set, damaged in place (the repository is encrypted: any byte breaks it).
    const file = onSecondary("sudo find /srv/backup/pgbackrest/backup -path '*/pg_data/global/pg_control*' -type f | sort | tail -n 1").out.trim();
    expect(file).toMatch(/pg_control/);
    onSecondary(`sudo cp -p '${file}' '${file}.wst-orig' && printf 'XXXXXXXX' | sudo dd of='${file}' bs=1 seek=40 conv=notrunc status=none`);
    try {
      const drill = await sshAsync(SECONDARY, keys.secondary, "sudo systemctl start coop-drill.service; echo rc=$?");
      expect(drill.out).not.toContain("rc=0");
      const failed = await status();
      expect(failed.code, failed.out).toBe(1);
      const problems = (JSON.parse(failed.out) as { problems: { kind: string; host: string }[] }).problems;
      expect(problems[0]).toMatchObject({ kind: "drill-failed" });
      const until = Date.now() + 2 * MINUTE;
      while ((smtp.messages.length === 0 || webhook.posts.length === 0) && Date.now() < until) await new Promise((r) => setTimeout(r, 500));
      expect(smtp.messages).toHaveLength(1);
      expect(smtp.messages[0].from, "the instance's sender").toBe("notifications@social.coop.test");
      const mail = smtp.messages[0].data;
      expect(mail).toMatch(new RegExp(`^Subject: \\[wst\\] ${host.replace(/\./g, "\\.")}: coop-drill\\.service failed\r?$`, "m"));
      expect(mail).toContain("docs/runbooks/alerts.md#a-restore-drill-failed");
      // The drill's own reason, from its journal.
      expect(mail).toMatch(/pgBackRest restore failed|restore failed/);
      expect(webhook.posts).toHaveLength(1);
      expect(webhook.posts[0].path).toBe(`/hook/${WEBHOOK_TOKEN}`);
      expect(JSON.parse(webhook.posts[0].body)).toMatchObject({ problem: "coop-drill.service", host, stack: "wst" });
      for (const m of [mail, webhook.posts[0].body]) for (const n of [WEBHOOK_TOKEN, secrets.resticPassword, secrets.pgbackrestCipherPass]) expect(m.includes(n)).toBe(false);
      // The same failure again today: nobody is told twice.
      await sshAsync(SECONDARY, keys.secondary, "sudo systemctl start coop-alert@coop-drill.service.service");
      expect(smtp.messages).toHaveLength(1);
      expect(webhook.posts).toHaveLength(1);
    } finally {
      onSecondary(`sudo mv -f '${file}.wst-orig' '${file}'`);
    }
    // Repaired, the drill passes again (later tests rely on a good last drill) and tells nobody.
    const again = await sshAsync(SECONDARY, keys.secondary, "sudo systemctl start coop-drill.service; echo rc=$?; sudo jq -r .ok /var/lib/coop/drills/last.json");
    expect(again.out).toContain("rc=0");
    expect(again.out.trim().split("\n").pop()).toBe("true");
    expect(smtp.messages).toHaveLength(1);

    // The daily check, on each host with systemd: enabled, and passing on a healthy host.
    for (const [ip, key] of [[PRIMARY, keys.primary], [SECONDARY, keys.secondary]]) {
      const c = await sshAsync(ip, key, "systemctl is-enabled coop-check.timer; sudo systemctl start coop-check.service; echo rc=$?; sudo journalctl -u coop-check.service -n 5 --no-pager -o cat");
      expect(c.out, `${ip}: ${c.out}`).toMatch(/^enabled\n[\s\S]*rc=0\n[\s\S]*nothing needs a person/);
    }
    // A threshold the host is past (any used disk is above 1 %): the check tells it, naming /srv.
    const primaryHost = ssh(PRIMARY, keys.primary, "hostname -f").out.trim();
    const past = await sshAsync(PRIMARY, keys.primary, "sudo bash -c 'set -a; . /etc/coop/backup.env; COOP_CHECK_DISK_MAX_PERCENT=1 /opt/coop/scripts/check.sh'; echo rc=$?");
    expect(past.out).toContain("rc=3");
    const disk = smtp.messages.map((m) => m.data).find((d) => /^Subject: .*disk \/srv /m.test(d)) ?? "";
    expect(disk, smtp.messages.map((m) => /^Subject: (.*)$/m.exec(m.data)?.[1]).join("\n")).toContain(`[wst] ${primaryHost}: disk /srv (`);
    expect(disk).toContain("docs/runbooks/alerts.md#a-disk-is-filling-up");
    // Certificate renewal (Debian's certbot.service, on the app host) names the alert unit too.
    expect(ssh(PRIMARY, keys.primary, "systemctl show -p OnFailure --value certbot.service").out.trim()).toBe("coop-alert@certbot.service.service");
  });

  it("the backupReaders output (secret) lets alpha read the secondary's repositories and change nothing", async () => {
    const out = await stack.outputs();
    expect(out.backupReaders.secret).toBe(true);
    const grant = (out.backupReaders.value as Record<string, { host: string; user: string; privateKey: string; hostKey: string; resticPath: string; resticPassword: string }>).alpha;
    expect(grant).toMatchObject({ host: SECONDARY, user: "coop-read-alpha", resticPassword: secrets.resticPassword });
    expect(grant.hostKey).toBe((await hostKeys()).secondary);
    readerKey = Buffer.from(grant.privateKey, "base64").toString("utf8");
    const key = path.join(root, "reader_key");
    fs.writeFileSync(key, readerKey, { mode: 0o600 });
    const kh = path.join(root, "known_hosts-reader");
    fs.writeFileSync(kh, `${grant.host} ${grant.hostKey}\n`);
    const sshCmd = path.join(root, "reader_ssh");
    fs.writeFileSync(sshCmd, `#!/bin/sh\nexec ssh -F /dev/null -i ${key} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${kh} -o ConnectTimeout=10 "$@"\n`, { mode: 0o755 });
    const asReader = (command: string) => sh(sshCmd, [`${grant.user}@${grant.host}`, command]);
    const info = asReader("pgbackrest --stanza=main --output=json info");
    expect(info.code, info.out).toBe(0);
    expect((JSON.parse(info.out) as { backup: unknown[] }[])[0].backup.length).toBeGreaterThan(0);
    const pw = path.join(root, "reader-restic-password");
    fs.writeFileSync(pw, grant.resticPassword, { mode: 0o600 });
    const restic = (args: string) =>
      sh("bash", ["-c", `restic -r sftp:${grant.user}@${grant.host}:${grant.resticPath} --password-file ${pw} --cache-dir ${root}/reader-cache -o sftp.command='${sshCmd} ${grant.user}@${grant.host} -s sftp' ${args}`]);
    const snapshots = restic("--no-lock snapshots --json");
    expect(snapshots.code, snapshots.out).toBe(0);
    expect((JSON.parse(snapshots.out) as unknown[]).length).toBeGreaterThan(0);
    // What could change prod's backups is refused (test/integration/backup/repo-reader.test.ts tries more).
    expect(asReader("id").code).not.toBe(0);
    expect(asReader("pgbackrest --stanza=main expire").code).not.toBe(0);
    const sftp = sh("bash", ["-c", `echo 'rm ${grant.resticPath}/config' | sftp -b - -S ${sshCmd} ${grant.user}@${grant.host}`]);
    expect(sftp.code, sftp.out).not.toBe(0);
    expect(sftp.out).toContain("Permission denied");
  });

  it("the firewall lets in only 22, 80 and 443, proven with packets from another namespace", async () => {
    const keys = await hostKeys();
    addProbe();
    // Listeners inside the primary on an allowed and a closed port.
    ssh(PRIMARY, keys.primary, "sudo systemd-run --unit=coop-probe-80 python3 -m http.server 80; sudo systemd-run --unit=coop-probe-5432 python3 -m http.server 5432; sleep 1");
    expect(tcpOpen(PRIMARY, 22)).toBe(true);
    expect(tcpOpen(PRIMARY, 80)).toBe(true);
    expect(tcpOpen(PRIMARY, 5432)).toBe(false);
    // The host itself reaches its own listener: the closed port is closed by the firewall, not absent.
    expect(ssh(PRIMARY, keys.primary, "timeout 3 bash -c '</dev/tcp/127.0.0.1/5432' && echo open").out).toContain("open");
    ssh(PRIMARY, keys.primary, "sudo systemctl stop coop-probe-80 coop-probe-5432");
  });

  it("an unchanged stack previews and updates with no change: no command runs", async () => {
    const preview = await stack.preview({ diff: true });
    expect(Object.keys(preview.changeSummary).filter((k) => k !== "same")).toEqual([]);
    const again = await stack.up({ onOutput: log });
    expect(Object.keys(again.summary.resourceChanges ?? {})).toEqual(["same"]);
  }, 10 * MINUTE);

  it("a merge request's note is the real `pulumi preview --diff` of the change, with no secret in it", async () => {
    await stack.setConfig("socialcoop:domain", { value: "preview.coop.test" });
    const preview = await stack.preview({ diff: true, color: "never" });
    await stack.setConfig("socialcoop:domain", { value: "social.coop.test" });
    const file = path.join(root, "preview.txt");
    fs.writeFileSync(file, preview.stdout);
    const gitlab = new FakeGitlab();
    await gitlab.start();
    try {
      const env = { CI_API_V4_URL: gitlab.base, CI_PROJECT_ID: "coop/infra", CI_MERGE_REQUEST_IID: "42", GITLAB_NOTES_TOKEN: TOKEN };
      expect(await postPreviewNote(["--stack", STACK, "--file", file, "--exit-code", "0"], env)).toBe(0);
      const note = gitlab.notes.find((n) => n.body.startsWith(marker(STACK)));
      // The names hooks on both hosts, the app deploy and the final health check would update, with the
      // new name in their diff.
      expect(note?.body).toMatch(/~ command:remote:Command: \(update\)[\s\S]*wst-names-0/);
      expect(note?.body).toContain("preview.coop.test");
      expect(preview.changeSummary).toMatchObject({ update: 4 });
      for (const n of [secrets.resticPassword, secrets.pgbackrestCipherPass, secrets.sshPrivateKey.split("\n")[2]]) {
        expect(note?.body.includes(n)).toBe(false);
      }
    } finally {
      await gitlab.stop();
    }
  }, 5 * MINUTE);

  it("a failing hook stops what depends on it, fails the up naming it, and the next up retries it", async () => {
    const keys = await hostKeys();
    // Injected: the primary cannot write its authorized keys (a folder stands where the file goes).
    ssh(PRIMARY, keys.primary, "mkdir -p ~/.ssh/authorized_keys.new");
    const keyFile = path.join(root, "second-operator");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "second-operator", "-f", keyFile]);
    const current = JSON.parse((await stack.getConfig("socialcoop:sshKeys")).value) as string[];
    await stack.setConfig("socialcoop:sshKeys", { value: JSON.stringify([...current, fs.readFileSync(`${keyFile}.pub`, "utf8").trim()]) });
    await stack.setConfig("socialcoop:domain", { value: "social2.coop.test" });
    const output: string[] = [];
    // --continue-on-error: independent work goes on, so what is skipped is exactly what depends on the failure.
    const failed = await stack.up({ continueOnError: true, onOutput: (s) => (output.push(s), log(s)) }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(failed).toBeInstanceOf(Error);
    expect(output.join("")).toMatch(/command:remote:Command wst-primary-authorized-keys \*\*updating failed\*\*/);
    // The secondary's names moved (its keys hook passed); the primary's did not (its hook failed).
    expect(ssh(SECONDARY, keys.secondary, "getent hosts social2.coop.test").code).toBe(0);
    expect(ssh(PRIMARY, keys.primary, "getent hosts social2.coop.test").code).not.toBe(0);

    ssh(PRIMARY, keys.primary, "rmdir ~/.ssh/authorized_keys.new");
    const retried = await stack.up({ onOutput: log });
    expect(retried.summary.resourceChanges?.update ?? 0).toBeGreaterThanOrEqual(2);
    expect(ssh(PRIMARY, keys.primary, "grep -c second-operator ~/.ssh/authorized_keys").out.trim()).toBe("1");
    expect(ssh(PRIMARY, keys.primary, "getent hosts social2.coop.test").code).toBe(0);
  }, 15 * MINUTE);

  describe("alpha from prod's newest backup: `pulumi up` of a second stack restores it read-only and makes it safe", () => {
    const ALPHA_STACK = `${STACK}-alpha`;
    const ALPHA = `${SUBNET}.21`;
    const ALPHA_NAME = "alpha.social.coop.test";
    let alpha: Stack;
    let alphaUp: UpResult;
    let alphaKey = "";
    let prodKeys: readonly string[] = [];
    let prodBackups = "";
    /** The private key of prod's grant to alpha, as prod's stack output holds it. */
    let grantKey = "";
    const alphaSsh = (command: string, input?: string) => ssh(ALPHA, alphaKey, command, [], {}, input);
    const alphaPsql = (sql: string) => alphaSsh(`sudo -u postgres psql -X -A -t -d mastodon_production -c "${sql}"`).out.trim();

    beforeAll(async () => {
      const keys = await hostKeys();
      // prod holds what must never act again from alpha, and a queued job in its Redis.
      const creds = prodCredentials(FEDI);
      prodKeys = creds.privateKeys;
      const readers = (await stack.outputs()).backupReaders.value as Record<string, { privateKey: string }>;
      grantKey = Buffer.from(readers.alpha.privateKey, "base64").toString("utf8");
      const loaded = ssh(PRIMARY, keys.primary, "sudo -u postgres psql -X -q -d mastodon_production", [], {}, creds.sql);
      expect(loaded.code, loaded.out).toBe(0);
      // A delivery Sidekiq holds for later (its `schedule` set): restored as is, it would go out from alpha.
      const scheduled = `{"class":"ActivityPub::DeliveryWorker","queue":"push","jid":"prod-scheduled","args":["{}",1,"https://remote.example/inbox"]}`;
      expect(ssh(PRIMARY, keys.primary, `redis-cli zadd schedule 4102444800 '${scheduled}'`).code).toBe(0);
      // prod mails through its relay (the test's SMTP listener, stack config `mail`); alpha restores that file.
      expect(ssh(PRIMARY, keys.primary, "sudo grep -c '^SMTP_SERVER=' /home/mastodon/shared/.env.production").out.trim()).toBe("1");
      const backup = ssh(PRIMARY, keys.primary, "sudo systemctl start coop-backup.service && sudo journalctl -u coop-backup.service --no-pager -o cat | tail -n 3");
      expect(backup.code, backup.out).toBe(0);
      // alpha restores the backup prod's last passing drill verified.
      const drill = ssh(SECONDARY, keys.secondary, "sudo systemctl start coop-drill.service");
      expect(drill.code, drill.out).toBe(0);
      prodBackups = backupLabels(ssh(SECONDARY, keys.secondary, "sudo -u coop-backup pgbackrest --stanza=main --output=json info").out);
      alpha = await openLocalStack({
        stateDir: path.join(root, "state"),
        stackName: ALPHA_STACK,
        stackFile: "Pulumi.local-alpha.yaml",
        config: {
          ...acme.config,
          localCloud: JSON.stringify({ network: NETWORK, subnet4: `${SUBNET}.0/24`, subnet6: "fd42:231:9::/64", joinNetwork: true, firstHost: 21 }),
          restore: JSON.stringify({ from: "prod", stack: STACK }),
        },
        secrets: { sshPrivateKey: secrets.sshPrivateKey },
        log,
      });
      const t0 = Date.now();
      alphaUp = await alpha.up({ onOutput: log });
      log(`alpha: first up (restore of prod included) took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      alphaKey = String((await alpha.outputs()).primaryHostKey.value);
    }, 25 * MINUTE);

    afterAll(async () => {
      if (alpha) await alpha.destroy({ onOutput: log }).catch((e: Error) => log(`alpha destroy failed: ${e.message}`));
    }, 10 * MINUTE);

    it("comes up serving over HTTPS on its own name, from prod's data", async () => {
      expect(alphaUp.summary.result).toBe("succeeded");
      addProbe();
      const ca = await trustRoot();
      const served = sh("curl", ["-fsS", "--max-time", "5", "--cacert", ca, "--resolve", `${ALPHA_NAME}:443:${ALPHA}`, `https://${ALPHA_NAME}/health`], { netns: PROBE_NS });
      expect(served.code, served.out).toBe(0);
      // Its certificate is its own: prod's (restored with /etc/letsencrypt) is gone, with prod's DNS token.
      expect(alphaSsh("sudo ls /etc/letsencrypt/renewal").out.trim()).toBe(`${ALPHA_NAME}.conf`);
      // prod's rows are there (the fixture's and the Mastodon-shaped ones).
      expect(Number(alphaPsql("select count(*) from accounts where username like 'member%'"))).toBe(prodKeys.length);
      expect(alphaSsh("sudo grep -E '^(LOCAL_DOMAIN|WEB_DOMAIN)=' /home/mastodon/shared/.env.production").out).toMatch(new RegExp(`LOCAL_DOMAIN=${ALPHA_NAME.replace(/\./g, "\\.")}`));
    });

    /** What must hold of every copy alpha serves: nothing left that could act as prod. */
    const expectSafe = () => {
      const keysLeft = alphaPsql("select coalesce(string_agg(private_key, '|'), '') from accounts where domain is null");
      for (const k of prodKeys) expect(keysLeft.includes(k.split("\n")[1]), "a local account kept prod's actor key").toBe(false);
      expect(alphaPsql("select count(*) from accounts where domain is null and coalesce(private_key, '') = ''")).toBe("0");
      const counts = alphaPsql(
        "select (select count(*) from oauth_access_tokens) || ' ' || (select count(*) from oauth_access_grants) || ' ' || (select count(*) from session_activations) || ' ' || " +
          "(select count(*) from web_push_subscriptions) || ' ' || (select count(*) from webhooks where enabled) || ' ' || (select count(*) from relays) || ' ' || " +
          "(select count(*) from webauthn_credentials) || ' ' || (select count(*) from users where otp_required_for_login) || ' ' || (select count(*) from scheduled_statuses)",
      );
      expect(counts, "tokens grants sessions subscriptions webhooks relays webauthn otp scheduled").toBe("0 0 0 0 0 0 0 0 0");
      expect(alphaPsql("select count(*) from oauth_applications where secret = 'prod-app-secret'")).toBe("0");
      expect(alphaSsh("redis-cli exists schedule").out.trim()).toBe("0");
      // WAL goes nowhere: the repositories are prod's and alpha cannot write them.
      expect(alphaPsql("show archive_mode")).toBe("off");
      // The app's own units carry the guard, which lets them start only on a copy made safe.
      for (const role of ["web", "streaming", "sidekiq"]) {
        expect(alphaSsh(`systemctl show -p DropInPaths --value coop-fixture-${role}.service`).out, role).toMatch(/coop-alpha-guard\.conf/);
      }
      expect(alphaSsh("sudo /usr/local/sbin/coop-alpha-guard").code, "the guard passes on the copy it was made for").toBe(0);
    };

    it("nothing that could act as prod is left: keys, tokens, sessions, subscriptions, webhooks, relays, Redis", () => {
      expectSafe();
    });

    it("alpha's app user reaches nothing outside (nftables egress), while name resolution still works", () => {
      const connect = (user: string, port: number) => alphaSsh(`sudo -u ${user} timeout 5 bash -c '</dev/tcp/${PRIMARY}/${port}'; echo "exit=$?"`).out;
      // A fediverse server (prod's primary stands in): the app's user gets nowhere, another user does.
      expect(connect("mastodon", 443)).not.toMatch(/exit=0/);
      expect(connect("mastodon", 80)).not.toMatch(/exit=0/);
      expect(connect("postgres", 443)).toMatch(/exit=0/);
      expect(alphaSsh("sudo -u mastodon getent hosts alpha.social.coop.test").code).toBe(0);
      const counter = alphaSsh("sudo nft list counter inet coop_alpha_egress refused");
      expect(counter.code, counter.out).toBe(0);
      expect(counter.out).toMatch(/packets [1-9]/);
    });

    it("alpha's workers run delivery and mail jobs queued from restored data: the fediverse host gets 0 connections, the relay 0 mails; prod's get through", async () => {
      smtp ??= await startSmtpListener(`${SUBNET}.1`, SMTP_PORT);
      addProbe(FEDI_NS, "coopwstfedi", FEDI);
      const fediverse = await startFediverseHost(FEDI_NS, FEDI);
      const keys = await hostKeys();
      const onProd = (command: string, input?: string) => ssh(PRIMARY, keys.primary, command, [], {}, input);
      const toMembers = () => smtp?.messages.filter((m) => m.to.some((t) => t.startsWith("member"))).length ?? 0;
      try {
        // What Mastodon's workers would be asked after a post and a sign-up: a Create to each remote
        // follower's inbox (ActivityPub::DeliveryWorker) and a mail to members (ActionMailer), from the data.
        const jobs: [string, string][] = [
          ["push", "select json_build_object('class', 'ActivityPub::DeliveryWorker', 'queue', 'push', 'jid', 'delivery-' || r.id, 'args', json_build_array('{\"type\":\"Create\"}', l.id, r.inbox_url)) from accounts r, (select min(id) id from accounts where domain is null) l where r.domain is not null and r.inbox_url <> '' order by r.id;"],
          ["mailers", "select json_build_object('class', 'ActionMailer::MailDeliveryJob', 'queue', 'mailers', 'jid', 'mail-' || id, 'args', json_build_array('UserMailer', 'welcome', 'deliver_now', email)) from users where email like 'member%' order by id limit 2;"],
        ];
        const work = async (on: (command: string, input?: string) => { code: number; out: string }) => {
          const since = on("date '+%Y-%m-%d %H:%M:%S'").out.trim();
          for (const [queue, sql] of jobs) {
            const queued = on(`sudo -u postgres psql -X -A -t -q -d mastodon_production -f - | while IFS= read -r job; do redis-cli lpush queue:${queue} "$job" >/dev/null; done`, sql);
            expect(queued.code, queued.out).toBe(0);
          }
          const journal = () => on(`sudo journalctl -u coop-fixture-sidekiq.service --since '${since}' --no-pager -o cat | grep -E '^sidekiq: (ActivityPub::DeliveryWorker|mail) '; true`).out.trim().split("\n").filter(Boolean);
          const until = Date.now() + 60_000;
          while (journal().length < 4 && Date.now() < until) await new Promise((r) => setTimeout(r, 1000));
          expect(on("redis-cli llen queue:push; redis-cli llen queue:mailers").out.trim().split("\n"), "the queues drained").toEqual(["0", "0"]);
          return journal();
        };
        // prod's relay came with the restored .env.production; sanitize-alpha.sh left only file delivery.
        const smtpLines = alphaSsh("sudo grep -E '^SMTP_' /home/mastodon/shared/.env.production").out.trim().split("\n");
        expect(smtpLines).toContain("SMTP_DELIVERY_METHOD=file");
        expect(smtpLines.filter((l) => /^SMTP_(SERVER|PORT|LOGIN|PASSWORD|AUTH_METHOD|ENABLE_STARTTLS|TLS)=/.test(l)), "prod's relay settings on alpha").toEqual([]);
        const onAlpha = (command: string, input?: string) => alphaSsh(command, input);
        const mailsBefore = toMembers();
        const alphaRan = await work(onAlpha);
        log(`alpha's worker:\n${alphaRan.join("\n")}`);
        expect(alphaRan.filter((l) => / to https?:\/\/.*: failed \(/.test(l)), "both deliveries ran and failed").toHaveLength(2);
        expect(alphaRan.filter((l) => /written to .*\(SMTP_DELIVERY_METHOD=file\)$/.test(l)), "both mails went to files").toHaveLength(2);
        expect(fediverse.connections, "connections the fediverse host saw while alpha worked").toEqual([]);
        expect(toMembers() - mailsBefore, "mails the relay got from alpha").toBe(0);
        expect(alphaSsh("sudo ls /home/mastodon/current/tmp/mails").out.trim().split("\n").filter((f) => f.startsWith("member"))).toHaveLength(2);
        // The control: the same jobs from prod's own copy of the data reach both (the test could fail).
        const prodRan = await work(onProd);
        log(`prod's worker:\n${prodRan.join("\n")}`);
        expect(prodRan.filter((l) => /: delivered \(HTTP 202\)$/.test(l)), prodRan.join("\n")).toHaveLength(1);
        expect(new Set(fediverse.connections.map((c) => `${c.port} ${c.peer}`)), "prod reached both inboxes").toEqual(new Set([`80 ${PRIMARY}`, `443 ${PRIMARY}`]));
        const until = Date.now() + 10_000;
        while (toMembers() - mailsBefore < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 500));
        expect(toMembers() - mailsBefore, "mails the relay got from prod").toBe(2);
      } finally {
        fediverse.stop();
        removeProbe(FEDI_NS, "coopwstfedi");
      }
    }, 5 * MINUTE);

    it("alpha's way into prod's backups reads and changes nothing: expire, a backup and archive-push are refused", async () => {
      const keys = await hostKeys();
      // Through alpha's own key, as install-reader.sh left it (test/integration/backup/repo-reader.test.ts tries more).
      const asReader = `sudo /etc/coop/reader-ssh/ssh coop-read-alpha@${SECONDARY}`;
      const tries = [
        `${asReader} 'pgbackrest --stanza=main --repo1-retention-full=1 expire'`,
        `${asReader} 'pgbackrest --stanza=main stanza-delete --force'`,
        `${asReader} 'rm -rf /srv/backup'`,
        `echo 'rm /srv/backup/restic/config' | sudo sftp -b - -S /etc/coop/reader-ssh/ssh coop-read-alpha@${SECONDARY}`,
        "sudo -u postgres pgbackrest --stanza=main --type=full backup",
      ];
      for (const t of tries) expect(alphaSsh(t).code, t).not.toBe(0);
      // The way in works for what it is for.
      expect(alphaSsh(`${asReader} 'pgbackrest --stanza=main info'`).code).toBe(0);
      expect(backupLabels(ssh(SECONDARY, keys.secondary, "sudo -u coop-backup pgbackrest --stanza=main --output=json info").out)).toBe(prodBackups);
      expect(ssh(SECONDARY, keys.secondary, "sudo test -f /srv/backup/restic/config").code).toBe(0);
    });

    it("the grant's key and the restic passphrase are only in alpha's root-only files, never in its logs or engine output", () => {
      const grant = grantKey.split("\n")[2] ?? "";
      expect(grant.length, "the reader's key was read from prod's output").toBeGreaterThan(20);
      const fragments = [grant, secrets.resticPassword.slice(0, 12)];
      const found = alphaSsh("sudo grep -rlF -f - /var/log /run/log /home /srv /etc /var/lib/coop 2>/dev/null; true", `${fragments.join("\n")}\n`).out.trim().split("\n").filter(Boolean);
      for (const p of found) expect(p, `a secret in ${p}`).toMatch(/^\/etc\/coop\/(restic-password|backup\.env|reader-ssh\/id_ed25519)$/);
      expect(found.length, "the key and passphrase are where install-reader.sh puts them").toBeGreaterThan(0);
      for (const f of ["/etc/coop/restic-password", "/etc/coop/backup.env", "/etc/coop/reader-ssh/id_ed25519"]) {
        expect(alphaSsh(`sudo stat -c '%a' ${f}`).out.trim(), f).toBe("600");
      }
      expect(alphaSsh("sudo journalctl _COMM=sudo --no-pager -o cat | grep -c 'ENV=COOP_'; true").out.trim()).toBe("0");
      expect(logs.join("\n").includes(grant)).toBe(false);
    });

    it("a newer prod backup, once its drill passed, refreshes alpha on its next up: prod's rows up to the verified point arrive, alpha's own changes go, alpha's certificate stays, and the copy is made safe again", async () => {
      const keys = await hostKeys();
      const onProd = (command: string, input?: string) => ssh(PRIMARY, keys.primary, command, [], {}, input);
      const serial = () => alphaSsh(`sudo openssl x509 -noout -serial -in /etc/letsencrypt/live/${ALPHA_NAME}/cert.pem`).out.trim();
      const serialBefore = serial();
      expect(serialBefore).toMatch(/^serial=/);
      // What only this copy holds (a member's trial post, an upload), and what prod gains after it was made.
      expect(alphaSsh("sudo -u postgres psql -X -q -d mastodon_production -c 'create table alpha_trial (note text); insert into alpha_trial values (1)'").code).toBe(0);
      expect(alphaSsh("sudo -u mastodon touch /home/mastodon/shared/public/system/alpha-trial-upload").code).toBe(0);
      expect(onProd("sudo -u postgres psql -X -q -d mastodon_production -c \"create table prod_after_alpha (note text); insert into prod_after_alpha values ('newer than alpha')\"").code).toBe(0);
      expect(onProd("sudo -u mastodon sh -c 'echo media > /home/mastodon/shared/public/system/prod-after-alpha'").code).toBe(0);
      const backup = onProd("sudo systemctl start coop-backup.service && sudo journalctl -u coop-backup.service --no-pager -o cat | tail -n 2");
      expect(backup.code, backup.out).toBe(0);
      const newest = backupLabels(ssh(SECONDARY, keys.secondary, "sudo -u coop-backup pgbackrest --stanza=main --output=json info").out).split(" ").pop();
      // Written after the backup: in prod's WAL, but past the point a drill verifies.
      expect(onProd("sudo -u postgres psql -X -q -d mastodon_production -c \"insert into prod_after_alpha values ('after the backup')\"").code).toBe(0);
      // Until prod's drill has verified the new backup, alpha's preview finds nothing to refresh to.
      const quiet = await alpha.preview({ onOutput: log });
      expect(quiet.changeSummary.replace ?? 0, "a refresh to a backup no drill verified").toBe(0);
      const drill = ssh(SECONDARY, keys.secondary, "sudo systemctl start coop-drill.service && sudo cat /var/lib/coop/drills/last-verified.json");
      expect(drill.code, drill.out).toBe(0);
      const verified = JSON.parse(drill.out.slice(drill.out.indexOf("{"))) as { backupLabel: string; restorePoint: string };
      expect(verified.backupLabel).toBe(newest);
      // The preview says so before anything runs: the restore, and what follows it, are replaced.
      const coming = await alpha.preview({ onOutput: log, diff: true });
      expect(coming.changeSummary.replace ?? 0, "restore, sanitize and deploy").toBeGreaterThanOrEqual(3);
      expect(coming.stdout).toContain(String(newest));
      const t0 = Date.now();
      const refreshed = await alpha.up({ onOutput: log });
      log(`alpha: refresh from prod's newer backup took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      expect(refreshed.summary.result).toBe("succeeded");
      expect(refreshed.summary.resourceChanges?.replace ?? 0).toBeGreaterThanOrEqual(3);
      // Exactly what the drill verified: the rows before the backup, not the one written after it.
      expect(alphaPsql("select string_agg(note, ',') from prod_after_alpha")).toBe("newer than alpha");
      expect(alphaPsql("select to_regclass('public.alpha_trial') is null")).toBe("t");
      expect(alphaSsh("sudo ls /home/mastodon/shared/public/system").out.trim().split("\n")).toEqual(expect.arrayContaining(["prod-after-alpha"]));
      expect(alphaSsh("sudo test -e /home/mastodon/shared/public/system/alpha-trial-upload").code, "alpha's own upload is gone").not.toBe(0);
      expect(alphaSsh("sudo cat /var/lib/coop/restore-instance.done").out.trim()).toBe(`reader:name:${verified.restorePoint}:${newest}`);
      // The deployed release's migrations ran over prod's data (alpha may run a newer release than prod).
      expect(logs.join("\n")).toMatch(/the database was restored under current \(.*\): running its migrations/);
      // alpha's own site and certificate stayed (no new issuance); prod's never came.
      expect(serial()).toBe(serialBefore);
      expect(alphaSsh("sudo ls /etc/letsencrypt/renewal").out.trim()).toBe(`${ALPHA_NAME}.conf`);
      expectSafe();
      addProbe();
      const ca = await trustRoot();
      const served = sh("curl", ["-fsS", "--max-time", "5", "--cacert", ca, "--resolve", `${ALPHA_NAME}:443:${ALPHA}`, `https://${ALPHA_NAME}/health`], { netns: PROBE_NS });
      expect(served.code, served.out).toBe(0);
    }, 10 * MINUTE);

    it("an unchanged alpha runs nothing on a second up; destroy removes its machine and leaves prod's network", async () => {
      const again = await alpha.up({ onOutput: log });
      expect(Object.keys(again.summary.resourceChanges ?? {})).toEqual(["same"]);
      const gone = await alpha.destroy({ onOutput: log });
      expect(gone.summary.result).toBe("succeeded");
      expect(sh("ip", ["link", "show", NETWORK]).code, "prod's bridge").toBe(0);
      expect(leftovers().filter((l) => l.includes(ALPHA_STACK))).toEqual([]);
      expect(ssh(PRIMARY, (await hostKeys()).primary, "true").code).toBe(0);
    }, 10 * MINUTE);
  });

  it("secrets appear nowhere: not in the state file, the engine's output, or the hosts' logs", async () => {
    const keys = await hostKeys();
    const needles = [secrets.resticPassword, secrets.pgbackrestCipherPass, secrets.sshPrivateKey.split("\n")[2], WEBHOOK_TOKEN, ...(readerKey ? [readerKey.split("\n")[2]] : [])];
    const hostNeedles = [secrets.sshPrivateKey.split("\n")[2]];
    // The files the engine wrote (state, its backups and history, logs), not `stack export --show-secrets`.
    const files = (dir: string): string[] =>
      fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)]));
    const engineFiles = [...files(path.join(root, "state", "backend")), ...files(path.join(root, "state", "home")).filter((f) => !f.includes("/plugins/"))];
    expect(engineFiles.some((f) => f.endsWith(`stacks/socialcoop/${STACK}.json`))).toBe(true);
    const state = engineFiles.map((f) => fs.readFileSync(f, "latin1")).join("\n");
    const engineOut = logs.join("\n");
    for (const n of [...needles, instanceSecret, adminPassword]) {
      expect(n.length).toBeGreaterThan(20);
      expect(state.includes(n)).toBe(false);
      expect(engineOut.includes(n)).toBe(false);
    }
    // The state file holds them encrypted (as ciphertext), so the check above is not vacuous.
    expect(state).toMatch(/"ciphertext"/);
    // The passphrases are stored on the hosts, in 0600 files only (install-backup.sh); the deploy key nowhere.
    for (const [ip, key] of [[PRIMARY, keys.primary], [SECONDARY, keys.secondary]]) {
      for (const f of ["/etc/coop/restic-password", "/etc/coop/backup.env"]) {
        const mode = ssh(ip, key, `sudo stat -c '%a %U' ${f} 2>/dev/null || echo absent`).out.trim();
        expect(["600 root", "absent"], `${ip}:${f}`).toContain(mode);
      }
      // sudo logs the values of variables named with --preserve-env (ENV=NAME=value); the hosts' sudoers
      // keep COOP_* instead, so no sudo line carries one. Its long lines are split in the journal, so the
      // passphrases are also looked for by their first 12 characters.
      const sudoEnv = ssh(ip, key, "sudo journalctl _COMM=sudo --no-pager -o cat | grep -c 'ENV=COOP_'; true").out.trim();
      expect(sudoEnv, `${ip}: sudo logged COOP_* values`).toBe("0");
      const fragments = [secrets.resticPassword, secrets.pgbackrestCipherPass].map((x) => x.slice(0, 12));
      // /var/lib/prometheus: the metrics node_exporter serves.
      const found = ssh(ip, key, "sudo grep -rlF -f - /var/log /run/log /home /srv /etc /var/lib/prometheus 2>/dev/null; true", [], {}, `${fragments.join("\n")}\n`);
      const places = found.out.trim().split("\n").filter(Boolean);
      for (const p of places) expect(p, `${ip}: a passphrase in ${p}`).toMatch(/^\/etc\/(coop\/(restic-password|backup\.env)|pgbackrest\/)/);
      for (const n of hostNeedles) {
        // The needle goes in on stdin: on a command line, sudo would log it and grep would find that.
        const found = ssh(ip, key, "sudo grep -rlF -f - /var/log /run/log /etc /home /srv 2>/dev/null; true", [], {}, `${n}\n`);
        expect(found.out.trim()).toBe("");
      }
    }
  });

  describe("the upgrade chain: a versions.fixture bump runs drill → maintenance → upgrade → health", () => {
    const sqlDigests =
      "select string_agg(t || ':' || d, ' ' order by t) from (" +
      "select 'accounts' as t, md5(coalesce(string_agg(a::text, ',' order by a.id), '')) as d from accounts a union all " +
      "select 'statuses', md5(coalesce(string_agg(s::text, ',' order by s.id), '')) from statuses s union all " +
      "select 'schema_migrations', md5(string_agg(version, ',' order by version)) from schema_migrations) x";
    const psql = (key: string, sql: string) => ssh(PRIMARY, key, "sudo -u mastodon psql -X -A -t -v ON_ERROR_STOP=1 -d mastodon_production -f -", [], {}, `${sql};\n`);
    const served = async (p: string) => {
      const domain = ((await stack.outputs()).names.value as string[])[0];
      return httpsGet(domain, p, await trustRoot());
    };
    /** `pulumi up` to versions.fixture = tag: its error (or undefined) and everything it printed. */
    const upTo = async (tag: string): Promise<{ error?: Error; output: string }> => {
      await stack.setConfig("socialcoop:versions.fixture", { value: tag }, true);
      const output: string[] = [];
      const error = await stack.up({ onOutput: (l) => (output.push(l), log(l)) }).then(() => undefined, (e: Error) => e);
      return { error, output: output.join("") };
    };

    it("a release whose migration fails is rolled back with identical table digests, and the up fails naming it", async () => {
      const keys = await hostKeys();
      addProbe();
      expect(psql(keys.primary, "insert into accounts (username) values ('alice'), ('bob'); insert into statuses (account_id, text) select id, 'hello from ' || username from accounts where username in ('alice', 'bob')").code).toBe(0);
      const before = psql(keys.primary, sqlDigests).out.trim();
      expect(before).toMatch(/^accounts:[0-9a-f]{32} schema_migrations:[0-9a-f]{32} statuses:[0-9a-f]{32}$/);
      const { error, output } = await upTo("v1.3.0");
      expect(error).toBeInstanceOf(Error);
      expect(output).toMatch(/wst-upgrade-app-fixture \*\*(creating|updating|replacing) failed\*\*/);
      expect(error?.message).toMatch(/v1\.3\.0/);
      expect(output).toMatch(/rolled back/i);
      // The drill ran first (a changed target), then the upgrade; nothing after the failed hop.
      expect(output.indexOf("wst-upgrade-drill ")).toBeGreaterThan(-1);
      expect(output.indexOf("wst-upgrade-drill ")).toBeLessThan(output.indexOf("wst-upgrade-app-fixture "));
      expect(psql(keys.primary, sqlDigests).out.trim()).toBe(before);
      expect((await served("/version")).out.trim()).toBe("v1.2.0");
      expect((await served("/health")).code).toBe(0);
    }, 10 * MINUTE);

    it("a release that fails its health check is rolled back the same way", async () => {
      const keys = await hostKeys();
      const before = psql(keys.primary, sqlDigests).out.trim();
      const { error, output } = await upTo("v1.4.0");
      expect(error).toBeInstanceOf(Error);
      expect(output).toMatch(/health/i);
      expect(output).toMatch(/rolled back/i);
      expect(psql(keys.primary, sqlDigests).out.trim()).toBe(before);
      expect((await served("/version")).out.trim()).toBe("v1.2.0");
    }, 10 * MINUTE);

    it("a release this host's PostgreSQL is too old for is refused before maintenance, with the fix", async () => {
      const keys = await hostKeys();
      const pid = () => ssh(PRIMARY, keys.primary, "systemctl show -p MainPID --value coop-fixture-web.service").out.trim();
      const before = pid();
      const { error, output } = await upTo("v1.5.0");
      expect(error).toBeInstanceOf(Error);
      expect(output).toContain("v1.5.0 needs PostgreSQL 99 or newer; this host runs 15");
      expect(output).toContain("set versions.postgres to 99 or newer");
      // Refused in the preflight: no maintenance, the web process never stopped.
      expect(output).not.toMatch(/wst-upgrade-app-fixture [^\n]*step \d+\/\d+ maintenance/);
      expect(pid()).toBe(before);
      expect((await served("/version")).out.trim()).toBe("v1.2.0");
    }, 10 * MINUTE);

    it("a good release is deployed through maintenance, keeps every row, and the final health check passes", async () => {
      const keys = await hostKeys();
      const { error, output } = await upTo("v2.0.0");
      expect(error, output.slice(-3000)).toBeUndefined();
      // upgrade-app.sh's own steps, in its order: maintenance around the switch and the migrations.
      const steps = [...output.matchAll(/wst-upgrade-app-fixture [^\n]*?step \d+\/\d+ (\w+)(?: done)?/g)].map((m) => m[1]);
      const firstOf = (name: string) => steps.indexOf(name);
      expect(["maintenance", "stop", "restore_point", "switch", "migrate_pre", "start", "health", "migrate_post", "maintenance_off"].map(firstOf).every((v, i, a) => v >= 0 && (i === 0 || v > a[i - 1]))).toBe(true);
      const order = ["wst-upgrade-drill ", "wst-upgrade-app-fixture ", "wst-upgrade-health "].map((n) => output.indexOf(n));
      expect(order.every((i) => i >= 0)).toBe(true);
      expect([...order].sort((a, b) => a - b)).toEqual(order);
      expect((await served("/version")).out.trim()).toBe("v2.0.0");
      expect(psql(keys.primary, "select count(*) from accounts where username in ('alice', 'bob')").out.trim()).toBe("2");
      expect(psql(keys.primary, "select count(*) from statuses where text like 'hello from %'").out.trim()).toBe("2");
      expect((await stack.outputs()).upgradePath.value).toBe("v2.0.0");
      // Nothing runs again once the target is reached.
      const again = await stack.up({ onOutput: log });
      expect(Object.keys(again.summary.resourceChanges ?? {})).toEqual(["same"]);
    }, 10 * MINUTE);
  });

  it("a restart of the primary brings PostgreSQL and Redis back on the volume with their data, under the same host key", async () => {
    const keys = await hostKeys();
    const psql = (sql: string) => ssh(PRIMARY, keys.primary, `sudo -u mastodon psql -X -A -t -d mastodon_production -c "${sql}"`);
    expect(psql("create table restart_probe (n int); insert into restart_probe values (42)").code).toBe(0);
    expect(ssh(PRIMARY, keys.primary, "redis-cli set restart_probe 43 >/dev/null && redis-cli save").out).toContain("OK");
    const restart = spawnSync("bash", [path.join(__dirname, "../../../tools/local-cloud/machine.sh"), "restart"], {
      env: { ...process.env, COOP_MACHINE: `${STACK}-primary` },
      encoding: "utf8",
      timeout: 180_000,
    });
    expect(restart.status, restart.stderr).toBe(0);
    // The pinned key still opens the door: the machine kept its identity.
    expect(ssh(PRIMARY, keys.primary, "systemctl is-active postgresql@15-main redis-server").out.trim()).toBe("active\nactive");
    expect(psql("select n from restart_probe").out.trim()).toBe("42");
    expect(ssh(PRIMARY, keys.primary, "redis-cli get restart_probe").out.trim()).toBe("43");
    expect(ssh(PRIMARY, keys.primary, "findmnt -n -o FSTYPE /srv").out.trim()).toBe("ext4");
    // The instance serves again over HTTPS by itself (its units start at boot), and its timers run.
    addProbe();
    const domain = ((await stack.outputs()).names.value as string[])[0];
    const ca = await trustRoot();
    let served = httpsGet(domain, "/health", ca);
    for (let i = 0; i < 30 && served.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      served = httpsGet(domain, "/health", ca);
    }
    expect(served.code, served.out).toBe(0);
    const timers = "coop-backup.timer coop-backup-full.timer certbot.timer";
    expect(ssh(PRIMARY, keys.primary, `systemctl is-active ${timers}`).out.trim()).toBe("active\nactive\nactive");
  }, 5 * MINUTE);

  it("pulumi destroy leaves no machine, namespace, veth, bridge, loop device or mount", async () => {
    removeProbe();
    const result = await stack.destroy({ onOutput: log });
    expect(result.summary.result).toBe("succeeded");
    expect(leftovers()).toEqual([]);
  }, 10 * MINUTE);
});
