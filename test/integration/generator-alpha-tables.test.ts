// The Mastodon-shaped generator's tables that a sanitizer of a restored copy of prod ("alpha") must clean:
// at the 10MB preset each is filled, every reference resolves, tokens, sessions and push subscriptions agree
// on their user, local accounts hold distinct keys, and a seed always gives the same rows.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type PostgresServer } from "../../src/local";
import { generate, SANITIZABLE_TABLES, type MastodonTable, type PsqlTarget } from "../fixtures/mastodon/generator";

const SEED = 21;

/** child.column → parent.id; `filled`: the fixture must have rows where the column is set. */
const REFERENCES: ReadonlyArray<{ child: MastodonTable; column: string; parent: MastodonTable; filled: boolean }> = [
  { child: "oauth_applications", column: "owner_id", parent: "users", filled: true },
  { child: "oauth_access_tokens", column: "application_id", parent: "oauth_applications", filled: true },
  { child: "oauth_access_tokens", column: "resource_owner_id", parent: "users", filled: true },
  { child: "oauth_access_grants", column: "application_id", parent: "oauth_applications", filled: true },
  { child: "oauth_access_grants", column: "resource_owner_id", parent: "users", filled: true },
  { child: "web_push_subscriptions", column: "access_token_id", parent: "oauth_access_tokens", filled: true },
  { child: "web_push_subscriptions", column: "user_id", parent: "users", filled: true },
  { child: "session_activations", column: "access_token_id", parent: "oauth_access_tokens", filled: true },
  { child: "session_activations", column: "user_id", parent: "users", filled: true },
  { child: "session_activations", column: "web_push_subscription_id", parent: "web_push_subscriptions", filled: true },
  { child: "webauthn_credentials", column: "user_id", parent: "users", filled: true },
  { child: "identities", column: "user_id", parent: "users", filled: true },
  { child: "login_activities", column: "user_id", parent: "users", filled: true },
  { child: "scheduled_statuses", column: "account_id", parent: "accounts", filled: true },
  { child: "follow_requests", column: "account_id", parent: "accounts", filled: true },
  { child: "follow_requests", column: "target_account_id", parent: "accounts", filled: true },
  { child: "blocks", column: "account_id", parent: "accounts", filled: true },
  { child: "blocks", column: "target_account_id", parent: "accounts", filled: true },
  { child: "mutes", column: "account_id", parent: "accounts", filled: true },
  { child: "mutes", column: "target_account_id", parent: "accounts", filled: true },
  { child: "bookmarks", column: "account_id", parent: "accounts", filled: true },
  { child: "bookmarks", column: "status_id", parent: "statuses", filled: true },
  { child: "reports", column: "account_id", parent: "accounts", filled: true },
  { child: "reports", column: "target_account_id", parent: "accounts", filled: true },
  { child: "reports", column: "action_taken_by_account_id", parent: "accounts", filled: true },
  { child: "reports", column: "assigned_account_id", parent: "accounts", filled: true },
  { child: "reports", column: "application_id", parent: "oauth_applications", filled: true },
  { child: "polls", column: "account_id", parent: "accounts", filled: true },
  { child: "polls", column: "status_id", parent: "statuses", filled: true },
  { child: "statuses", column: "poll_id", parent: "polls", filled: true },
  { child: "statuses", column: "application_id", parent: "oauth_applications", filled: true },
  { child: "users", column: "created_by_application_id", parent: "oauth_applications", filled: false },
];

let pg: PostgresServer;
const target = (db: string): PsqlTarget => ({ host: pg.host, port: pg.port, db });
const query = (sql: string, db = "alpha") => pg.psql(sql, { db });
const count = async (sql: string, db = "alpha") => Number(await query(sql, db));

/** Each rule is a FROM clause whose rows break it: none may have any. */
async function expectNone(rules: Record<string, string>): Promise<void> {
  for (const [rule, from] of Object.entries(rules)) expect(await count(`select count(*) from ${from}`), rule).toBe(0);
}

/** Each rule is a FROM clause of rows the fixture must have. */
async function expectSome(rules: Record<string, string>): Promise<void> {
  for (const [rule, from] of Object.entries(rules)) expect(await count(`select count(*) from ${from}`), rule).toBeGreaterThan(0);
}

/** md5 of each table's rows in id order. */
async function digests(db: string, tables: readonly MastodonTable[]): Promise<Record<string, string>> {
  const sql = tables.map((t) => `select '${t}', md5(coalesce(string_agg(x::text, '|' order by x.id), '')) from ${t} x`).join(" union all ");
  const rows = (await query(sql, db)).split("\n").map((l) => l.split("|"));
  return Object.fromEntries(rows.map(([t, d]) => [t, d]));
}

beforeAll(async () => {
  pg = await startPostgres();
  await generate({ target: target("alpha"), size: "10MB", seed: SEED });
  await generate({ target: target("alpha_again"), size: "10MB", seed: SEED });
  await generate({ target: target("alpha_other"), size: "10MB", seed: SEED + 1 });
});

afterAll(async () => {
  await pg?.stop();
});

