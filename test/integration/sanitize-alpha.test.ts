// sanitize-alpha.sh on a Mastodon-shaped copy of "prod" (real PostgreSQL 15, Redis, nftables in network
// namespaces of the test's own): nothing that could act as prod survives, the members' data does, the
// app's user reaches no "fediverse" host while root still can, the guard refuses prod's files, a re-run
// changes nothing, and kills at random moments (inside the key staging too) converge to the same result.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SCRIPTS_DIR } from "../../src/local/backup-rig";
import { startPostgres, type PostgresServer } from "../../src/local/postgres";
import { startRedis, type RedisServer } from "../../src/local/redis";
import { run } from "../../src/local/run";
import { ensureUser, type SystemUser } from "../../src/local/users";
import { generate } from "../fixtures/mastodon/generator";
import { startFediverseHost, type FediverseHost } from "../support/fediverse-host";
import { BASE_SEED, killPlan, runGroup, type GroupRun } from "./backup/random-kills";
import { TABLE_DIGESTS_SQL } from "./backup/rig-support";

const ALPHA = "alpha.social.coop";
const suffix = randomBytes(3).toString("hex");
const ALPHA_NS = `coop-alpha-${suffix}`;
const FEDI_NS = `coop-fedi-${suffix}`;
const ALPHA_ADDR = "10.231.12.1";
const FEDI_ADDR = "10.231.12.2";
const PROD_SECRET = `SECRET_KEY_BASE=${"ab".repeat(64)}`;
const PROD_ENV = [
  "LOCAL_DOMAIN=social.coop",
  PROD_SECRET,
  `OTP_SECRET=${"cd".repeat(64)}`,
  "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=prodprimarykey",
  "ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY=proddeterministic",
  "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT=prodsalt",
  "VAPID_PRIVATE_KEY=prodvapidprivate",
  "VAPID_PUBLIC_KEY=prodvapidpublic",
  "SMTP_SERVER=smtp.example.org",
  "SMTP_LOGIN=notifications@social.coop",
  "SMTP_PASSWORD=prodsmtppassword",
  "S3_ENABLED=true",
  "AWS_ACCESS_KEY_ID=prodaccesskey",
  "AWS_SECRET_ACCESS_KEY=prodsecretkey",
  "REDIS_HOST=127.0.0.1",
  "",
].join("\n");
/** Tables whose rows are the members' own and must come through unchanged. */
const KEPT_TABLES = ["statuses", "follows", "favourites", "media_attachments", "bookmarks", "blocks", "mutes", "follow_requests", "polls", "reports"];

let dir: string;
let pg: PostgresServer;
let redis: RedisServer;
let app: SystemUser;
let fediverse: FediverseHost | undefined;
let template: string;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

function sql(db: string, query: string): Promise<string> {
  return pg.psql(query, { db });
}

