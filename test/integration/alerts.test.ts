// install-alerts.sh and alert.sh against a real SMTP listener and a real HTTP listener on loopback: the
// e-mail and the webhook post a failure makes, at most one per problem, destination and day, a retry of
// the destination that failed (and only of it), nothing secret in any output, file or message, and bad
// input refused before anything is written.
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, run, type RunResult, type TempDir } from "../../src/local";
import { startSmtpListener, type SmtpListener } from "../support/smtp-listener";
import { startWebhookListener, type WebhookListener } from "../support/webhook-listener";

const SCRIPTS = resolve(__dirname, "../../scripts");
const WEBHOOK_TOKEN = "AL-WEBHOOK-TOKEN-5d1f0c3e9b7a";
const SMTP_PASSWORD = "AL-SMTP-PASSWORD-7c2e";

let tmp: TempDir;
let smtp: SmtpListener;
let hook: WebhookListener;
const outputs: string[] = [];

const alertDir = () => join(tmp.path, "etc", "coop", "alerts");

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    COOP_ALERT_STACK: "wal",
    COOP_ALERT_EMAIL_TO: "ops@social.coop.test,second@social.coop.test",
    COOP_ALERT_EMAIL_FROM: "alerts@social.coop.test",
    COOP_ALERT_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    COOP_ALERT_SMTP_STARTTLS: "no",
    COOP_ALERT_WEBHOOK_URL: `${hook.url}/hook/${WEBHOOK_TOKEN}`,
    COOP_ALERT_DIR: alertDir(),
    COOP_ALERT_STATE_DIR: join(tmp.path, "state", "alerts"),
    COOP_ALERT_HOST: "wal-secondary.test",
    COOP_STATE_DIR: join(tmp.path, "state"),
    COOP_SCRIPTS_DIR: SCRIPTS,
    COOP_SYSTEMD_DIR: join(tmp.path, "systemd"),
    COOP_SKIP_SYSTEMCTL: "1",
    ...extra,
  };
}

async function script(name: string, args: string[], extra: Record<string, string> = {}, input?: string): Promise<RunResult> {
  const r = await run("bash", [join(SCRIPTS, name), ...args], { env: env(extra), allowFailure: true, timeoutMs: 90_000, input });
  outputs.push(r.stdout, r.stderr);
  return r;
}

const header = (data: string, name: string) => new RegExp(`^${name}: (.*)$`, "mi").exec(data)?.[1]?.trim();

beforeAll(async () => {
  tmp = makeTempDir("coop-alerts-");
  mkdirSync(join(tmp.path, "systemd"), { recursive: true });
  smtp = await startSmtpListener();
  hook = await startWebhookListener();
}, 60_000);
afterAll(async () => {
  await smtp?.close();
  await hook?.close();
  // The secrets never reached an output.
  for (const o of outputs) for (const s of [WEBHOOK_TOKEN, SMTP_PASSWORD]) expect(o.includes(s), `secret in output:\n${o}`).toBe(false);
  tmp?.remove();
});

