// The instance's own secrets as deploy-app.sh makes them on the host (scripts/lib/app-site.sh): every
// one present, the VAPID pair a real P-256 key pair in Mastodon's encoding, and a file that already has
// some (restored, or from an older deploy) keeps them and gains only what it lacks.
import { createECDH } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempDir, run, type TempDir } from "../../src/local";

const LIB = resolve(__dirname, "../../scripts/lib");
let tmp: TempDir;
beforeEach(() => {
  tmp = makeTempDir("app-secrets");
});
afterEach(() => tmp.remove());

/** render_instance_env for `file`, as deploy-app.sh calls it (after its mail_env_check). */
async function render(file: string, env: Record<string, string> = {}): Promise<string> {
  const r = await run("bash", ["-c", `set -euo pipefail; source "${LIB}/common.sh"; source "${LIB}/app-site.sh"; mail_env_check; render_instance_env social.coop.test "$1"`, "render", file], { env });
  return r.stdout;
}

/** A key's last value wins, as in Ruby's dotenv (Mastodon) and node's (its streaming server). */
function parse(env: string): Record<string, string> {
  return Object.fromEntries(env.split("\n").filter((l) => /^[A-Z][A-Z0-9_]*=/.test(l)).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
}

/** Ruby's Base64.urlsafe_decode64, which Mastodon's web push uses. */
const fromB64url = (s: string) => Buffer.from(s.replace(/-/g, "+").replace(/_/g, "/"), "base64");

describe("the instance's own secrets", () => {
  it("a new .env.production has every secret, and the VAPID keys are a P-256 pair as Mastodon encodes it", async () => {
    const env = parse(await render(join(tmp.path, "absent")));
    expect(env.LOCAL_DOMAIN).toBe("social.coop.test");
    expect(env.SECRET_KEY_BASE).toMatch(/^[0-9a-f]{128}$/);
    expect(env.OTP_SECRET).toMatch(/^[0-9a-f]{128}$/);
    for (const k of ["ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY", "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT", "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"]) {
      expect(env[k], k).toMatch(/^[A-Za-z0-9]{20,}$/);
    }
    // URL-safe base64 with padding: 44 characters for the 32-byte scalar, 88 for the 65-byte point.
    expect(env.VAPID_PRIVATE_KEY).toMatch(/^[A-Za-z0-9_-]{43}=$/);
    expect(env.VAPID_PUBLIC_KEY).toMatch(/^[A-Za-z0-9_-]{87}=$/);
    const priv = fromB64url(env.VAPID_PRIVATE_KEY);
    const pub = fromB64url(env.VAPID_PUBLIC_KEY);
    expect(priv.length).toBe(32);
    expect(pub[0]).toBe(0x04);
    // The public key is the private scalar times the curve's generator: the pair belongs together.
    const ecdh = createECDH("prime256v1");
    ecdh.setPrivateKey(priv);
    expect(ecdh.getPublicKey().equals(pub)).toBe(true);
  });

  it("two instances never share a secret", async () => {
    const a = parse(await render(join(tmp.path, "a")));
    const b = parse(await render(join(tmp.path, "b")));
    const secrets = Object.keys(a).filter((k) => /^(SECRET_KEY_BASE|OTP_SECRET|ACTIVE_RECORD_ENCRYPTION_|VAPID_)/.test(k));
    expect(secrets).toHaveLength(7);
    for (const k of secrets) expect(a[k], k).not.toBe(b[k]);
  });

  it("a file from an older deploy keeps its secrets and gains only the VAPID pair; a complete one is unchanged", async () => {
    const older = join(tmp.path, ".env.production");
    const full = await render(join(tmp.path, "absent"));
    writeFileSync(older, full.split("\n").filter((l) => !l.startsWith("VAPID_")).join("\n"));
    const kept = parse(readFileSync(older, "utf8"));
    const upgraded = await render(older);
    const env = parse(upgraded);
    for (const [k, v] of Object.entries(kept)) expect(env[k], k).toBe(v);
    expect(Object.keys(env).filter((k) => !(k in kept)).sort()).toEqual(["VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"]);
    writeFileSync(older, upgraded);
    expect(await render(older)).toBe(upgraded);
  });

  it("a half VAPID pair is replaced by a whole new one, never duplicated", async () => {
    const half = join(tmp.path, ".env.production");
    const full = parse(await render(join(tmp.path, "absent")));
    writeFileSync(half, Object.entries(full).filter(([k]) => k !== "VAPID_PUBLIC_KEY").map(([k, v]) => `${k}=${v}`).join("\n") + "\n");
    const out = await render(half);
    expect(out.split("\n").filter((l) => l.startsWith("VAPID_PRIVATE_KEY=")).length).toBe(1);
    const env = parse(out);
    expect(env.VAPID_PRIVATE_KEY).not.toBe(full.VAPID_PRIVATE_KEY);
    const ecdh = createECDH("prime256v1");
    ecdh.setPrivateKey(fromB64url(env.VAPID_PRIVATE_KEY));
    expect(ecdh.getPublicKey().equals(fromB64url(env.VAPID_PUBLIC_KEY))).toBe(true);
    expect(env.SECRET_KEY_BASE).toBe(full.SECRET_KEY_BASE);
  });

  it("the stack's settings are the file's last block: the database over its socket, Redis on loopback, over an imported file's own values", async () => {
    const imported = join(tmp.path, ".env.production");
    const own = parse(await render(join(tmp.path, "absent")));
    // An instance brought in from elsewhere: its own database settings, a password, an S3 media setting.
    writeFileSync(imported, [...Object.entries(own).filter(([k]) => !k.startsWith("DB_") && !k.startsWith("REDIS_") && k !== "LOCAL_DOMAIN").map(([k, v]) => `${k}=${v}`),
      "LOCAL_DOMAIN=social.coop.test", "DB_HOST=localhost", "DB_PASS=old-password", "DATABASE_URL=postgres://old.host/db", "REDIS_URL=redis://old.host:6379", "S3_ENABLED=true", ""].join("\n"));
    const out = await render(imported);
    const env = parse(out);
    expect(env).toMatchObject({ DB_HOST: "/var/run/postgresql", DB_PORT: "5432", DB_NAME: "mastodon_production", DB_USER: "mastodon", DB_PASS: "", REDIS_HOST: "127.0.0.1", LOCAL_DOMAIN: "social.coop.test", S3_ENABLED: "true" });
    expect(env.SECRET_KEY_BASE).toBe(own.SECRET_KEY_BASE);
    // Mastodon would prefer these to DB_* and REDIS_*: they go.
    expect(env.DATABASE_URL).toBeUndefined();
    expect(env.REDIS_URL).toBeUndefined();
    const lines = out.trimEnd().split("\n");
    expect(lines[lines.length - 1]).toBe("# END settings from the stack config");
    // Rendered again: the block is replaced, never repeated; the file is otherwise unchanged.
    writeFileSync(imported, out);
    const again = await render(imported);
    expect(again).toBe(out);
    expect(again.split("\n").filter((l) => l.startsWith("# BEGIN settings from the stack config"))).toHaveLength(1);
    // A hand edit lost the END line, with a setting of its own after the block: nothing is dropped.
    writeFileSync(imported, `${out.replace("# END settings from the stack config\n", "")}S3_BUCKET=kept\n`);
    const healed = await render(imported);
    expect(parse(healed)).toMatchObject({ S3_BUCKET: "kept", S3_ENABLED: "true", SECRET_KEY_BASE: own.SECRET_KEY_BASE });
    expect(healed.split("\n").filter((l) => l.startsWith("# END settings from the stack config"))).toHaveLength(1);
  });

  it("the stack's mail goes in the block as Mastodon's SMTP_* for each kind of server, the password single-quoted; bad settings are refused", async () => {
    const file = join(tmp.path, "absent");
    const MAIL = { COOP_MAIL_FROM: "notifications@social.coop.test" };
    const tls = parse(await render(file, { ...MAIL, COOP_MAIL_SMTP_URL: "smtps://smtp.example.org", COOP_MAIL_SMTP_LOGIN: "n@social.coop.test", COOP_MAIL_SMTP_PASSWORD: "p a#ss$word" }));
    // Single-quoted where dotenv would otherwise cut at `#` or expand `$`: the login, sender and password.
    expect(tls).toMatchObject({ SMTP_SERVER: "smtp.example.org", SMTP_PORT: "465", SMTP_TLS: "true", SMTP_ENABLE_STARTTLS: "never", SMTP_AUTH_METHOD: "plain", SMTP_LOGIN: "'n@social.coop.test'", SMTP_PASSWORD: "'p a#ss$word'", SMTP_FROM_ADDRESS: `'${MAIL.COOP_MAIL_FROM}'`, SMTP_DELIVERY_METHOD: "smtp" });
    const starttls = parse(await render(file, { ...MAIL, COOP_MAIL_SMTP_URL: "smtp://smtp.example.org:2587", COOP_MAIL_SMTP_LOGIN: "n", COOP_MAIL_SMTP_PASSWORD: "secret-pw" }));
    expect(starttls).toMatchObject({ SMTP_PORT: "2587", SMTP_ENABLE_STARTTLS: "always" });
    expect(starttls.SMTP_TLS).toBeUndefined();
    const relay = parse(await render(file, { ...MAIL, COOP_MAIL_SMTP_URL: "smtp://10.0.0.1:2525", COOP_MAIL_SMTP_START_TLS: "false" }));
    expect(relay).toMatchObject({ SMTP_SERVER: "10.0.0.1", SMTP_PORT: "2525", SMTP_ENABLE_STARTTLS: "never", SMTP_AUTH_METHOD: "none" });
    expect(relay.SMTP_LOGIN).toBeUndefined();
    expect(Object.keys(parse(await render(file))).filter((k) => k.startsWith("SMTP_"))).toEqual([]);
    // An older hand-written setup above the block (port 465, a login): with the stack's mail it goes whole,
    // or SMTP_TLS=true would sit beside STARTTLS and the old login beside a relay that takes none.
    const handWritten = join(tmp.path, ".env.production");
    writeFileSync(handWritten, `${await render(file)}\nSMTP_TLS=true\nSMTP_LOGIN=old\nSMTP_PASSWORD=old-password\nSMTP_SERVER=old.example.org\n`);
    const r = await run("bash", ["-c", `set -euo pipefail; source "${LIB}/common.sh"; source "${LIB}/app-site.sh"; mail_env_check; render_instance_env social.coop.test "$1"`, "render", handWritten], { env: { ...MAIL, COOP_MAIL_SMTP_URL: "smtp://10.0.0.1:2525", COOP_MAIL_SMTP_START_TLS: "false" } });
    const mixed = r.stdout.split("\n").filter((l) => l.startsWith("SMTP_"));
    expect(mixed).toEqual(["SMTP_SERVER=10.0.0.1", "SMTP_PORT=2525", `SMTP_FROM_ADDRESS='${MAIL.COOP_MAIL_FROM}'`, "SMTP_DELIVERY_METHOD=smtp", "SMTP_ENABLE_STARTTLS=never", "SMTP_AUTH_METHOD=none"]);
    expect(r.stderr).toContain("SMTP_PASSWORD dropped from .env.production");
    expect(r.stderr).not.toContain("old-password");
    // Without the stack's mail, hand-written lines stand.
    expect(parse(await render(handWritten))).toMatchObject({ SMTP_TLS: "true", SMTP_SERVER: "old.example.org" });
    const refused: [Record<string, string>, RegExp][] = [
      [{ ...MAIL, COOP_MAIL_SMTP_URL: "smtp.example.org" }, /must be smtps:\/\/host\[:port\]/],
      [{ COOP_MAIL_SMTP_URL: "smtps://smtp.example.org" }, /COOP_MAIL_FROM/],
      [{ ...MAIL, COOP_MAIL_SMTP_URL: "smtps://smtp.example.org", COOP_MAIL_SMTP_LOGIN: "n" }, /COOP_MAIL_SMTP_PASSWORD is empty/],
      [{ ...MAIL, COOP_MAIL_SMTP_URL: "smtps://smtp.example.org", COOP_MAIL_SMTP_LOGIN: "n", COOP_MAIL_SMTP_PASSWORD: "it's-a-secret-pw" }, /single quote/],
      [{ ...MAIL, COOP_MAIL_SMTP_URL: "smtps://smtp.example.org", COOP_MAIL_SMTP_LOGIN: "n", COOP_MAIL_SMTP_PASSWORD: "secret-pw\r" }, /line break/],
      [{ ...MAIL, COOP_MAIL_SMTP_URL: "smtp://smtp.example.org", COOP_MAIL_SMTP_START_TLS: "false", COOP_MAIL_SMTP_LOGIN: "n", COOP_MAIL_SMTP_PASSWORD: "secret-pw" }, /in clear/],
    ];
    for (const [env, message] of refused) {
      const r = await run("bash", ["-c", `set -euo pipefail; source "${LIB}/common.sh"; source "${LIB}/app-site.sh"; mail_env_check`], { env, allowFailure: true });
      expect(r.code, JSON.stringify(env)).not.toBe(0);
      expect(r.stderr).toMatch(message);
      if (env.COOP_MAIL_SMTP_PASSWORD) expect(r.stderr).not.toContain(env.COOP_MAIL_SMTP_PASSWORD.trim());
    }
  });
});
