#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# Makes a restore of prod safe to run as alpha (docs/runbooks/alpha.md), before any app process may
# start: the app's units refuse to start until this has recorded success in the database itself, so a
# newer restore of prod (which lacks the record) is refused again until it has run over that one too.
#   federation off: LIMITED_FEDERATION_MODE and an nftables egress allowlist for the app's user (DNS and
#     NTP only), because Mastodon's delivery workers ignore the mode;
#   e-mail off (file delivery, no SMTP settings), web push off (a new VAPID pair, subscriptions deleted),
#     registrations closed, the update check off, object storage credentials dropped;
#   no TLS certificate, ACME account or DNS API token of prod's (restore-instance.sh leaves prod's
#     /etc/letsencrypt out; one that came anyway is removed): nothing here renews or serves prod's names,
#     and alpha's own certificate survives a refresh;
#   nothing that could act as prod: a new SECRET_KEY_BASE, sessions, OAuth tokens and grants, WebAuthn
#     credentials, second factors, identities and login activities gone, application secrets replaced,
#     webhooks disabled, relays removed, every local account's actor key replaced in the database (nothing
#     is signed or sent, unlike `tootctl accounts rotate`), and an empty Redis, so no prod queue replays.
# Idempotent and resumable (named steps); safe to kill at any moment: the database changes are one
# transaction whose last statement records success, and staged keys survive a kill.
#
# Usage: sanitize-alpha.sh [--help]
# Environment (defaults in brackets), besides scripts/lib/pg.sh's:
#   COOP_ALPHA_DOMAIN              alpha's own name (alpha.social.coop); required
#   COOP_ENV_FILE [/home/mastodon/shared/.env.production]   COOP_APP_USER [mastodon]
#   COOP_REDIS_HOST [127.0.0.1]  COOP_REDIS_PORT [6379]
#   COOP_APP_UNITS [mastodon-web.service mastodon-streaming.service mastodon-sidekiq.service]
#   COOP_SYSTEMD_DIR [/etc/systemd/system]   where the units' drop-ins and the firewall unit go
#   COOP_ALPHA_GUARD [/usr/local/sbin/coop-alpha-guard]   COOP_ALPHA_NFT_FILE [/etc/coop/alpha-egress.nft]
#   COOP_ALPHA_NFT [nft]           the nft command (tests run it inside a network namespace of their own)
#   COOP_LETSENCRYPT_DIR [/etc/letsencrypt]
#   COOP_ALPHA_KEY_BITS [2048]  COOP_ALPHA_KEY_BATCH [500]  COOP_ALPHA_KEY_JOBS [nproc]
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/pg.sh
source "${SCRIPT_DIR}/lib/pg.sh"
# shellcheck source=lib/app-site.sh
source "${SCRIPT_DIR}/lib/app-site.sh"
# shellcheck source=lib/alpha.sh
source "${SCRIPT_DIR}/lib/alpha.sh"

