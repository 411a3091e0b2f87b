# shellcheck shell=bash
# Alerts from the host (sourced after common.sh by alert.sh and install-alerts.sh): where they go, what
# they say, how they are sent, and the files and unit that install-alerts.sh renders. Secrets live only in
# curl config files (read with -K, so never on a command line): smtp.curl holds the SMTP login, webhook.curl
# the webhook's URL (its token is in it).

alerts_env() {
  COOP_ALERT_DIR="${COOP_ALERT_DIR:-/etc/coop/alerts}"
  COOP_ALERT_STATE_DIR="${COOP_ALERT_STATE_DIR:-/var/lib/coop/alerts}"
  COOP_ALERT_JOURNAL_LINES="${COOP_ALERT_JOURNAL_LINES:-30}"
  [[ "${COOP_ALERT_JOURNAL_LINES}" =~ ^[0-9]+$ ]] || die "COOP_ALERT_JOURNAL_LINES must be a number (found '${COOP_ALERT_JOURNAL_LINES}')"
  # Destinations come from alert.env only: one left in the environment must not send anything.
  unset COOP_ALERT_STACK COOP_ALERT_EMAIL_TO COOP_ALERT_EMAIL_FROM COOP_ALERT_SMTP_URL COOP_ALERT_SMTP_STARTTLS
  if [[ -f "${COOP_ALERT_DIR}/alert.env" ]]; then
    # shellcheck source=/dev/null # written by install-alerts.sh (render_alert_env): names and addresses only
    source "${COOP_ALERT_DIR}/alert.env"
  fi
  COOP_ALERT_STACK="${COOP_ALERT_STACK:-}"
  COOP_ALERT_EMAIL_TO="${COOP_ALERT_EMAIL_TO:-}"
}

# check.sh's thresholds (coopctl status's defaults; stack config alerts.* and backup.drillMaxAgeHours).
readonly CHECK_THRESHOLDS=(COOP_CHECK_BACKUP_MAX_AGE_HOURS COOP_CHECK_DRILL_MAX_AGE_HOURS COOP_CHECK_WAL_MAX_LAG_SECONDS
  COOP_CHECK_DISK_MAX_PERCENT COOP_CHECK_CERT_MIN_DAYS COOP_CHECK_SECURITY_GRACE_HOURS)

check_thresholds_env() {
  COOP_CHECK_BACKUP_MAX_AGE_HOURS="${COOP_CHECK_BACKUP_MAX_AGE_HOURS:-26}"
  COOP_CHECK_DRILL_MAX_AGE_HOURS="${COOP_CHECK_DRILL_MAX_AGE_HOURS:-26}"
  COOP_CHECK_WAL_MAX_LAG_SECONDS="${COOP_CHECK_WAL_MAX_LAG_SECONDS:-300}"
  COOP_CHECK_DISK_MAX_PERCENT="${COOP_CHECK_DISK_MAX_PERCENT:-85}"
  COOP_CHECK_CERT_MIN_DAYS="${COOP_CHECK_CERT_MIN_DAYS:-14}"
  COOP_CHECK_SECURITY_GRACE_HOURS="${COOP_CHECK_SECURITY_GRACE_HOURS:-72}"
  local v
  for v in "${CHECK_THRESHOLDS[@]}"; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "${v} must be a whole number (found '${!v}')"
  done
}

readonly DEFAULT_RELEASES_API="https://api.github.com"
readonly UPSTREAM_REPO_RE='^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$'
# No quote, dollar or backslash: alert.env holds it in double quotes.
readonly RELEASES_API_RE='^https?://[][A-Za-z0-9.:/_~%@-]+$'

# upstream_env: the GitHub repository whose releases the deployed app is compared with (empty: no
# comparison; stack config: the app's flavor) and the API that lists them, from the environment or else
# alert.env. status.sh reads them here itself: coopctl status runs it with backup.env alone. Only these two
# names are taken from alert.env (in a subshell), so status.sh still holds no destination.
upstream_env() {
  local file="${COOP_ALERT_DIR:-/etc/coop/alerts}/alert.env"
  local -a from_file=()
  if [[ -r "${file}" ]]; then
    # shellcheck source=/dev/null # written by install-alerts.sh (render_alert_env): names and addresses only
    mapfile -t from_file < <(source "${file}" >/dev/null 2>&1 || true; printf '%s\n' "${COOP_CHECK_UPSTREAM_REPO:-}" "${COOP_CHECK_RELEASES_API:-}")
  fi
  COOP_CHECK_UPSTREAM_REPO="${COOP_CHECK_UPSTREAM_REPO:-${from_file[0]:-}}"
  COOP_CHECK_RELEASES_API="${COOP_CHECK_RELEASES_API:-${from_file[1]:-${DEFAULT_RELEASES_API}}}"
}