/** A fresh "prod" to sanitize: the generated database copied, prod's .env.production, a queue in Redis. */
async function freshProd(name: string): Promise<{ db: string; env: Record<string, string> }> {
  const db = `alpha_${name}`;
  await pg.psql(`drop database if exists ${db}`);
  await pg.psql(`create database ${db} template ${template}`);
  const root = join(dir, name);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(join(root, "systemd"), { recursive: true });
  const envFile = join(root, ".env.production");
  writeFileSync(envFile, PROD_ENV, { mode: 0o600 });
  chownSync(envFile, app.uid, app.gid);
  await redis.cli(["FLUSHALL"]);
  await redis.cli(["LPUSH", "queue:push", '{"class":"ActivityPub::DeliveryWorker","args":["{}",1,"https://remote.example/inbox"]}']);
  await redis.cli(["SADD", "queues", "push"]);
  // What the restore brings back from prod's /etc/letsencrypt: its certificate, account and DNS token.
  const le = join(root, "letsencrypt");
  for (const d of ["live/social.coop", "archive/social.coop", "renewal", "accounts/acme-v02.api.letsencrypt.org/directory/prodaccount"]) mkdirSync(join(le, d), { recursive: true });
  writeFileSync(join(le, "live", "social.coop", "privkey.pem"), "-----BEGIN PRIVATE KEY-----\nprodtlskey\n-----END PRIVATE KEY-----\n", { mode: 0o600 });
  writeFileSync(join(le, "renewal", "social.coop.conf"), "[renewalparams]\nauthenticator = dns-cloudflare\n");
  writeFileSync(join(le, "coop-cloudflare.ini"), "dns_cloudflare_api_token = prodcloudflaretoken\n", { mode: 0o600 });
  return {
    db,
    env: {
      COOP_ALPHA_DOMAIN: ALPHA,
      COOP_STATE_DIR: join(root, "state"),
      COOP_PG_OS_USER: pg.osUser,
      COOP_PG_BIN: pg.binDir,
      COOP_PG_SOCKET: pg.socketDir,
      COOP_PG_PORT: String(pg.port),
      COOP_DB_NAME: db,
      COOP_APP_USER: app.name,
      COOP_ENV_FILE: envFile,
      COOP_REDIS_PORT: String(redis.port),
      COOP_SYSTEMD_DIR: join(root, "systemd"),
      COOP_ALPHA_GUARD: join(root, "coop-alpha-guard"),
      COOP_ALPHA_NFT_FILE: join(root, "alpha-egress.nft"),
      COOP_ALPHA_NFT: `ip netns exec ${ALPHA_NS} nft`,
      COOP_LETSENCRYPT_DIR: le,
      // Small batches, so that the random kills land inside the staging as well as between batches.
      COOP_ALPHA_KEY_BATCH: "4",
    },
  };
}

function sanitize(env: Record<string, string>, extra: Record<string, string> = {}) {
  return run("bash", [join(SCRIPTS_DIR, "sanitize-alpha.sh")], { env: { ...env, ...extra }, allowFailure: true, timeoutMs: 600_000 });
}

/** Local accounts' private keys as digests, so a test can tell prod's from alpha's without printing either. */
function localKeyDigests(db: string): Promise<string> {
  return sql(db, "select string_agg(id || ':' || md5(coalesce(private_key, '')), ',' order by id) from accounts where domain is null");
}

/** Counts of what sanitizing must remove: each must be 0 after. */
const LEFT_SQL = `select json_build_object(
  'oauth_access_tokens', (select count(*) from oauth_access_tokens), 'oauth_access_grants', (select count(*) from oauth_access_grants),
  'session_activations', (select count(*) from session_activations), 'web_push_subscriptions', (select count(*) from web_push_subscriptions),
  'webauthn_credentials', (select count(*) from webauthn_credentials), 'identities', (select count(*) from identities),
  'login_activities', (select count(*) from login_activities), 'active_webhooks', (select count(*) from webhooks where enabled),
  'relays', (select count(*) from relays), 'scheduled_statuses', (select count(*) from scheduled_statuses), 'users_with_otp', (select count(*) from users where otp_required_for_login),
  'open_registrations', (select count(*) from settings where var = 'registrations_mode' and value <> E'--- none\\n'))`;

/** The members' own tables, digested, to prove they come through unchanged. */
function keptDigests(db: string): Promise<string> {
  return sql(db, KEPT_TABLES.map((t) => `select '${t}', md5(coalesce(string_agg(x::text, ',' order by x::text), '')) from ${t} x`).join(" union all "));
}

/** Tries a TCP connection from the alpha namespace as `user`; true when it connected. */
function connectsAs(user: string, port: number): boolean {
  try {
    sh("ip", ["netns", "exec", ALPHA_NS, "runuser", "-u", user, "--", "timeout", "3", "bash", "-c", `exec 3<>/dev/tcp/${FEDI_ADDR}/${port}`]);
    return true;
  } catch {
    return false;
  }
}

