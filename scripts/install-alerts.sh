#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Installs where this host's alerts go (alert.sh): the e-mail addresses and SMTP server, and/or a
# webhook, the coop-alert@.service template that the backup, drill and renewal units name in OnFailure=
# (renewal: a drop-in for Debian's certbot.service), and the daily check (coop-check.timer). Idempotent
# (files are written only when they differ). The secrets (SMTP password, webhook URL) arrive in the
# environment and go only into root-only curl config files, never to a log or a command line. Sends
# nothing: `sudo alert.sh send test "a test alert" </dev/null` does.
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
#   COOP_CHECK_AT [07:00]            when the daily check (check.sh) runs, UTC, after the drill
#   COOP_CHECK_BACKUP_MAX_AGE_HOURS [26]  COOP_CHECK_DRILL_MAX_AGE_HOURS [26]  COOP_CHECK_WAL_MAX_LAG_SECONDS [300]
#   COOP_CHECK_DISK_MAX_PERCENT [85]  COOP_CHECK_CERT_MIN_DAYS [14]   its thresholds (those of coopctl status)
#   COOP_CHECK_SECURITY_GRACE_HOURS [72]   a security release of the app missed longer than this is told
#   COOP_CHECK_UPSTREAM_REPO         the GitHub owner/name of the deployed app's upstream (mastodon/mastodon,
#                                    hometown-fork/hometown); empty: the check compares no release
#   COOP_CHECK_RELEASES_API [https://api.github.com]   where the check lists its releases (tests: loopback)
#   COOP_ALERT_DIR [/etc/coop/alerts]  COOP_SCRIPTS_DIR [/opt/coop/scripts]
#   COOP_SCRIPTS_FROM                uploaded scripts folder: alert.sh and its libraries are installed from it
#   COOP_SYSTEMD_DIR [/etc/systemd/system]  COOP_SKIP_SYSTEMCTL (tests: no daemon-reload)  COOP_SKIP_APT
#   COOP_INSTALL_ID                  which install this is (the Alerts component's command inputs), recorded
#                                    so that the delete of a replaced install leaves its replacement alone
#
# install-alerts.sh --uninstall: removes the destinations (alert.sh then only warns in the journal) and the
# daily check, and keeps the alert unit template, which the backup units still name. Nothing, when a newer
# install (another COOP_INSTALL_ID) replaced the one being removed.
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
# http:// to a numeric loopback or private IPv4 address (127/8, 10/8, 172.16/12, 192.168/16), a port, a path.
readonly PRIVATE_HTTP_RE='^http://(127(\.[0-9]{1,3}){3}|10(\.[0-9]{1,3}){3}|172\.(1[6-9]|2[0-9]|3[01])(\.[0-9]{1,3}){2}|192\.168(\.[0-9]{1,3}){2})(:[0-9]{1,5})?(/[^[:space:]]*)?$'
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
  COOP_CHECK_AT="${COOP_CHECK_AT:-07:00}"
  [[ "${COOP_CHECK_AT}" =~ ^([01][0-9]|2[0-3]):[0-5][0-9]$ ]] || die "COOP_CHECK_AT must be HH:MM (found '${COOP_CHECK_AT}')"
  check_thresholds_env
  COOP_CHECK_UPSTREAM_REPO="${COOP_CHECK_UPSTREAM_REPO:-}"
  COOP_CHECK_RELEASES_API="${COOP_CHECK_RELEASES_API:-${DEFAULT_RELEASES_API}}"
  local problem
  problem=$(upstream_env_problem)
  [[ -z "${problem}" ]] || die "${problem}"
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
    [[ "${WEBHOOK_URL}" =~ ^https://[^[:space:]]+$ || "${WEBHOOK_URL}" =~ ${PRIVATE_HTTP_RE} ]] ||
      die "COOP_ALERT_WEBHOOK_URL must be an https:// URL (http:// only to a loopback or private IPv4 address)"
  fi
}

write_destinations() {
  install -d -m 0700 -o root -g root "${COOP_ALERT_DIR}"
  render_alert_env | put_file "${COOP_ALERT_DIR}/alert.env" 0600 root root
  local quoted
  if [[ -n "${SMTP_PASSWORD}" ]]; then
    # Assigned first, so that a value curl_config_value refuses stops the install (set -e).
    quoted=$(curl_config_value "${COOP_ALERT_SMTP_LOGIN}:${SMTP_PASSWORD}")
    printf 'user = %s\n' "${quoted}" | put_file "${COOP_ALERT_DIR}/smtp.curl" 0600 root root
  else
    rm -f "${COOP_ALERT_DIR}/smtp.curl"
  fi
  if [[ -n "${WEBHOOK_URL}" ]]; then
    quoted=$(curl_config_value "${WEBHOOK_URL}")
    printf 'url = %s\n' "${quoted}" | put_file "${COOP_ALERT_DIR}/webhook.curl" 0600 root root
  else
    rm -f "${COOP_ALERT_DIR}/webhook.curl"
  fi
  install_id_record "${COOP_ALERT_DIR}/install.id"
  local where=()
  [[ -z "${COOP_ALERT_EMAIL_TO}" ]] || where+=("e-mail to ${COOP_ALERT_EMAIL_TO} through ${COOP_ALERT_SMTP_URL}")
  [[ -z "${WEBHOOK_URL}" ]] || where+=("a webhook")
  if ((${#where[@]} == 0)); then
    log_warn "no alert destination given: alerts only reach this host's journal"
  else
    log_info "alerts go to: $(IFS=';' && printf '%s' "${where[*]}")"
  fi
  if [[ -n "${COOP_CHECK_UPSTREAM_REPO}" ]]; then
    log_info "the daily check tells a security release of ${COOP_CHECK_UPSTREAM_REPO} missed for more than ${COOP_CHECK_SECURITY_GRACE_HOURS} h (releases from ${COOP_CHECK_RELEASES_API})"
  fi
}

# What the units run, where they run it from: install-backup.sh installs the same scripts, but a host
# without backups (alpha's) has only this install. The whole folder: check.sh runs status.sh and its libraries.
install_alert_scripts() {
  [[ -n "${COOP_SCRIPTS_FROM:-}" ]] || return 0
  install_scripts_from "${COOP_SCRIPTS_FROM}" "${COOP_SCRIPTS_DIR}" install-alerts.sh
}

install_units() {
  render_alert_unit "${COOP_SCRIPTS_DIR}" | put_file "${COOP_SYSTEMD_DIR}/coop-alert@.service" 0644 root root
  render_check_service "${COOP_SCRIPTS_DIR}" | put_file "${COOP_SYSTEMD_DIR}/coop-check.service" 0644 root root
  render_check_timer "${COOP_CHECK_AT}" | put_file "${COOP_SYSTEMD_DIR}/coop-check.timer" 0644 root root
  # Certificate renewal is Debian's certbot.timer: a drop-in names the alert unit in its OnFailure=.
  printf '# Managed by install-alerts.sh: a failed renewal tells the operators.\n[Unit]\nOnFailure=coop-alert@%%n.service\n' |
    put_file "${COOP_SYSTEMD_DIR}/certbot.service.d/coop-alert.conf" 0644 root root
  if [[ "${COOP_SKIP_SYSTEMCTL:-}" == 1 ]]; then
    log_warn "COOP_SKIP_SYSTEMCTL=1: not reloading systemd, not enabling coop-check.timer"
  else
    systemctl daemon-reload
    systemctl enable --now coop-check.timer
  fi
}

uninstall_alerts() {
  COOP_ALERT_DIR="${COOP_ALERT_DIR:-/etc/coop/alerts}"
  COOP_SYSTEMD_DIR="${COOP_SYSTEMD_DIR:-/etc/systemd/system}"
  unset COOP_ALERT_SMTP_PASSWORD COOP_ALERT_WEBHOOK_URL
  install_id_superseded "${COOP_ALERT_DIR}/install.id" && return 0
  if [[ -e "${COOP_SYSTEMD_DIR}/coop-check.timer" ]]; then
    if [[ "${COOP_SKIP_SYSTEMCTL:-}" == 1 ]]; then
      log_warn "COOP_SKIP_SYSTEMCTL=1: not stopping coop-check.timer"
    else
      systemctl disable --now coop-check.timer
    fi
  fi
  rm -f "${COOP_SYSTEMD_DIR}/coop-check.timer" "${COOP_SYSTEMD_DIR}/coop-check.service" "${COOP_SYSTEMD_DIR}/certbot.service.d/coop-alert.conf"
  [[ "${COOP_SKIP_SYSTEMCTL:-}" == 1 ]] || systemctl daemon-reload
  rm -f "${COOP_ALERT_DIR}/alert.env" "${COOP_ALERT_DIR}/smtp.curl" "${COOP_ALERT_DIR}/webhook.curl" "${COOP_ALERT_DIR}/install.id"
  log_info "alert destinations and the daily check removed: alerts now only reach this host's journal"
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
  # alert.sh sends with curl; check.sh and status.sh read JSON with jq and certificates with openssl.
  install_missing curl jq openssl
  write_destinations
  install_alert_scripts
  install_units
  run_finish
}

main "$@"
