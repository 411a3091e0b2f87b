# shellcheck shell=bash
# What makes a restored copy of prod safe to run as alpha (sourced by sanitize-alpha.sh after common.sh
# and pg.sh): the egress firewall, the guard the app's units run before they start, the rewritten
# .env.production, and the SQL that removes everything that could act as prod. Renderers print to stdout.

# Tables the database step changes: a schema without one of them is not one this script knows how to make
# safe, so the run stops before changing anything.
# shellcheck disable=SC2034 # read by sanitize-alpha.sh
readonly ALPHA_TABLES=(accounts users oauth_applications oauth_access_tokens oauth_access_grants
  web_push_subscriptions session_activations webauthn_credentials identities login_activities webhooks
  relays settings scheduled_statuses)

# Keys of .env.production that alpha must not keep from prod (prefixes end in _): its names, its secrets
# that sign or authenticate (a new SECRET_KEY_BASE ends every prod session and signed link; a new VAPID pair
# makes every push subscription useless), e-mail and object storage credentials. The ActiveRecord
# encryption keys stay: they only decrypt columns alpha already holds, and without them those would be lost.
readonly ALPHA_ENV_DROP=(LOCAL_DOMAIN WEB_DOMAIN ALTERNATE_DOMAINS SECRET_KEY_BASE OTP_SECRET VAPID_PRIVATE_KEY
  VAPID_PUBLIC_KEY LIMITED_FEDERATION_MODE UPDATE_CHECK_URL SMTP_ AWS_ S3_ COOP_ALPHA_)

# alpha_env_strip FILE: FILE without the lines alpha replaces.
alpha_env_strip() {
  local pattern name
  pattern=$(for name in "${ALPHA_ENV_DROP[@]}"; do
    if [[ "${name}" == *_ ]]; then printf '%s[A-Z0-9_]*|' "${name}"; else printf '%s|' "${name}"; fi
  done)
  grep -Ev "^(export +)?(${pattern%|})=" "$1" || true
}

# render_alpha_env FILE DOMAIN: FILE with alpha's names, new signing secrets and every outward path off.
render_alpha_env() {
  local file=$1 domain=$2
  alpha_env_strip "${file}"
  cat <<ENV
# alpha: written by scripts/sanitize-alpha.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ) over a restore of prod.
COOP_ALPHA_SANITIZED=1
LOCAL_DOMAIN=${domain}
WEB_DOMAIN=${domain}
LIMITED_FEDERATION_MODE=true
SMTP_DELIVERY_METHOD=file
SMTP_FROM_ADDRESS=notifications@${domain}
UPDATE_CHECK_URL=
S3_ENABLED=false
ENV
  printf 'SECRET_KEY_BASE=%s\n' "$(openssl rand -hex 64)"
  printf 'OTP_SECRET=%s\n' "$(openssl rand -hex 64)"
  render_vapid_keys
}

# alpha_secret_digest FILE: what ties the database's sanitized record to this very .env.production: the
# sha256 of its SECRET_KEY_BASE line (prod's file, restored again, never matches).
alpha_secret_digest() { grep -E '^SECRET_KEY_BASE=' "$1" | tail -n 1 | sha256sum | cut -d' ' -f1; }

# render_alpha_nft APP_UID: the egress allowlist for the app's processes. Mastodon's delivery workers
# ignore LIMITED_FEDERATION_MODE, so only a packet filter stops them: every connection the app's user
# opens off the host is refused but name resolution (53) and time (123). Root's (certbot, the restore's
# SSH to prod's repository host) are not the app's and pass. Loading it replaces the table in one
# transaction, so there is no moment without it.
# Only packets whose socket the app's user owns are judged: a reply to a connection from outside (sshd's
# or nginx's SYN-ACK, sent from a request socket) has no owner to compare, and `meta skuid != uid` does
# not match it, so an allowlist written that way reset inbound connections at random.
render_alpha_nft() {
  cat <<NFT
# Managed by scripts/sanitize-alpha.sh: alpha's app user reaches nothing off this host but DNS and NTP.
table inet coop_alpha_egress
delete table inet coop_alpha_egress
table inet coop_alpha_egress {
  counter refused {}
  chain output {
    type filter hook output priority 0; policy accept;
    oif "lo" accept
    ct state established,related accept
    meta skuid $1 jump app
  }
  chain app {
    udp dport { 53, 123 } accept
    tcp dport 53 accept
    meta l4proto tcp counter name "refused" reject with tcp reset
    counter name "refused" reject with icmpx admin-prohibited
  }
}
NFT
}

# render_alpha_guard: the check every app unit runs before it starts (ExecStartPre, as root): the
# database holds the sanitized record, the record matches this .env.production, and the egress table is
# loaded. A copy of prod that sanitize-alpha.sh has not finished on fails all three.
render_alpha_guard() {
  cat <<GUARD
#!/bin/bash
# Managed by scripts/sanitize-alpha.sh: alpha's app units run this before they start.
set -euo pipefail
$(declare -f alpha_secret_digest)
fail() { echo "coop-alpha-guard: \$*; run sanitize-alpha.sh (docs/runbooks/alpha.md)" >&2; exit 1; }
recorded=\$(runuser -u $(printf '%q' "${COOP_PG_OS_USER}") -- $(printf '%q' "${COOP_PG_BIN}/psql") -X -A -t -h $(printf '%q' "${COOP_PG_SOCKET}") -p ${COOP_PG_PORT} -U postgres -d $(printf '%q' "${COOP_DB_NAME}") \\
  -c "select secret_digest from coop_alpha.sanitized order by at desc limit 1" 2>/dev/null) ||
  fail "the database holds no sanitized record (a restore of prod not made safe yet)"
[[ -n "\${recorded}" ]] || fail "the database holds no sanitized record"
[[ "\${recorded}" == "\$(alpha_secret_digest $(printf '%q' "${COOP_ENV_FILE}"))" ]] || fail "$(printf '%q' "${COOP_ENV_FILE}") is not the one the database was sanitized with"
${COOP_ALPHA_NFT} list table inet coop_alpha_egress >/dev/null 2>&1 || fail "the egress firewall (table inet coop_alpha_egress) is not loaded"
GUARD
}