describe("generator: the tables an alpha sanitizer cleans", () => {
  it("fills each of them at the 10MB preset", async () => {
    await expectSome(Object.fromEntries(SANITIZABLE_TABLES.map((t) => [t, t])));
  });

  it("leaves no orphan: every reference names an existing row, and the foreign keys are validated", async () => {
    for (const { child, column, parent, filled } of REFERENCES) {
      const where = `${child}.${column}`;
      await expectNone({ [where]: `${child} c where c.${column} is not null and not exists (select 1 from ${parent} p where p.id = c.${column})` });
      if (filled) await expectSome({ [where]: `${child} where ${column} is not null` });
    }
    await expectNone({
      "reports.status_ids": "reports r, unnest(r.status_ids) s where not exists (select 1 from statuses where id = s)",
      "unvalidated foreign keys": "pg_constraint where contype = 'f' and not convalidated",
    });
  });

  it("gives a session and a push subscription the user of their access token, on the Web app", async () => {
    await expectNone({
      "push subscription of another user's token": "web_push_subscriptions w join oauth_access_tokens t on t.id = w.access_token_id where t.resource_owner_id is distinct from w.user_id",
      "session on another user's token": "session_activations s join oauth_access_tokens t on t.id = s.access_token_id where t.resource_owner_id is distinct from s.user_id",
      "session naming another token's subscription": "session_activations s join web_push_subscriptions w on w.id = s.web_push_subscription_id where w.access_token_id <> s.access_token_id",
      "session on a client app's token": "session_activations s join oauth_access_tokens t on t.id = s.access_token_id join oauth_applications a on a.id = t.application_id where not a.superapp",
    });
    expect(await query("select name from oauth_applications where superapp")).toBe("Web");
  });

  it("joins distinct pairs of two different accounts in follow requests, blocks and mutes, a local account on one side", async () => {
    for (const [table, localSide] of [["follow_requests", "target_account_id"], ["blocks", "account_id"], ["mutes", "account_id"]]) {
      await expectNone({
        [`${table}: a pair twice`]: `(select account_id, target_account_id from ${table} group by 1, 2 having count(*) > 1) d`,
        [`${table}: an account with itself`]: `${table} where account_id = target_account_id`,
        [`${table}: ${localSide} remote`]: `${table} x join accounts a on a.id = x.${localSide} where a.domain is not null`,
      });
    }
  });

  it("puts polls on statuses of the poll's own account, and reports, bookmarks and scheduled statuses come from local accounts", async () => {
    await expectNone({
      "poll on another account's status, a reblog, or one not pointing back": "polls p join statuses s on s.id = p.status_id where s.account_id <> p.account_id or s.poll_id is distinct from p.id or s.reblog_of_id is not null",
      "status naming a poll that is not on it": "statuses s where s.poll_id is not null and not exists (select 1 from polls p where p.status_id = s.id)",
      "poll whose tallies do not add up": "polls where cardinality(options) <> cardinality(cached_tallies) or votes_count <> (select sum(v) from unnest(cached_tallies) v)",
      "report by a remote account": "reports x join accounts a on a.id = x.account_id where a.domain is not null",
      "bookmark by a remote account": "bookmarks x join accounts a on a.id = x.account_id where a.domain is not null",
      "scheduled status of a remote account": "scheduled_statuses x join accounts a on a.id = x.account_id where a.domain is not null",
      "report on oneself": "reports where account_id = target_account_id",
      "report naming a status of someone else": "reports r, unnest(r.status_ids) s join statuses st on st.id = s where st.account_id <> r.target_account_id",
    });
  });

  it("has webhooks with https URLs and hex secrets, some enabled and some not, and relays some of which are accepted", async () => {
    await expectNone({
      "webhook without an https URL or a hex secret": "webhooks where url !~ '^https://' or secret !~ '^[0-9a-f]{40}$'",
      "relay without an https inbox": "relays where inbox_url !~ '^https://'",
    });
    await expectSome({
      "enabled webhook": "webhooks where enabled",
      "disabled webhook": "webhooks where not enabled",
      "accepted relay": "relays where state = 2 and follow_activity_id is not null",
    });
  });

  it("gives two-factor users otp_secret (some also 4.3's legacy encrypted_otp_secret) and WebAuthn users a webauthn_id", async () => {
    await expectSome({
      "two-factor user": "users where otp_required_for_login",
      "legacy OTP secret": "users where encrypted_otp_secret is not null and encrypted_otp_secret_iv is not null and encrypted_otp_secret_salt is not null",
    });
    await expectNone({
      "two-factor user without a secret or backup codes": "users where otp_required_for_login and (otp_secret is null or otp_backup_codes is null)",
      "WebAuthn user without webauthn_id or TOTP": "users u where exists (select 1 from webauthn_credentials w where w.user_id = u.id) and (u.webauthn_id is null or not u.otp_required_for_login)",
      "token not 43 url-safe characters": "oauth_access_tokens where token !~ '^[A-Za-z0-9_-]{43}$' or refresh_token !~ '^[A-Za-z0-9_-]{43}$'",
    });
  });

  it("gives every local account its own PEM-shaped private key and no remote account one", async () => {
    const pem = String.raw`^-----BEGIN RSA PRIVATE KEY-----\n([A-Za-z0-9+/]{64}\n)+[A-Za-z0-9+/=]{1,64}\n-----END RSA PRIVATE KEY-----\n$`;
    await expectSome({ "local account": "accounts where domain is null", "remote account": "accounts where domain is not null" });
    await expectNone({
      "local account without a PEM private key": `accounts where domain is null and (private_key is null or private_key !~ '${pem}')`,
      "two local accounts with one private key": "(select private_key from accounts where domain is null group by 1 having count(*) > 1) d",
      "remote account with a private key": "accounts where domain is not null and private_key is not null",
      "account without its own public key": "(select public_key from accounts group by 1 having count(*) > 1 or public_key not like '-----BEGIN PUBLIC KEY-----%') d",
    });
  });

  it("makes the same rows for the same seed and different ones for another seed, table by table", async () => {
    const tables: MastodonTable[] = ["accounts", "users", ...SANITIZABLE_TABLES];
    const first = await digests("alpha", tables);
    const again = await digests("alpha_again", tables);
    const other = await digests("alpha_other", tables);
    for (const table of tables) {
      expect(again[table], table).toBe(first[table]);
      expect(other[table], table).not.toBe(first[table]);
    }
  });
});
