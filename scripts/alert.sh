#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Tells the operators that something on this host needs a person, from the host itself (their laptops
# may be off): an e-mail through the instance's SMTP server (curl speaks SMTP) and/or a post to a webhook
# (a Matrix or chat room), at most once per problem, destination and UTC day, so a unit failing every
# hour is one message a day, not a flood. The destinations and their secrets are files install-alerts.sh
# writes, root only; no secret reaches a command line, the log or the message.
#
#   alert.sh unit-failed UNIT    what OnFailure= runs (coop-alert@UNIT.service): the unit, its last log
#                                lines and the runbook section to follow
#   alert.sh send KEY SUMMARY    any other problem (KEY names it for the once-a-day rule); details on stdin
#   alert.sh --help
#
# Environment:
#   COOP_ALERT_DIR [/etc/coop/alerts]            alert.env, smtp.curl, webhook.curl (install-alerts.sh)
#   COOP_ALERT_STATE_DIR [/var/lib/coop/alerts]  when each problem was last told, per destination
#   COOP_ALERT_JOURNAL_LINES [30]                log lines of a failed unit put in the message
# Exit status: 0 when every configured destination was told (or had been today), or none is configured
# (a warning in the journal says so); 1 when a destination could not be told (a later run retries it).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/alerts.sh
source "${SCRIPT_DIR}/lib/alerts.sh"

readonly USAGE="usage: alert.sh unit-failed UNIT | alert.sh send KEY SUMMARY (details on stdin) | alert.sh --help"

# tell_once CHANNEL KEY SENDER...: runs SENDER unless CHANNEL was told about KEY today; records success.
tell_once() {
  local channel="$1" key="$2"
  shift 2
  local mark today
  mark="${COOP_ALERT_STATE_DIR}/${key}.${channel}"
  today=$(date -u +%F)
  if [[ -f "${mark}" && "$(<"${mark}")" == "${today}" ]]; then
    log_info "${channel}: already told about ${key} today; not again before tomorrow (UTC)"
    return 0
  fi
  if ! "$@"; then
    log_error "${channel}: could not tell about ${key}; the next alert of it tries again"
    return 1
  fi
  printf '%s\n' "${today}" | put_file "${mark}" 0644 root root >/dev/null 2>&1
  log_info "${channel}: told about ${key}"
}

# alert KEY SUMMARY RUNBOOK: tells every destination; the details come on stdin.
alert() {
  local key="$1" runbook="$3" failed=0 channels=0 summary
  # One line, short: it becomes the e-mail's Subject (a line break there would start a header) and the
  # webhook's summary. The whole text is in the details.
  summary=$(printf '%s' "$2" | tr '\r\n' '  ' | cut -c1-200)
  mkdir -p "${COOP_ALERT_STATE_DIR}"
  local message="${COOP_ALERT_STATE_DIR}/.message.${key}"
  alert_message "${summary}" "${runbook}" >"${message}"
  if [[ -n "${COOP_ALERT_EMAIL_TO:-}" ]]; then
    channels=$((channels + 1))
    tell_once email "${key}" alert_email "${summary}" "${message}" || failed=1
  fi
  if [[ -f "${COOP_ALERT_DIR}/webhook.curl" ]]; then
    channels=$((channels + 1))
    tell_once webhook "${key}" alert_webhook "${key}" "${summary}" "${runbook}" "${message}" || failed=1
  fi
  rm -f "${message}"
  if ((channels == 0)); then
    log_warn "no alert destination is configured (stack config alerts): nobody was told: ${summary}"
  fi
  return "${failed}"
}

unit_failed() {
  local unit="$1"
  [[ "${unit}" =~ ^[A-Za-z0-9@._:-]+$ ]] || die "unit-failed: '${unit}' is not a systemd unit name"
  {
    printf 'The unit %s failed on %s.\n\nIts last log lines:\n' "${unit}" "$(alert_host)"
    if command -v journalctl >/dev/null 2>&1; then
      journalctl -u "${unit}" -n "${COOP_ALERT_JOURNAL_LINES}" --no-pager -o short-iso 2>&1 || true
    else
      printf '(no journal on this host)\n'
    fi
  } | alert "$(alert_key "${unit}")" "${unit} failed" "$(alert_runbook "${unit}")"
}

send() {
  local key
  key=$(alert_key "$1")
  alert "${key}" "$2" "$(alert_runbook "${key}")"
}

main() {
  case "${1:-}" in
    --help | -h)
      printf '%s\n' "${USAGE}"
      return 0
      ;;
    unit-failed)
      (($# == 2)) || die "${USAGE}"
      alerts_env
      unit_failed "$2"
      ;;
    send)
      (($# == 3)) || die "${USAGE}"
      alerts_env
      send "$2" "$3"
      ;;
    *) die "${USAGE}" ;;
  esac
}

main "$@"