# upstream_env_problem: what is wrong with upstream_env's two settings, or nothing.
upstream_env_problem() {
  if [[ -n "${COOP_CHECK_UPSTREAM_REPO}" && ! "${COOP_CHECK_UPSTREAM_REPO}" =~ ${UPSTREAM_REPO_RE} ]]; then
    printf "COOP_CHECK_UPSTREAM_REPO must be a GitHub owner/name like mastodon/mastodon (found '%s')" "${COOP_CHECK_UPSTREAM_REPO}"
  elif [[ ! "${COOP_CHECK_RELEASES_API}" =~ ${RELEASES_API_RE} ]]; then
    printf "COOP_CHECK_RELEASES_API must be an http(s) URL like %s (found '%s')" "${DEFAULT_RELEASES_API}" "${COOP_CHECK_RELEASES_API}"
  fi
}

# A problem's name as a file name: the once-a-day rule counts per name.
alert_key() { printf '%s' "$1" | tr -c 'A-Za-z0-9@._-' '_' | sed 's/^[._]*//'; }

alert_host() { printf '%s' "${COOP_ALERT_HOST:-$(hostname -f 2>/dev/null || hostname)}"; }

# The runbook section for a problem (a unit's name, or check.sh's key), as a path in the repository.
alert_runbook() {
  case "$1" in
    coop-drill* | drill-*) printf 'docs/runbooks/alerts.md#a-restore-drill-failed' ;;
    coop-backup* | backup-*) printf 'docs/runbooks/alerts.md#a-backup-failed' ;;
    wal-*) printf 'docs/runbooks/alerts.md#wal-archiving-is-off-failing-or-late' ;;
    disk-*) printf 'docs/runbooks/alerts.md#a-disk-is-filling-up' ;;
    certbot* | coop-cert* | certificate-*) printf 'docs/runbooks/tls.md#renewal' ;;
    security-release*) printf 'docs/runbooks/upgrade.md#a-security-release-is-missed' ;;
    upstream-*) printf 'docs/runbooks/upgrade.md#the-releases-could-not-be-read' ;;
    *) printf 'docs/runbooks/alerts.md#any-other-alert' ;;
  esac
}

# alert_message SUMMARY RUNBOOK: the text every destination gets, the details (stdin) at its end.
alert_message() {
  local where
  where="$(alert_host)${COOP_ALERT_STACK:+ (stack ${COOP_ALERT_STACK})}"
  printf '%s on %s needs a person.\n\nWhat to do: follow %s in the social.coop infrastructure repository.\n\n' "$1" "${where}" "$2"
  cat
}

# curl_config_value VALUE: VALUE as a double-quoted string in a curl config file.
curl_config_value() {
  [[ "$1" != *$'\n'* ]] || die "a value for a curl config file holds a line break"
  local v="${1//\\/\\\\}"
  printf '"%s"' "${v//\"/\\\"}"
}