# render_alpha_dropin GUARD: the drop-in that makes a unit run the guard first (`+`: as root).
render_alpha_dropin() {
  printf '# Managed by scripts/sanitize-alpha.sh.\n[Service]\nExecStartPre=+%s\n' "$1"
}

# render_alpha_firewall_unit NFT_FILE: loads the egress table at boot, before the app's units.
render_alpha_firewall_unit() {
  cat <<UNIT
# Managed by scripts/sanitize-alpha.sh.
[Unit]
Description=alpha: egress allowlist for the app's user
DefaultDependencies=no
Before=network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f $1

[Install]
WantedBy=multi-user.target
UNIT
}

# render_alpha_sql DOMAIN DIGEST: one transaction: local accounts get the keys staged in coop_alpha.new_keys,
# and every credential, session, subscription and outward hook of prod goes; the sanitized record is its
# last statement. All or nothing, so a kill leaves either prod's rows (and no record) or alpha's.
render_alpha_sql() {
  cat <<SQL
BEGIN;
DO \$\$ BEGIN
  IF EXISTS (SELECT 1 FROM accounts a WHERE a.domain IS NULL
             AND NOT EXISTS (SELECT 1 FROM coop_alpha.new_keys k WHERE k.account_id = a.id)) THEN
    RAISE EXCEPTION 'a local account has no new key staged';
  END IF;
END \$\$;
UPDATE accounts a SET private_key = k.private_key, public_key = k.public_key, updated_at = now()
  FROM coop_alpha.new_keys k WHERE a.id = k.account_id AND a.domain IS NULL;
DELETE FROM web_push_subscriptions;
DELETE FROM session_activations;
DELETE FROM oauth_access_grants;
DELETE FROM oauth_access_tokens;
UPDATE oauth_applications SET secret = replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), updated_at = now();
DELETE FROM webauthn_credentials;
DELETE FROM identities;
DELETE FROM login_activities;
UPDATE webhooks SET enabled = false, secret = replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), updated_at = now();
DELETE FROM relays;
-- Posts members scheduled on prod: alpha would publish them when due, even one its author has since
-- withdrawn on prod. alpha is a copy; prod keeps and publishes its own.
DELETE FROM scheduled_statuses;
-- Second factors and one-time tokens: the columns this Mastodon has (they moved between releases).
DO \$\$ DECLARE c text; BEGIN
  FOR c IN SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'users'
           AND column_name IN ('otp_secret', 'encrypted_otp_secret', 'encrypted_otp_secret_iv', 'encrypted_otp_secret_salt',
                               'otp_backup_codes', 'webauthn_id', 'reset_password_token', 'sign_in_token', 'confirmation_token')
  LOOP EXECUTE format('UPDATE users SET %I = NULL', c); END LOOP;
END \$\$;
UPDATE users SET otp_required_for_login = false;
DELETE FROM settings WHERE var = 'registrations_mode';
INSERT INTO settings (var, value, created_at, updated_at) VALUES ('registrations_mode', E'--- none\n', now(), now());
CREATE TABLE IF NOT EXISTS coop_alpha.sanitized (at timestamptz NOT NULL DEFAULT now(), domain text NOT NULL, secret_digest text NOT NULL);
INSERT INTO coop_alpha.sanitized (domain, secret_digest) VALUES ('$1', '$2');
DROP TABLE coop_alpha.new_keys;
COMMIT;
SQL
}

# The counts that must all be 0 after the database step, one "name|count" a line. prod_keys_kept compares
# each local account's key with the digest of the key it had when restored (coop_alpha.prod_key_digests).
# shellcheck disable=SC2034 # read by sanitize-alpha.sh
readonly ALPHA_CHECK_SQL="select 'prod_keys_kept', count(*) from accounts a join coop_alpha.prod_key_digests p on p.account_id = a.id
    where a.domain is null and sha256(convert_to(coalesce(a.private_key, ''), 'UTF8')) = p.digest
union all select 'local_accounts_without_key', count(*) from accounts where domain is null and coalesce(private_key, '') = ''
union all select 'oauth_access_tokens', count(*) from oauth_access_tokens
union all select 'oauth_access_grants', count(*) from oauth_access_grants
union all select 'session_activations', count(*) from session_activations
union all select 'web_push_subscriptions', count(*) from web_push_subscriptions
union all select 'webauthn_credentials', count(*) from webauthn_credentials
union all select 'identities', count(*) from identities
union all select 'login_activities', count(*) from login_activities
union all select 'active_webhooks', count(*) from webhooks where enabled
union all select 'relays', count(*) from relays
union all select 'scheduled_statuses', count(*) from scheduled_statuses
union all select 'users_with_otp', count(*) from users where otp_required_for_login
union all select 'open_registrations', count(*) from settings where var = 'registrations_mode' and value <> E'--- none\\n'"