describe("alerts from the host", () => {
  it("install-alerts.sh writes the destinations root-only, the webhook's token only in its curl config, and the unit template", async () => {
    const r = await script("install-alerts.sh", []);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("alerts go to: e-mail to ops@social.coop.test,second@social.coop.test");
    for (const f of ["alert.env", "webhook.curl"]) expect((statSync(join(alertDir(), f)).mode & 0o777).toString(8), f).toBe("600");
    expect((statSync(alertDir()).mode & 0o777).toString(8)).toBe("700");
    expect(readFileSync(join(alertDir(), "alert.env"), "utf8")).not.toContain(WEBHOOK_TOKEN);
    expect(readFileSync(join(alertDir(), "webhook.curl"), "utf8")).toContain(WEBHOOK_TOKEN);
    // No login given: no SMTP credentials file.
    expect(existsSync(join(alertDir(), "smtp.curl"))).toBe(false);
    const unit = readFileSync(join(tmp.path, "systemd", "coop-alert@.service"), "utf8");
    expect(unit).toContain(`ExecStart=${SCRIPTS}/alert.sh unit-failed %i`);
    // The daily check: after the drill, its own failure alerting too, "problems told" (3) not a failure.
    const check = readFileSync(join(tmp.path, "systemd", "coop-check.service"), "utf8");
    expect(check).toMatch(/OnFailure=coop-alert@%n\.service[\s\S]*ExecStart=.*\/check\.sh[\s\S]*SuccessExitStatus=3/);
    expect(readFileSync(join(tmp.path, "systemd", "coop-check.timer"), "utf8")).toContain("OnCalendar=*-*-* 07:00:00 UTC");
    expect(readFileSync(join(alertDir(), "alert.env"), "utf8")).toContain('COOP_CHECK_DISK_MAX_PERCENT="${COOP_CHECK_DISK_MAX_PERCENT:-85}"');
    expect(readFileSync(join(tmp.path, "systemd", "certbot.service.d", "coop-alert.conf"), "utf8")).toMatch(/^\[Unit\]\nOnFailure=coop-alert@%n\.service$/m);
    const again = await script("install-alerts.sh", []);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toContain("wrote ");
  });

  it("a failed drill: one e-mail to every address and one webhook post, naming the host, the failure and the runbook", async () => {
    const r = await script("alert.sh", ["send", "coop-drill.service", "the restore drill failed"], {}, "drill.sh: step verify: 3 tables differ from the manifest\n");
    expect(r.code, r.stderr).toBe(0);
    expect(smtp.messages).toHaveLength(1);
    const mail = smtp.messages[0];
    expect(mail.from).toBe("alerts@social.coop.test");
    expect(mail.to).toEqual(["ops@social.coop.test", "second@social.coop.test"]);
    expect(header(mail.data, "Subject")).toBe("[wal] wal-secondary.test: the restore drill failed");
    expect(mail.data).toContain("docs/runbooks/alerts.md#a-restore-drill-failed");
    expect(mail.data).toContain("3 tables differ from the manifest");
    expect(hook.posts).toHaveLength(1);
    const post = hook.posts[0];
    expect(post.method).toBe("POST");
    expect(post.headers["content-type"]).toBe("application/json");
    const body = JSON.parse(post.body);
    expect(body).toMatchObject({ problem: "coop-drill.service", host: "wal-secondary.test", stack: "wal", runbook: "docs/runbooks/alerts.md#a-restore-drill-failed" });
    expect(body.text).toContain("the restore drill failed on wal-secondary.test (stack wal) needs a person");
    // The runbook section the message names exists.
    expect(readFileSync(resolve(__dirname, "../../docs/runbooks/alerts.md"), "utf8")).toMatch(/^## A restore drill failed$/m);
  });

  it("the same problem again the same day tells nobody again", async () => {
    const r = await script("alert.sh", ["send", "coop-drill.service", "the restore drill failed"], {}, "again\n");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("email: already told about coop-drill.service today");
    expect(smtp.messages).toHaveLength(1);
    expect(hook.posts).toHaveLength(1);
  });

  it("a webhook that refuses fails the alert; the next alert retries only the webhook", async () => {
    hook.status = 500;
    const failed = await script("alert.sh", ["send", "coop-backup.service", "the backup failed"], {}, "backup.sh: step database: ...\n");
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain("the webhook post failed (curl exit 0, HTTP status 500)");
    expect(smtp.messages).toHaveLength(2);
    expect(hook.posts).toHaveLength(2);
    hook.status = 200;
    const retried = await script("alert.sh", ["send", "coop-backup.service", "the backup failed"], {}, "still\n");
    expect(retried.code, retried.stderr).toBe(0);
    expect(smtp.messages).toHaveLength(2);
    expect(hook.posts).toHaveLength(3);
    expect(JSON.parse(hook.posts[2].body).runbook).toBe("docs/runbooks/alerts.md#a-backup-failed");
  });

  it("an SMTP server that cannot be reached fails the alert with curl's reason", async () => {
    const dir = join(tmp.path, "unreachable");
    const state = join(tmp.path, "state", "unreachable");
    const i = await script("install-alerts.sh", [], { COOP_ALERT_DIR: dir, COOP_ALERT_SMTP_URL: "smtp://127.0.0.1:1", COOP_ALERT_WEBHOOK_URL: "" });
    expect(i.code, i.stderr).toBe(0);
    const r = await script("alert.sh", ["send", "disk-full", "/srv is 96 % full"], { COOP_ALERT_DIR: dir, COOP_ALERT_STATE_DIR: state }, "");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/e-mail through smtp:\/\/127\.0\.0\.1:1 failed \(curl exit 7\)/);
    // Not told: the next alert of it tries again.
    expect(existsSync(join(state, "disk-full.email"))).toBe(false);
  });

  it("with no destination installed, an alert says so in the journal, even with destinations in its environment", async () => {
    const before = smtp.messages.length;
    const r = await script("alert.sh", ["send", "disk-full", "/srv is 96 % full"], { COOP_ALERT_DIR: join(tmp.path, "nothing-here") }, "");
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("no alert destination is configured (stack config alerts): nobody was told: /srv is 96 % full");
    expect(smtp.messages).toHaveLength(before);
  });

  it("unit-failed names the unit and refuses a name that is not a unit's", async () => {
    const r = await script("alert.sh", ["unit-failed", "coop-backup-full.service"]);
    expect(r.code, r.stderr).toBe(0);
    const mail = smtp.messages[smtp.messages.length - 1];
    expect(header(mail.data, "Subject")).toBe("[wal] wal-secondary.test: coop-backup-full.service failed");
    expect(mail.data).toContain("The unit coop-backup-full.service failed on wal-secondary.test.");
    const bad = await script("alert.sh", ["unit-failed", "x; rm -rf /"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("is not a systemd unit name");
  });

  it("every runbook section an alert names exists, by its heading's anchor", () => {
    const anchors = [...readFileSync(join(SCRIPTS, "lib", "alerts.sh"), "utf8").matchAll(/docs\/runbooks\/([a-z-]+\.md)#([a-z0-9-]+)/g)];
    expect(anchors.length).toBeGreaterThanOrEqual(5);
    for (const [, file, anchor] of anchors) {
      const headings = readFileSync(resolve(__dirname, "../../docs/runbooks", file), "utf8").split("\n").filter((l) => /^#{2,3} /.test(l));
      // GitHub's anchors: lower case, punctuation dropped, spaces as hyphens.
      const slugs = headings.map((h) => h.replace(/^#+ /, "").toLowerCase().replace(/[^a-z0-9 -]/g, "").replace(/ /g, "-"));
      expect(slugs, `${file}#${anchor}`).toContain(anchor);
    }
  });

  it("no message carries a secret", () => {
    for (const m of smtp.messages) expect(m.data.includes(WEBHOOK_TOKEN)).toBe(false);
    for (const p of hook.posts) expect(p.body.includes(WEBHOOK_TOKEN)).toBe(false);
  });

  it("refuses bad input before writing anything, naming the variable and the fix", async () => {
    const cases: [Record<string, string>, string][] = [
      [{ COOP_ALERT_EMAIL_TO: "ops@social.coop.test,not-an-address" }, "COOP_ALERT_EMAIL_TO: 'not-an-address' is not an e-mail address"],
      [{ COOP_ALERT_EMAIL_FROM: "" }, "COOP_ALERT_EMAIL_FROM must be the sender's e-mail address"],
      [{ COOP_ALERT_SMTP_URL: "mail.example.org:587" }, "COOP_ALERT_SMTP_URL must be smtps://host:465 or smtp://host:587"],
      [{ COOP_ALERT_SMTP_LOGIN: "alerts" }, "COOP_ALERT_SMTP_LOGIN and COOP_ALERT_SMTP_PASSWORD go together"],
      [{ COOP_ALERT_SMTP_LOGIN: "alerts", COOP_ALERT_SMTP_PASSWORD: SMTP_PASSWORD }, "would send the SMTP password in clear"],
      [{ COOP_ALERT_SMTP_STARTTLS: "maybe" }, "COOP_ALERT_SMTP_STARTTLS must be yes or no"],
      [{ COOP_ALERT_WEBHOOK_URL: `http://hooks.example.org/${WEBHOOK_TOKEN}` }, "COOP_ALERT_WEBHOOK_URL must be an https:// URL"],
      // A name that starts like a private address is not one.
      [{ COOP_ALERT_WEBHOOK_URL: `http://10.hooks.example.org/${WEBHOOK_TOKEN}` }, "COOP_ALERT_WEBHOOK_URL must be an https:// URL"],
      [{ COOP_ALERT_WEBHOOK_URL: `http://172.32.0.1/${WEBHOOK_TOKEN}` }, "COOP_ALERT_WEBHOOK_URL must be an https:// URL"],
      [{ COOP_ALERT_STACK: "prod; rm" }, "COOP_ALERT_STACK must be a stack name"],
      [{ COOP_CHECK_AT: "7am" }, "COOP_CHECK_AT must be HH:MM"],
      [{ COOP_CHECK_DISK_MAX_PERCENT: "85%" }, "COOP_CHECK_DISK_MAX_PERCENT must be a whole number"],
    ];
    for (const [extra, message] of cases) {
      const dir = join(tmp.path, "refused");
      const r = await script("install-alerts.sh", [], { ...extra, COOP_ALERT_DIR: dir });
      expect(r.code, JSON.stringify(extra)).not.toBe(0);
      expect(r.stderr, JSON.stringify(extra)).toContain(message);
      expect(existsSync(dir), JSON.stringify(extra)).toBe(false);
    }
  });

  it("with a login, the password goes only into the root-only SMTP curl config", async () => {
    const dir = join(tmp.path, "with-login");
    const r = await script("install-alerts.sh", [], { COOP_ALERT_DIR: dir, COOP_ALERT_SMTP_URL: "smtps://mail.social.coop.test:465", COOP_ALERT_SMTP_STARTTLS: "yes", COOP_ALERT_SMTP_LOGIN: "alerts", COOP_ALERT_SMTP_PASSWORD: SMTP_PASSWORD });
    expect(r.code, r.stderr).toBe(0);
    expect((statSync(join(dir, "smtp.curl")).mode & 0o777).toString(8)).toBe("600");
    expect(readFileSync(join(dir, "smtp.curl"), "utf8")).toBe(`user = "alerts:${SMTP_PASSWORD}"\n`);
    expect(readFileSync(join(dir, "alert.env"), "utf8")).not.toContain(SMTP_PASSWORD);
  });

  it("a summary of several lines becomes one Subject line; the whole text is in the body", async () => {
    const before = smtp.messages.length;
    const r = await script("alert.sh", ["send", "drill-failed", "restore drill failed: restore: pgBackRest restore failed:\nERROR: [039]: line two\nBcc: someone@else.test"], {}, "details\n");
    expect(r.code, r.stderr).toBe(0);
    const mail = smtp.messages[before].data;
    const [head] = mail.split("\r\n\r\n");
    expect(head.split("\r\n").filter((l) => l.startsWith("Subject: "))).toEqual(["Subject: [wal] wal-secondary.test: restore drill failed: restore: pgBackRest restore failed: ERROR: [039]: line two Bcc: someone@else.test"]);
    expect(head).not.toMatch(/^Bcc:/m);
    expect(smtp.messages[before].to).toEqual(["ops@social.coop.test", "second@social.coop.test"]);
  });

  it("replacing the install (new triggers): the old install's delete leaves the new one's destinations in place", async () => {
    const dir = join(tmp.path, "replaced");
    const units = join(tmp.path, "replaced-units");
    mkdirSync(units, { recursive: true });
    const at = { COOP_ALERT_DIR: dir, COOP_SYSTEMD_DIR: units };
    expect((await script("install-alerts.sh", [], { ...at, COOP_INSTALL_ID: "old-install" })).code).toBe(0);
    // The engine creates the replacement first, then deletes what it replaces.
    expect((await script("install-alerts.sh", [], { ...at, COOP_INSTALL_ID: "new-install" })).code).toBe(0);
    const old = await script("install-alerts.sh", ["--uninstall"], { ...at, COOP_INSTALL_ID: "old-install" });
    expect(old.code, old.stderr).toBe(0);
    expect(old.stderr).toContain("a newer install (new-install) replaced old-install: nothing to remove");
    for (const f of ["alert.env", "webhook.curl"]) expect(existsSync(join(dir, f)), f).toBe(true);
    expect(existsSync(join(units, "coop-check.timer"))).toBe(true);
    // Removing the component itself (its own ID) does remove them.
    const gone = await script("install-alerts.sh", ["--uninstall"], { ...at, COOP_INSTALL_ID: "new-install" });
    expect(gone.code, gone.stderr).toBe(0);
    for (const f of ["alert.env", "webhook.curl", "install.id"]) expect(existsSync(join(dir, f)), f).toBe(false);
  });

  it("--uninstall removes the destinations; alerts then only reach the journal", async () => {
    const r = await script("install-alerts.sh", ["--uninstall"]);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ["alert.env", "webhook.curl", "smtp.curl"]) expect(existsSync(join(alertDir(), f)), f).toBe(false);
    for (const u of ["coop-check.service", "coop-check.timer", "certbot.service.d/coop-alert.conf"]) expect(existsSync(join(tmp.path, "systemd", u)), u).toBe(false);
    // Kept: the backup units still name it.
    expect(existsSync(join(tmp.path, "systemd", "coop-alert@.service"))).toBe(true);
    const before = smtp.messages.length;
    const a = await script("alert.sh", ["send", "after-uninstall", "something"], {}, "");
    expect(a.code).toBe(0);
    expect(a.stderr).toContain("no alert destination is configured");
    expect(smtp.messages).toHaveLength(before);
  });
});
