#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Installs where this host's alerts go (alert.sh): the e-mail addresses and SMTP server, and/or a
# webhook, and the coop-alert@.service template that the backup, drill and renewal units name in
# OnFailure=. Idempotent (files are written only when they differ). The secrets (SMTP password, webhook
# URL) arrive in the environment and go only into root-only curl config files, never to a log or a
# command line. Sends nothing: `sudo alert.sh send test "a test alert" </dev/null` does.
#
# Environment:
#   COOP_ALERT_STACK                 the stack's name, in every message
#   COOP_ALERT_EMAIL_TO              comma-separated addresses; empty: no e-mail
#   COOP_ALERT_EMAIL_FROM            the sender address (required with EMAIL_TO)
#   COOP_ALERT_SMTP_URL              smtps://host:465 or smtp://host:587 (STARTTLS) (required with EMAIL_TO)
#   COOP_ALERT_SMTP_STARTTLS [yes]   no: plain SMTP, only to a relay without login (a test's listener)
#   COOP_ALERT_SMTP_LOGIN  COOP_ALERT_SMTP_PASSWORD   both or neither (secret: the password)
#   COOP_ALERT_WEBHOOK_URL           https:// URL to post JSON to (secret: it holds a token); empty: none.
#                                    http:// is accepted only for a loopback or private address
#   COOP_ALERT_DIR [/etc/coop/alerts]  COOP_SCRIPTS_DIR [/opt/coop/scripts]
#   COOP_SCRIPTS_FROM                uploaded scripts folder: alert.sh and its libraries are installed from it
#   COOP_SYSTEMD_DIR [/etc/systemd/system]  COOP_SKIP_SYSTEMCTL (tests: no daemon-reload)
#
# install-alerts.sh --uninstall: removes the destinations (alert.sh then only warns in the journal) and
# keeps the unit template, which the backup units still name.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/alerts.sh
source "${SCRIPT_DIR}/lib/alerts.sh"

# Secrets, moved out of the environment so no child process inherits them.
SMTP_PASSWORD=""
WEBHOOK_URL=""

readonly EMAIL_RE='^[^@[:space:],<>"]+@[A-Za-z0-9.-]+$'
# A host name or address (IPv6 in brackets), and a port.
readonly SMTP_URL_RE='^smtps?://[][A-Za-z0-9.:-]+$'

