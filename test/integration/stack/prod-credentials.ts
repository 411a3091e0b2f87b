// What makes a restore of prod dangerous to run as alpha, put into the local prod stack's database: the
// fixture app's accounts table gets Mastodon's key columns, and the tables sanitize-alpha.sh cleans are
// made with their Mastodon types (test/fixtures/mastodon/schema.sql) and given rows that could act as
// prod: actor keys, OAuth tokens and grants, sessions, push subscriptions, second factors, webhooks, a relay,
// and followers on other servers whose inboxes a delivery job would POST to.
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** The tables sanitize-alpha.sh needs besides accounts (scripts/lib/alpha.sh, ALPHA_TABLES). */
const TABLES = [
  "users", "oauth_applications", "oauth_access_tokens", "oauth_access_grants", "web_push_subscriptions", "session_activations",
  "webauthn_credentials", "identities", "login_activities", "webhooks", "relays", "settings", "scheduled_statuses",
] as const;

export interface ProdCredentials {
  /** Run as the PostgreSQL superuser in the app's database. */
  readonly sql: string;
  /** The local accounts' private keys, which no account on alpha may keep. */
  readonly privateKeys: readonly string[];
}

function createStatements(): string {
  const schema = readFileSync(join(__dirname, "..", "..", "fixtures", "mastodon", "schema.sql"), "utf8");
  const out: string[] = [];
  for (const table of TABLES) {
    const m = new RegExp(`CREATE TABLE ${table} \\(([\\s\\S]*?)\\n\\);`).exec(schema);
    if (!m) throw new Error(`test/fixtures/mastodon/schema.sql has no table ${table}`);
    out.push(`CREATE TABLE IF NOT EXISTS ${table} (${m[1]}\n);`);
  }
  return out.join("\n");
}

const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** `fediverse`: the address of the test's "other server", where the remote accounts' inboxes are. */
export function prodCredentials(fediverse: string, localAccounts = 3): ProdCredentials {
  const privateKeys: string[] = [];
  const accounts: string[] = [];
  for (let i = 0; i < localAccounts; i++) {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = privateKey.export({ type: "pkcs1", format: "pem" }).toString();
    privateKeys.push(pem);
    accounts.push(`(${quote(`member${i}`)}, NULL, ${quote(pem)}, ${quote(publicKey.export({ type: "spki", format: "pem" }).toString())})`);
  }
  const remoteKey = "'-----BEGIN PUBLIC KEY-----\nremote\n-----END PUBLIC KEY-----\n'";
  // One inbox over http (a delivery that gets through is answered) and one over https.
  const remotes = [`('remote0', 'remote.example', NULL, ${remoteKey}, 'http://${fediverse}/users/remote0/inbox')`, `('remote1', 'remote.example', NULL, ${remoteKey}, 'https://${fediverse}/users/remote1/inbox')`];
  const sql = `
\\set ON_ERROR_STOP on
BEGIN;
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS domain character varying, ADD COLUMN IF NOT EXISTS private_key text,
  ADD COLUMN IF NOT EXISTS public_key text NOT NULL DEFAULT '', ADD COLUMN IF NOT EXISTS updated_at timestamp without time zone NOT NULL DEFAULT now(),
  ADD COLUMN IF NOT EXISTS inbox_url character varying NOT NULL DEFAULT '';
${createStatements()}
INSERT INTO accounts (username, domain, private_key, public_key) VALUES ${accounts.join(",\n  ")};
INSERT INTO accounts (username, domain, private_key, public_key, inbox_url) VALUES ${remotes.join(",\n  ")};
INSERT INTO users (email, created_at, updated_at, account_id, otp_required_for_login, otp_secret, encrypted_password)
  SELECT username || '@social.coop.test', now(), now(), id, id % 2 = 0, CASE WHEN id % 2 = 0 THEN 'JBSWY3DPEHPK3PXP' END, '$2a$10$prodhash'
  FROM accounts WHERE domain IS NULL AND username LIKE 'member%';
INSERT INTO oauth_applications (name, uid, secret, redirect_uri, created_at, updated_at) VALUES ('Web', 'prod-app-uid', 'prod-app-secret', 'urn:ietf:wg:oauth:2.0:oob', now(), now());
INSERT INTO oauth_access_tokens (token, created_at, scopes, application_id, resource_owner_id)
  SELECT 'prod-token-' || u.id, now(), 'read write follow push', a.id, u.id FROM users u, oauth_applications a;
INSERT INTO oauth_access_grants (token, expires_in, redirect_uri, created_at, application_id, resource_owner_id)
  SELECT 'prod-grant-' || u.id, 600, 'urn:ietf:wg:oauth:2.0:oob', now(), a.id, u.id FROM users u, oauth_applications a;
INSERT INTO web_push_subscriptions (endpoint, key_p256dh, key_auth, created_at, updated_at, user_id)
  SELECT 'https://push.example/' || id, 'BPp256dh' || id, 'auth' || id, now(), now(), id FROM users;
INSERT INTO session_activations (session_id, created_at, updated_at, user_agent, user_id) SELECT 'prod-session-' || id, now(), now(), 'Firefox', id FROM users;
INSERT INTO webauthn_credentials (external_id, public_key, nickname, created_at, updated_at, user_id) SELECT 'cred-' || id, 'pQECAyYg', 'YubiKey', now(), now(), id FROM users;
INSERT INTO identities (provider, uid, created_at, updated_at, user_id) SELECT 'openid_connect', 'sub-' || id, now(), now(), id FROM users;
INSERT INTO login_activities (user_id, authentication_method, success, ip, created_at) SELECT id, 'password', true, '192.0.2.7', now() FROM users;
INSERT INTO webhooks (url, events, secret, enabled, created_at, updated_at) VALUES ('https://hooks.example/prod', '{report.created}', 'prod-webhook-secret', true, now(), now());
INSERT INTO scheduled_statuses (account_id, scheduled_at, params) SELECT id, now() + interval '1 day', '{"text": "a post for tomorrow"}' FROM accounts WHERE domain IS NULL AND username LIKE 'member%';
INSERT INTO relays (inbox_url, created_at, updated_at, state) VALUES ('https://relay.example/inbox', now(), now(), 2);
INSERT INTO settings (var, value, created_at, updated_at) VALUES ('registrations_mode', E'--- open\\n', now(), now());
COMMIT;
`;
  return { sql, privateKeys };
}
