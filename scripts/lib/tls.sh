# shellcheck shell=bash
# The instance's TLS certificate from an ACME server through certbot (Debian's package), by DNS-01, so a
# certificate exists before DNS points at a new host (alpha, a spare, a replacement primary). Sourced after
# common.sh. Renewal is certbot's own timer, which reuses what the first issuance recorded in
# /etc/letsencrypt/renewal/<domain>.conf (server, DNS plugin or hooks, the nginx reload).
#
# Environment (defaults in brackets):
#   COOP_ACME_DNS             cloudflare | challtestsrv | empty: no certificate (plain HTTP; a local stack
#                             brought up without the runner's ACME server)
#   COOP_ACME_SERVER [https://acme-v02.api.letsencrypt.org/directory]
#   COOP_ACME_EMAIL           the ACME account's contact (stack config adminEmail)
#   COOP_CLOUDFLARE_API_TOKEN cloudflare: a token allowed to edit the zone's DNS (a Pulumi secret); kept in
#                             /etc/letsencrypt/coop-cloudflare.ini (0600), which the encrypted backup carries
#   COOP_ACME_DNS_API         challtestsrv: its management API, where the hook writes the TXT records
#   COOP_ACME_CA_B64          local stacks: the CA of the ACME server's own HTTPS listener (base64 PEM)
#   COOP_ACME_ROOTS_URL       local stacks: where the ACME server publishes its issuing root; both are added
#                             to the host's trust store, so certbot, curl and the health checks verify as
#                             they do against Let's Encrypt on a real host

readonly TLS_HOOK=/usr/local/lib/coop/acme-dns-hook.sh
readonly TLS_CLOUDFLARE_INI=/etc/letsencrypt/coop-cloudflare.ini

tls_env_defaults() {
  COOP_ACME_DNS="${COOP_ACME_DNS:-}"
  COOP_ACME_SERVER="${COOP_ACME_SERVER:-https://acme-v02.api.letsencrypt.org/directory}"
  case "${COOP_ACME_DNS}" in
    "") ;;
    cloudflare) require_env COOP_ACME_EMAIL COOP_CLOUDFLARE_API_TOKEN ;;
    challtestsrv) require_env COOP_ACME_EMAIL COOP_ACME_DNS_API ;;
    *) die "COOP_ACME_DNS must be cloudflare or challtestsrv (found '${COOP_ACME_DNS}')" ;;
  esac
}

tls_enabled() { [[ -n "${COOP_ACME_DNS}" ]]; }

# tls_live_dir DOMAIN: where certbot keeps the current certificate; the nginx site reads it there.
tls_live_dir() { printf '/etc/letsencrypt/live/%s' "$1"; }

tls_have_certificate() { [[ -s "$(tls_live_dir "$1")/fullchain.pem" && -s "$(tls_live_dir "$1")/privkey.pem" ]]; }

# Local stacks only: trust the test ACME server's listener and issuing root system-wide.
tls_trust_local_ca() {
  [[ -n "${COOP_ACME_CA_B64:-}" ]] || return 0
  local dir=/usr/local/share/ca-certificates before after root
  # Nothing there yet (the first run) must read as a difference, not fail the pipeline.
  before=$(cat "${dir}"/coop-acme-*.crt 2>/dev/null | sha256sum || true)
  printf '%s' "${COOP_ACME_CA_B64}" | base64 -d | put_file "${dir}/coop-acme-listener.crt" 0644 root root
  if [[ -n "${COOP_ACME_ROOTS_URL:-}" ]]; then
    # pebble makes a new root each time it starts: fetched every run, so a restarted server is trusted.
    root=$(with_retry 5 2 curl -fsS --max-time 10 --cacert "${dir}/coop-acme-listener.crt" "${COOP_ACME_ROOTS_URL}") ||
      die "the ACME server's root is not reachable at ${COOP_ACME_ROOTS_URL}"
    printf '%s\n' "${root}" | put_file "${dir}/coop-acme-root.crt" 0644 root root
  fi
  after=$(cat "${dir}"/coop-acme-*.crt | sha256sum)
  [[ "${before}" == "${after}" ]] || update-ca-certificates --fresh >/dev/null
}

# The certificate needs a new issuance (not a renewal's "not due yet"): it is missing, from another ACME
# server than the configured one, or does not verify against this host's trust store.
tls_needs_issue() {
  local domain=$1 live conf
  live=$(tls_live_dir "${domain}")
  conf="/etc/letsencrypt/renewal/${domain}.conf"
  tls_have_certificate "${domain}" || return 0
  grep -Fqx "server = ${COOP_ACME_SERVER}" "${conf}" 2>/dev/null || return 0
  openssl verify -CAfile /etc/ssl/certs/ca-certificates.crt -untrusted "${live}/chain.pem" "${live}/cert.pem" >/dev/null 2>&1 || return 0
  return 1
}

# tls_certificate DOMAIN: issue (or keep) DOMAIN's certificate and make sure renewal is scheduled.
tls_certificate() {
  local domain=$1
  local -a plugin=() force=()
  install_missing --required certbot python3-certbot-dns-cloudflare
  tls_trust_local_ca
  case "${COOP_ACME_DNS}" in
    cloudflare)
      printf 'dns_cloudflare_api_token = %s\n' "${COOP_CLOUDFLARE_API_TOKEN}" | put_file "${TLS_CLOUDFLARE_INI}" 0600 root root
      plugin=(--dns-cloudflare --dns-cloudflare-credentials "${TLS_CLOUDFLARE_INI}" --dns-cloudflare-propagation-seconds 30)
      ;;
    challtestsrv)
      put_file "${TLS_HOOK}" 0755 root root <"${SCRIPT_DIR}/acme-dns-hook.sh"
      printf '%s\n' "${COOP_ACME_DNS_API}" | put_file /etc/coop/acme-dns-api 0644 root root
      plugin=(--manual --preferred-challenges dns --manual-auth-hook "${TLS_HOOK} set" --manual-cleanup-hook "${TLS_HOOK} clear")
      ;;
  esac
  if tls_needs_issue "${domain}"; then
    tls_have_certificate "${domain}" && force=(--force-renewal)
    log_info "requesting a certificate for ${domain} from ${COOP_ACME_SERVER} (DNS-01 via ${COOP_ACME_DNS})"
    with_retry 3 5 certbot certonly --non-interactive --agree-tos --no-eff-email --email "${COOP_ACME_EMAIL}" \
      --server "${COOP_ACME_SERVER}" --cert-name "${domain}" --domains "${domain}" --key-type ecdsa \
      --deploy-hook "systemctl reload nginx" "${force[@]}" "${plugin[@]}" ||
      die "certbot could not get a certificate for ${domain} (its log: /var/log/letsencrypt/letsencrypt.log)"
  else
    log_info "the certificate for ${domain} is current ($(openssl x509 -noout -enddate -in "$(tls_live_dir "${domain}")/cert.pem"))"
  fi
  systemctl enable --quiet --now certbot.timer
}