# alert_email SUMMARY MESSAGE_FILE: one message to every COOP_ALERT_EMAIL_TO address.
alert_email() {
  local summary="$1" body="$2" mail out rc=0
  local -a args=(--silent --show-error --max-time 60 --url "${COOP_ALERT_SMTP_URL}" --mail-from "${COOP_ALERT_EMAIL_FROM}")
  local rcpt
  local -a to=()
  IFS=',' read -r -a to <<<"${COOP_ALERT_EMAIL_TO}"
  for rcpt in "${to[@]}"; do args+=(--mail-rcpt "${rcpt}"); done
  [[ "${COOP_ALERT_SMTP_STARTTLS:-yes}" == yes && "${COOP_ALERT_SMTP_URL}" == smtp://* ]] && args+=(--ssl-reqd)
  [[ -f "${COOP_ALERT_DIR}/smtp.curl" ]] && args+=(--config "${COOP_ALERT_DIR}/smtp.curl")
  mail=$(mktemp)
  {
    printf 'From: social.coop alerts <%s>\r\n' "${COOP_ALERT_EMAIL_FROM}"
    printf 'To: %s\r\n' "${COOP_ALERT_EMAIL_TO//,/, }"
    printf 'Subject: [%s] %s: %s\r\n' "${COOP_ALERT_STACK:-coop}" "$(alert_host)" "${summary}"
    printf 'Date: %s\r\n' "$(date -R)"
    printf 'Message-ID: <%s.%s@%s>\r\n' "$(date -u +%Y%m%dT%H%M%S)" "$$" "$(alert_host)"
    printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
    sed 's/$/\r/' "${body}"
  } >"${mail}"
  out=$(curl "${args[@]}" --upload-file "${mail}" 2>&1) || rc=$?
  rm -f "${mail}"
  ((rc == 0)) || log_error "e-mail through ${COOP_ALERT_SMTP_URL} failed (curl exit ${rc}): $(error_lines "${out}")"
  return "${rc}"
}

# alert_webhook KEY SUMMARY RUNBOOK MESSAGE_FILE: a JSON post; `text` is what Matrix hooks and chats show.
# curl's own message is not logged: it may name the URL, and the URL holds the webhook's token.
alert_webhook() {
  local code rc=0
  code=$(jq -n --arg key "$1" --arg summary "$2" --arg runbook "$3" --rawfile text "$4" --arg host "$(alert_host)" --arg stack "${COOP_ALERT_STACK}" \
    '{text: $text, problem: $key, summary: $summary, host: $host, stack: $stack, runbook: $runbook}' |
    curl --silent --max-time 30 --output /dev/null --write-out '%{http_code}' --config "${COOP_ALERT_DIR}/webhook.curl" \
      --header 'Content-Type: application/json' --data-binary @- 2>/dev/null) || rc=$?
  if ((rc != 0)) || [[ "${code}" != 2?? ]]; then
    log_error "the webhook post failed (curl exit ${rc}, HTTP status ${code:-none})"
    return 1
  fi
}

# --- What install-alerts.sh writes ---

# render_alert_env: alert.env, names and addresses only (the secrets are in the curl config files).
render_alert_env() {
  printf '# Managed by install-alerts.sh; read by alert.sh.\n'
  printf 'COOP_ALERT_STACK=%q\n' "${COOP_ALERT_STACK}"
  printf 'COOP_ALERT_EMAIL_TO=%q\n' "${COOP_ALERT_EMAIL_TO}"
  printf 'COOP_ALERT_EMAIL_FROM=%q\n' "${COOP_ALERT_EMAIL_FROM}"
  printf 'COOP_ALERT_SMTP_URL=%q\n' "${COOP_ALERT_SMTP_URL}"
  printf 'COOP_ALERT_SMTP_STARTTLS=%q\n' "${COOP_ALERT_SMTP_STARTTLS}"
  # check.sh's thresholds and the upstream it compares the app with; one given in a run's environment
  # wins (a one-off check by hand).
  local v
  for v in "${CHECK_THRESHOLDS[@]}" COOP_CHECK_UPSTREAM_REPO COOP_CHECK_RELEASES_API; do
    # shellcheck disable=SC2016 # written for alert.env, where it expands when sourced
    printf '%s="${%s:-%s}"\n' "${v}" "${v}" "${!v}"
  done
}

# render_check_units SCRIPTS_DIR AT: the daily check's service and timer (AT is HH:MM, UTC).
render_check_service() {
  printf '%s\n' "# Managed by install-alerts.sh; edits are overwritten." "[Unit]" \
    "Description=social.coop daily check: what needs a person on this host" \
    "Documentation=file://$1/check.sh" \
    "OnFailure=coop-alert@%n.service" \
    "" "[Service]" \
    "Type=oneshot" \
    "EnvironmentFile=-/etc/coop/backup.env" \
    "ExecStart=$1/check.sh" \
    "SuccessExitStatus=3" \
    "TimeoutStartSec=15min" \
    "SyslogIdentifier=coop-check"
}

render_check_timer() {
  printf '%s\n' "# Managed by install-alerts.sh; edits are overwritten." "[Unit]" \
    "Description=social.coop daily check" \
    "" "[Timer]" \
    "OnCalendar=*-*-* $1:00 UTC" \
    "Persistent=true" \
    "RandomizedDelaySec=5min" \
    "" "[Install]" \
    "WantedBy=timers.target"
}

# render_alert_unit SCRIPTS_DIR: the template OnFailure= names (coop-alert@<failed unit>.service).
render_alert_unit() {
  # A destination that could not be told (the network, the SMTP server) is tried again 10 minutes later,
  # up to 6 times; alert.sh tells each destination once a day, so a retry never repeats one that was told.
  printf '%s\n' "# Managed by install-alerts.sh and install-backup.sh; edits are overwritten." "[Unit]" \
    "Description=social.coop alert: %i failed" \
    "Documentation=file://$1/alert.sh" \
    "Wants=network-online.target" \
    "After=network-online.target" \
    "StartLimitIntervalSec=2h" \
    "StartLimitBurst=6" \
    "" "[Service]" \
    "Type=oneshot" \
    "ExecStart=$1/alert.sh unit-failed %i" \
    "Restart=on-failure" \
    "RestartSec=10min" \
    "TimeoutStartSec=5min" \
    "SyslogIdentifier=coop-alert"
}