/** The connections the fediverse host saw, once those under way have been reported (its listener is another process). */
async function connectionsSeen(): Promise<number> {
  await new Promise((r) => setTimeout(r, 500));
  return fediverse?.connections.length ?? 0;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "coop-alpha-"));
  app = await ensureUser("coop-alpha-app");
  pg = await startPostgres();
  redis = await startRedis();
  template = "alpha_prod";
  await pg.psql(`create database ${template}`);
  await generate({ target: { host: pg.host, port: pg.port, db: template }, size: "30MB", seed: 12 });
  // The two "hosts": alpha, and a fediverse server listening on 80 and 443 that records every connection
  // (test/support/fediverse-host.ts, the one the whole-stack test uses).
  sh("ip", ["netns", "add", ALPHA_NS]);
  sh("ip", ["netns", "add", FEDI_NS]);
  sh("ip", ["link", "add", `ca${suffix}`, "netns", ALPHA_NS, "type", "veth", "peer", "name", `cf${suffix}`, "netns", FEDI_NS]);
  for (const [ns, dev, addr] of [[ALPHA_NS, `ca${suffix}`, ALPHA_ADDR], [FEDI_NS, `cf${suffix}`, FEDI_ADDR]]) {
    sh("ip", ["-n", ns, "addr", "add", `${addr}/24`, "dev", dev]);
    sh("ip", ["-n", ns, "link", "set", dev, "up"]);
    sh("ip", ["-n", ns, "link", "set", "lo", "up"]);
  }
  fediverse = await startFediverseHost(FEDI_NS, FEDI_ADDR);
}, 300_000);