usage() { sed -n '/^# shellcheck /d; 2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

env_defaults() {
  require_env COOP_ALPHA_DOMAIN
  [[ "${COOP_ALPHA_DOMAIN}" =~ ^[a-z0-9.-]+$ ]] || die "COOP_ALPHA_DOMAIN '${COOP_ALPHA_DOMAIN}' is not a host name"
  pg_env_defaults
  COOP_APP_USER="${COOP_APP_USER:-mastodon}"
  COOP_ENV_FILE="${COOP_ENV_FILE:-/home/${COOP_APP_USER}/shared/.env.production}"
  COOP_REDIS_HOST="${COOP_REDIS_HOST:-127.0.0.1}"
  COOP_REDIS_PORT="${COOP_REDIS_PORT:-6379}"
  COOP_APP_UNITS="${COOP_APP_UNITS:-mastodon-web.service mastodon-streaming.service mastodon-sidekiq.service}"
  COOP_SYSTEMD_DIR="${COOP_SYSTEMD_DIR:-/etc/systemd/system}"
  COOP_ALPHA_GUARD="${COOP_ALPHA_GUARD:-/usr/local/sbin/coop-alpha-guard}"
  COOP_ALPHA_NFT_FILE="${COOP_ALPHA_NFT_FILE:-/etc/coop/alpha-egress.nft}"
  COOP_ALPHA_NFT="${COOP_ALPHA_NFT:-nft}"
  COOP_LETSENCRYPT_DIR="${COOP_LETSENCRYPT_DIR:-/etc/letsencrypt}"
  COOP_ALPHA_KEY_BITS="${COOP_ALPHA_KEY_BITS:-2048}"
  COOP_ALPHA_KEY_BATCH="${COOP_ALPHA_KEY_BATCH:-500}"
  COOP_ALPHA_KEY_JOBS="${COOP_ALPHA_KEY_JOBS:-$(nproc)}"
  local n
  for n in COOP_ALPHA_KEY_BITS COOP_ALPHA_KEY_BATCH COOP_ALPHA_KEY_JOBS COOP_REDIS_PORT; do
    [[ "${!n}" =~ ^[1-9][0-9]*$ ]] || die "${n} must be a positive integer (found '${!n}')"
  done
  read -ra APP_UNITS <<<"${COOP_APP_UNITS}"
}

systemd_runs() { [[ "${COOP_SYSTEMD_DIR}" == /etc/systemd/system && -d /run/systemd/system ]]; }

already_sanitized() {
  [[ -f "${COOP_ENV_FILE}" ]] || return 1
  [[ "$(pg_sql "select coalesce((select secret_digest from coop_alpha.sanitized order by at desc limit 1), '')" 2>/dev/null)" == "$(alpha_secret_digest "${COOP_ENV_FILE}")" ]]
}

preflight() {
  local missing
  require_cmd openssl python3 redis-cli sha256sum "${COOP_ALPHA_NFT%% *}"
  python3 -c 'import cryptography' 2>/dev/null || die "python3 lacks the cryptography module (Debian: python3-cryptography)"
  id -u "${COOP_APP_USER}" >/dev/null 2>&1 || die "no user ${COOP_APP_USER} on this host (COOP_APP_USER)"
  [[ -f "${COOP_ENV_FILE}" ]] || die "${COOP_ENV_FILE} is missing: restore prod's backup onto this host first (restore-instance.sh)"
  missing=$(pg_sql "select coalesce(string_agg(t, ' '), '') from unnest(string_to_array('${ALPHA_TABLES[*]}', ' ')) t where to_regclass('public.' || t) is null")
  [[ -z "${missing}" ]] || die "${COOP_DB_NAME} lacks ${missing}: not a Mastodon database this script knows how to make safe; nothing was changed"
}

# From here until the database holds the record, no app process can start (nor restart after a crash).
install_guard() {
  local unit
  if systemd_runs; then systemctl stop "${APP_UNITS[@]}" 2>/dev/null || true; fi
  render_alpha_guard | put_file "${COOP_ALPHA_GUARD}" 0755 root root
  for unit in "${APP_UNITS[@]}"; do
    render_alpha_dropin "${COOP_ALPHA_GUARD}" | put_file "${COOP_SYSTEMD_DIR}/${unit}.d/coop-alpha-guard.conf" 0644 root root
  done
  if systemd_runs; then systemctl daemon-reload; fi
}

firewall() {
  render_alpha_nft "$(id -u "${COOP_APP_USER}")" | put_file "${COOP_ALPHA_NFT_FILE}" 0644 root root
  render_alpha_firewall_unit "${COOP_ALPHA_NFT_FILE}" | put_file "${COOP_SYSTEMD_DIR}/coop-alpha-egress.service" 0644 root root
  if systemd_runs; then systemctl daemon-reload && systemctl enable --quiet coop-alpha-egress.service; fi
  ${COOP_ALPHA_NFT} -f "${COOP_ALPHA_NFT_FILE}" || die "nft refused ${COOP_ALPHA_NFT_FILE}"
  ${COOP_ALPHA_NFT} list table inet coop_alpha_egress >/dev/null || die "the egress table is not loaded after nft -f"
  log_info "egress: ${COOP_APP_USER} (uid $(id -u "${COOP_APP_USER}")) reaches only DNS and NTP off this host"
}

# The file as restored from prod still says so; one already rewritten for alpha keeps its new secrets.
environment() {
  if grep -qx 'COOP_ALPHA_SANITIZED=1' "${COOP_ENV_FILE}" && grep -qx "LOCAL_DOMAIN=${COOP_ALPHA_DOMAIN}" "${COOP_ENV_FILE}"; then
    log_info "${COOP_ENV_FILE} is alpha's already"
    return 0
  fi
  local owner rendered
  owner=$(stat -c %U "${COOP_ENV_FILE}")
  rendered=$(render_alpha_env "${COOP_ENV_FILE}" "${COOP_ALPHA_DOMAIN}")
  printf '%s\n' "${rendered}" | put_file "${COOP_ENV_FILE}" 0600 "${owner}" "$(id -gn "${owner}")"
}

redis_empty() {
  local out
  out=$(redis-cli -h "${COOP_REDIS_HOST}" -p "${COOP_REDIS_PORT}" FLUSHALL 2>&1) || die "redis FLUSHALL failed: ${out}"
  [[ "${out}" == OK ]] || die "redis FLUSHALL failed: ${out}"
  [[ "$(redis-cli -h "${COOP_REDIS_HOST}" -p "${COOP_REDIS_PORT}" DBSIZE)" == 0 ]] || die "Redis is not empty after FLUSHALL"
}

# New RSA key pairs, the shape Mastodon's Account#generate_keys makes (PKCS#1 private, SPKI public PEM),
# staged in batches that each commit: a kill loses at most the batch in flight.
stage_keys() {
  pg_sql "create schema if not exists coop_alpha;
    create table if not exists coop_alpha.new_keys (account_id bigint primary key, private_key text not null, public_key text not null);
    do \$\$ begin
      if to_regclass('coop_alpha.prod_key_digests') is null then
        create table coop_alpha.prod_key_digests as
          select id as account_id, sha256(convert_to(coalesce(private_key, ''), 'UTF8')) as digest from accounts where domain is null;
      end if;
    end \$\$" >/dev/null
  local total done_n ids
  total=$(pg_sql "select count(*) from accounts where domain is null")
  while :; do
    ids=$(pg_sql "select a.id from accounts a where a.domain is null
      and not exists (select 1 from coop_alpha.new_keys k where k.account_id = a.id) order by a.id limit ${COOP_ALPHA_KEY_BATCH}")
    [[ -n "${ids}" ]] || break
    printf '%s\n' "${ids}" | keygen | as_pg "${COOP_PG_BIN}/psql" -X -q -v ON_ERROR_STOP=1 -h "${COOP_PG_SOCKET}" -p "${COOP_PG_PORT}" \
      -U postgres -d "${COOP_DB_NAME}" -c '\copy coop_alpha.new_keys from stdin with (format csv)'
    done_n=$(pg_sql "select count(*) from coop_alpha.new_keys")
    log_info "actor keys: ${done_n}/${total} local accounts"
  done
}

# account ids on stdin -> CSV rows (id, private PEM, public PEM) on stdout.
keygen() {
  python3 -c '
import csv, sys
from multiprocessing import Pool
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
bits, jobs = int(sys.argv[1]), int(sys.argv[2])
def pair(account_id):
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return account_id, private.decode(), public.decode()
ids = [line.strip() for line in sys.stdin if line.strip()]
out = csv.writer(sys.stdout)
with Pool(jobs) as pool:
    for row in pool.imap(pair, ids, chunksize=8):
        out.writerow(row)
' "${COOP_ALPHA_KEY_BITS}" "${COOP_ALPHA_KEY_JOBS}"
}

database() {
  if already_sanitized; then
    log_info "${COOP_DB_NAME} was sanitized with this ${COOP_ENV_FILE} already"
    return 0
  fi
  local out
  out=$(render_alpha_sql "${COOP_ALPHA_DOMAIN}" "$(alpha_secret_digest "${COOP_ENV_FILE}")" |
    as_pg "${COOP_PG_BIN}/psql" -X -q -v ON_ERROR_STOP=1 -h "${COOP_PG_SOCKET}" -p "${COOP_PG_PORT}" -U postgres -d "${COOP_DB_NAME}" 2>&1) ||
    die "the sanitizing transaction failed (nothing of it was kept): $(error_lines "${out}")"
}

# Any certificate but alpha's own means prod's /etc/letsencrypt came with the files (restore-instance.sh
# leaves it out; an older restore did not): then everything certbot keeps per certificate and per
# account goes, alpha's own included (its deploy, which runs after this, gets it again). The DNS token
# tls.sh writes always goes: the deploy writes alpha's own back.
foreign_certificates() {
  local dir="${COOP_LETSENCRYPT_DIR}" conf
  for conf in "${dir}"/renewal/*.conf; do
    [[ -f "${conf}" && "$(basename "${conf}")" != "${COOP_ALPHA_DOMAIN}.conf" ]] && printf '%s\n' "$(basename "${conf}" .conf)"
  done
  for conf in "${dir}"/live/* "${dir}"/archive/*; do
    [[ -d "${conf}" && "$(basename "${conf}")" != "${COOP_ALPHA_DOMAIN}" ]] && printf '%s\n' "$(basename "${conf}")"
  done
  return 0
}

prod_tls_gone() {
  local dir="${COOP_LETSENCRYPT_DIR}" sub foreign
  foreign=$(foreign_certificates | sort -u | paste -sd ' ')
  if [[ -n "${foreign}" ]]; then
    # The lineages last: until they are gone, a re-run after a kill finds them and removes the rest.
    for sub in accounts csr keys live archive renewal; do rm -rf "${dir:?}/${sub}"; done
    log_info "certificates not alpha's (${foreign}) came with the files: every certificate and ACME account removed from ${dir}"
  fi
  rm -f "${dir}/coop-cloudflare.ini"
  log_info "no certificate or DNS token of prod's in ${dir}"
}

verify() {
  local rows name count bad=()
  rows=$(pg_sql "${ALPHA_CHECK_SQL}")
  while IFS='|' read -r name count; do
    ((count == 0)) || bad+=("${name}=${count}")
  done <<<"${rows}"
  ((${#bad[@]} == 0)) || die "still there after sanitizing: ${bad[*]}"
  [[ "$(redis-cli -h "${COOP_REDIS_HOST}" -p "${COOP_REDIS_PORT}" DBSIZE)" == 0 ]] || die "Redis holds keys again: did an app process start?"
  [[ ! -e "${COOP_LETSENCRYPT_DIR}/coop-cloudflare.ini" && -z "$(foreign_certificates)" ]] ||
    die "a certificate not alpha's, or a DNS token, is still in ${COOP_LETSENCRYPT_DIR}"
  bash "${COOP_ALPHA_GUARD}" || die "the guard refuses to let the app start"
  log_info "alpha is safe to start: $(pg_sql "select count(*) from accounts where domain is null") local accounts with new keys, no prod credential, session, subscription, webhook or relay left"
}

main() {
  case "${1:-}" in
    -h | --help) usage; return 0 ;;
    "") ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
  env_defaults
  run_begin sanitize-alpha "${COOP_ALPHA_DOMAIN}"
  # A finished alpha (serving, with its own Redis) is left alone: only a restore of prod needs this.
  if ! grep -q '^done=' "${COOP_STATE_FILE}" && [[ -f "${COOP_ALPHA_GUARD}" ]] && bash "${COOP_ALPHA_GUARD}" 2>/dev/null; then
    log_info "${COOP_DB_NAME} and ${COOP_ENV_FILE} were sanitized for ${COOP_ALPHA_DOMAIN} already: nothing to do"
    run_finish
    return 0
  fi
  steps_total 9
  step preflight preflight
  step guard install_guard
  step firewall firewall
  step environment environment
  step tls prod_tls_gone
  step redis redis_empty
  step keys stage_keys
  step database database
  step verify verify
  run_finish
}

main "$@"