install_alerts_env() {
  COOP_ALERT_DIR="${COOP_ALERT_DIR:-/etc/coop/alerts}"
  COOP_SCRIPTS_DIR="${COOP_SCRIPTS_DIR:-/opt/coop/scripts}"
  COOP_SYSTEMD_DIR="${COOP_SYSTEMD_DIR:-/etc/systemd/system}"
  COOP_ALERT_STACK="${COOP_ALERT_STACK:-}"
  COOP_ALERT_EMAIL_TO="${COOP_ALERT_EMAIL_TO:-}"
  COOP_ALERT_EMAIL_FROM="${COOP_ALERT_EMAIL_FROM:-}"
  COOP_ALERT_SMTP_URL="${COOP_ALERT_SMTP_URL:-}"
  COOP_ALERT_SMTP_STARTTLS="${COOP_ALERT_SMTP_STARTTLS:-yes}"
  COOP_ALERT_SMTP_LOGIN="${COOP_ALERT_SMTP_LOGIN:-}"
  SMTP_PASSWORD="${COOP_ALERT_SMTP_PASSWORD:-}"
  WEBHOOK_URL="${COOP_ALERT_WEBHOOK_URL:-}"
  unset COOP_ALERT_SMTP_PASSWORD COOP_ALERT_WEBHOOK_URL
  [[ "${COOP_ALERT_STACK}" =~ ^[A-Za-z0-9._-]*$ ]] || die "COOP_ALERT_STACK must be a stack name (found '${COOP_ALERT_STACK}')"
  [[ "${COOP_ALERT_SMTP_STARTTLS}" =~ ^(yes|no)$ ]] || die "COOP_ALERT_SMTP_STARTTLS must be yes or no (found '${COOP_ALERT_SMTP_STARTTLS}')"
  if [[ -n "${COOP_ALERT_EMAIL_TO}" ]]; then
    local -a to=()
    local a
    IFS=',' read -r -a to <<<"${COOP_ALERT_EMAIL_TO}"
    for a in "${to[@]}"; do [[ "${a}" =~ ${EMAIL_RE} ]] || die "COOP_ALERT_EMAIL_TO: '${a}' is not an e-mail address"; done
    [[ "${COOP_ALERT_EMAIL_FROM}" =~ ${EMAIL_RE} ]] || die "COOP_ALERT_EMAIL_FROM must be the sender's e-mail address (found '${COOP_ALERT_EMAIL_FROM}')"
    [[ "${COOP_ALERT_SMTP_URL}" =~ ${SMTP_URL_RE} ]] ||
      die "COOP_ALERT_SMTP_URL must be smtps://host:465 or smtp://host:587 (found '${COOP_ALERT_SMTP_URL}')"
    if [[ -n "${COOP_ALERT_SMTP_LOGIN}" && -z "${SMTP_PASSWORD}" ]] || [[ -z "${COOP_ALERT_SMTP_LOGIN}" && -n "${SMTP_PASSWORD}" ]]; then
      die "COOP_ALERT_SMTP_LOGIN and COOP_ALERT_SMTP_PASSWORD go together: give both, or neither for a relay without login"
    fi
    if [[ -n "${SMTP_PASSWORD}" && "${COOP_ALERT_SMTP_URL}" == smtp://* && "${COOP_ALERT_SMTP_STARTTLS}" == no ]]; then
      die "COOP_ALERT_SMTP_STARTTLS=no with a login would send the SMTP password in clear: use smtps:// or STARTTLS"
    fi
  fi
  if [[ -n "${WEBHOOK_URL}" ]]; then
    [[ "${WEBHOOK_URL}" =~ ^https://[^[:space:]]+$ || "${WEBHOOK_URL}" =~ ^http://(127\.|10\.|192\.168\.|localhost[:/])[^[:space:]]*$ ]] ||
      die "COOP_ALERT_WEBHOOK_URL must be an https:// URL (http:// only to a loopback or private address)"
  fi
}

write_destinations() {
  install -d -m 0700 -o root -g root "${COOP_ALERT_DIR}"
  render_alert_env | put_file "${COOP_ALERT_DIR}/alert.env" 0600 root root
  if [[ -n "${SMTP_PASSWORD}" ]]; then
    printf 'user = %s\n' "$(curl_config_value "${COOP_ALERT_SMTP_LOGIN}:${SMTP_PASSWORD}")" | put_file "${COOP_ALERT_DIR}/smtp.curl" 0600 root root
  else
    rm -f "${COOP_ALERT_DIR}/smtp.curl"
  fi
  if [[ -n "${WEBHOOK_URL}" ]]; then
    printf 'url = %s\n' "$(curl_config_value "${WEBHOOK_URL}")" | put_file "${COOP_ALERT_DIR}/webhook.curl" 0600 root root
  else
    rm -f "${COOP_ALERT_DIR}/webhook.curl"
  fi
  local where=()
  [[ -z "${COOP_ALERT_EMAIL_TO}" ]] || where+=("e-mail to ${COOP_ALERT_EMAIL_TO} through ${COOP_ALERT_SMTP_URL}")
  [[ -z "${WEBHOOK_URL}" ]] || where+=("a webhook")
  if ((${#where[@]} == 0)); then
    log_warn "no alert destination given: alerts only reach this host's journal"
  else
    log_info "alerts go to: $(IFS=';' && printf '%s' "${where[*]}")"
  fi
}

# What the unit runs, where it runs it from: install-backup.sh installs every script, but a host without
# backups (alpha's) has only this install.
install_alert_scripts() {
  [[ -n "${COOP_SCRIPTS_FROM:-}" ]] || return 0
  [[ -f "${COOP_SCRIPTS_FROM}/alert.sh" ]] || die "COOP_SCRIPTS_FROM=${COOP_SCRIPTS_FROM} holds no alert.sh"
  local f
  for f in alert.sh install-alerts.sh; do put_file "${COOP_SCRIPTS_DIR}/${f}" 0755 root root <"${COOP_SCRIPTS_FROM}/${f}"; done
  for f in common.sh alerts.sh; do put_file "${COOP_SCRIPTS_DIR}/lib/${f}" 0644 root root <"${COOP_SCRIPTS_FROM}/lib/${f}"; done
}

install_alert_unit() {
  render_alert_unit "${COOP_SCRIPTS_DIR}" | put_file "${COOP_SYSTEMD_DIR}/coop-alert@.service" 0644 root root
  if [[ "${COOP_SKIP_SYSTEMCTL:-}" == 1 ]]; then
    log_warn "COOP_SKIP_SYSTEMCTL=1: not reloading systemd"
  else
    systemctl daemon-reload
  fi
}

uninstall_alerts() {
  COOP_ALERT_DIR="${COOP_ALERT_DIR:-/etc/coop/alerts}"
  unset COOP_ALERT_SMTP_PASSWORD COOP_ALERT_WEBHOOK_URL
  rm -f "${COOP_ALERT_DIR}/alert.env" "${COOP_ALERT_DIR}/smtp.curl" "${COOP_ALERT_DIR}/webhook.curl"
  log_info "alert destinations removed from ${COOP_ALERT_DIR}: alerts now only reach this host's journal"
}

main() {
  case "${1:-}" in
    --help | -h)
      sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      return 0
      ;;
    --uninstall)
      uninstall_alerts
      return 0
      ;;
    "") ;;
    *) die "unknown argument '$1': install-alerts.sh takes none, --uninstall or --help" ;;
  esac
  install_alerts_env
  # One pass of idempotent writes: nothing to resume, so no step record.
  run_begin install-alerts "$(date +%s%N)"
  write_destinations
  install_alert_scripts
  install_alert_unit
  run_finish
}

main "$@"