afterAll(async () => {
  fediverse?.stop();
  for (const ns of [ALPHA_NS, FEDI_NS]) {
    try {
      sh("ip", ["netns", "del", ns]);
    } catch {
      // Not made (setup failed early).
    }
  }
  await redis?.stop();
  await pg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("sanitize-alpha.sh", () => {
  let prod: Awaited<ReturnType<typeof freshProd>>;
  let before: { keys: string; kept: string };

  it("refuses a database that is not Mastodon's before changing anything", async () => {
    const p = await freshProd("refuse");
    await sql(p.db, "drop table relays");
    const r = await sanitize(p.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("lacks relays");
    expect(readFileSync(p.env.COOP_ENV_FILE, "utf8")).toBe(PROD_ENV);
    expect(await redis.cli(["DBSIZE"])).not.toBe("0");
  });

  it("leaves nothing that could act as prod, keeps the members' data, and records success", async () => {
    prod = await freshProd("main");
    before = { keys: await localKeyDigests(prod.db), kept: await keptDigests(prod.db) };
    const left = JSON.parse(await sql(prod.db, LEFT_SQL)) as Record<string, number>;
    // The fixture holds what must go, or the checks below would prove nothing.
    for (const name of ["oauth_access_tokens", "session_activations", "web_push_subscriptions", "active_webhooks", "relays", "identities", "scheduled_statuses"]) expect(left[name], name).toBeGreaterThan(0);
    const started = Date.now();
    const r = await sanitize(prod.env);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    console.log(`sanitize-alpha.sh on the 30MB fixture: ${Date.now() - started} ms`);

    expect(JSON.parse(await sql(prod.db, LEFT_SQL))).toEqual(Object.fromEntries(Object.keys(left).map((k) => [k, 0])));
    // prod's certificate, ACME account and Cloudflare token are gone (the deploy gets alpha's own).
    const le = prod.env.COOP_LETSENCRYPT_DIR;
    for (const gone of ["live", "archive", "renewal", "accounts", "coop-cloudflare.ini"]) expect(existsSync(join(le, gone)), `${gone} left in letsencrypt`).toBe(false);
    const after = await localKeyDigests(prod.db);
    const was = new Map(before.keys.split(",").map((e) => e.split(":") as [string, string]));
    for (const [id, digest] of after.split(",").map((e) => e.split(":"))) expect(digest, `account ${id} kept prod's key`).not.toBe(was.get(id));
    expect(after.split(",").length).toBe(was.size);
    // A real RSA pair whose public half matches its private half (PKCS#1 / SPKI PEM, as Mastodon makes them).
    const [priv, pub] = (await sql(prod.db, "select private_key || '|' || public_key from accounts where domain is null order by id limit 1")).split("|");
    expect(priv).toContain("BEGIN RSA PRIVATE KEY");
    const derived = execFileSync("openssl", ["rsa", "-pubout"], { input: priv, encoding: "utf8", stdio: ["pipe", "pipe", "ignore"] });
    expect(derived.trim()).toBe(pub.trim());
    expect(await sql(prod.db, "select count(*) from oauth_applications where secret ~ '^[0-9a-f]{64}$'")).toBe(await sql(prod.db, "select count(*) from oauth_applications"));
    expect(await keptDigests(prod.db)).toBe(before.kept);
    expect(await redis.cli(["DBSIZE"])).toBe("0");

    const env = readFileSync(prod.env.COOP_ENV_FILE, "utf8");
    expect(env).toMatch(new RegExp(`^LOCAL_DOMAIN=${ALPHA}$`, "m"));
    expect(env).toMatch(/^LIMITED_FEDERATION_MODE=true$/m);
    expect(env).toMatch(/^SMTP_DELIVERY_METHOD=file$/m);
    expect(env).toMatch(/^ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=prodprimarykey$/m);
    // Booleans, so that a failure names what is left without printing the file's new secrets.
    expect(/=social\.coop$/m.test(env), "prod's domain left in .env.production").toBe(false);
    for (const gone of [PROD_SECRET, "prodsmtppassword", "smtp.example.org", "prodaccesskey", "prodsecretkey", "prodvapid", "S3_ENABLED=true"]) expect(env.includes(gone), `${gone} left in .env.production`).toBe(false);
    // A P-256 point: 65 bytes, 87 URL-safe base64 characters and one pad.
    expect(/^VAPID_PUBLIC_KEY=[A-Za-z0-9_-]{87}=$/m.test(env), "a new VAPID public key").toBe(true);
    // No secret in the script's own output.
    for (const secret of [PROD_SECRET.split("=")[1], env.match(/^SECRET_KEY_BASE=(.*)$/m)?.[1] ?? "x"]) expect(r.stderr + r.stdout).not.toContain(secret);
    const unit = readFileSync(join(prod.env.COOP_SYSTEMD_DIR, "mastodon-sidekiq.service.d", "coop-alpha-guard.conf"), "utf8");
    expect(unit).toContain(`ExecStartPre=+${prod.env.COOP_ALPHA_GUARD}`);
  }, 600_000);

  it("the app's user reaches no fediverse host (refused and counted), root and DNS still get out", async () => {
    const seen = await connectionsSeen();
    expect(connectsAs(app.name, 443)).toBe(false);
    expect(connectsAs(app.name, 80)).toBe(false);
    expect(await connectionsSeen(), "the fediverse host saw a connection from the app's user").toBe(seen);
    const counter = sh("ip", ["netns", "exec", ALPHA_NS, "nft", "list", "counter", "inet", "coop_alpha_egress", "refused"]);
    expect(Number(/packets (\d+)/.exec(counter)?.[1])).toBeGreaterThanOrEqual(2);
    expect(connectsAs("root", 443)).toBe(true);
    expect(await connectionsSeen()).toBe(seen + 1);
    // UDP to port 53 leaves (resolution), UDP elsewhere does not.
    const udp = (port: number) =>
      run("ip", ["netns", "exec", ALPHA_NS, "runuser", "-u", app.name, "--", "python3", "-c", `import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"x", ("${FEDI_ADDR}", ${port}))`], { allowFailure: true });
    expect((await udp(53)).code).toBe(0);
    expect((await udp(9999)).code).not.toBe(0);
  });

  it("connections from outside to alpha's services (sshd, nginx, and the app's own) are never reset by the egress table", async () => {
    // Listeners in alpha's namespace, one as root and one as the app's user; 40 connections to each.
    const serve = "import socket,sys\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(64)\nwhile True:\n  c,_=s.accept(); c.sendall(b'hi'); c.close()";
    const servers = [
      spawn("ip", ["netns", "exec", ALPHA_NS, "python3", "-c", serve, "8022"], { stdio: "ignore" }),
      spawn("ip", ["netns", "exec", ALPHA_NS, "runuser", "-u", app.name, "--", "python3", "-c", serve, "8023"], { stdio: "ignore" }),
    ];
    try {
      await new Promise((r) => setTimeout(r, 500));
      for (const port of [8022, 8023]) {
        const loop = `ok=0; for i in $(seq 40); do out=$(timeout 3 bash -c 'exec 3<>/dev/tcp/${ALPHA_ADDR}/${port}; cat <&3') && [ "$out" = hi ] && ok=$((ok+1)); done; echo $ok`;
        expect(sh("ip", ["netns", "exec", FEDI_NS, "bash", "-c", loop]).trim(), `connections to port ${port} that got their answer`).toBe("40");
      }
    } finally {
      for (const p of servers) p.kill("SIGKILL");
    }
  });

  it("the guard refuses prod's .env.production and a database without the record; a re-run changes nothing", async () => {
    const guard = () => run("bash", [prod.env.COOP_ALPHA_GUARD], { allowFailure: true });
    expect((await guard()).code).toBe(0);
    const envFile = prod.env.COOP_ENV_FILE;
    const alphaEnv = readFileSync(envFile, "utf8");
    copyFileSync(envFile, `${envFile}.alpha`);
    writeFileSync(envFile, PROD_ENV);
    const refused = await guard();
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("is not the one the database was sanitized with");
    writeFileSync(envFile, alphaEnv);
    const digests = await sql(prod.db, TABLE_DIGESTS_SQL);
    await redis.cli(["SET", "alpha:own", "1"]);
    const again = await sanitize(prod.env);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain("nothing to do");
    expect(await sql(prod.db, TABLE_DIGESTS_SQL)).toBe(digests);
    expect(readFileSync(envFile, "utf8")).toBe(alphaEnv);
    expect(await redis.cli(["DBSIZE"]), "a re-run emptied alpha's own Redis").toBe("1");
    await sql(prod.db, "drop schema coop_alpha cascade");
    const noRecord = await guard();
    expect(noRecord.code).toBe(1);
    expect(noRecord.stderr).toContain("no sanitized record");
  });

  it("killed at random moments (inside the key staging too), each re-run converges to the same safe copy", async () => {
    const p = await freshProd("whole");
    const keysBefore = await localKeyDigests(p.db);
    const kept = await keptDigests(p.db);
    const plan = killPlan("sanitize-alpha.sh");
    const first = await runGroup("sanitize-alpha.sh", p.env, { boundMs: 300_000 });
    expect(first.code, first.output.slice(-2000)).toBe(0);
    const fullMs = first.ms;
    // Another copy of prod, then runs killed at random moments until one finishes.
    const k = await freshProd("kills");
    const outcomes: string[] = [];
    let last: GroupRun | undefined;
    for (let i = 0; i < 12; i++) {
      const at = plan.next(fullMs);
      last = await runGroup("sanitize-alpha.sh", k.env, { boundMs: 300_000, killAtMs: at });
      const where = last.output.trimEnd().split("\n").filter((l) => l.includes(" step ")).pop() ?? "";
      outcomes.push(`${last.killed ? "killed" : `exit ${last.code}`} at ${at} ms: ${where}`);
      if (!last.killed) break;
      expect(last.timedOut, `run ${i + 1} hung (replay with COOP_KILL_SEED=${BASE_SEED})`).toBe(false);
    }
    console.log(`sanitize-alpha.sh: full run ${fullMs} ms (seed ${plan.seed})\n${outcomes.join("\n")}`);
    if (last?.killed) {
      last = await runGroup("sanitize-alpha.sh", k.env, { boundMs: 300_000 });
    }
    expect(last?.code, `${last?.output.slice(-3000)} (replay with COOP_KILL_SEED=${BASE_SEED})`).toBe(0);
    const left = JSON.parse(await sql(k.db, LEFT_SQL)) as Record<string, number>;
    expect(left).toEqual(Object.fromEntries(Object.keys(left).map((name) => [name, 0])));
    const was = new Map(keysBefore.split(",").map((e) => e.split(":") as [string, string]));
    for (const [id, digest] of (await localKeyDigests(k.db)).split(",").map((e) => e.split(":"))) expect(digest, `account ${id} kept prod's key`).not.toBe(was.get(id));
    expect(await keptDigests(k.db)).toBe(kept);
    expect(await sql(k.db, "select to_regclass('coop_alpha.new_keys') is null")).toBe("t");
    expect(existsSync(join(k.env.COOP_STATE_DIR, "sanitize-alpha.state"))).toBe(false);
    expect((await run("bash", [k.env.COOP_ALPHA_GUARD], { allowFailure: true })).code).toBe(0);
  }, 900_000);
});
