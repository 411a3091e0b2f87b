# shellcheck shell=bash
# Helpers of install-backup.sh (sourced after common.sh): the renderers of the pgBackRest configs, the
# backup environment file and the systemd units. Renderers print to stdout and never log; the secrets
# they print go only into files written by common.sh's put_file with a private mode.

# A value for a systemd EnvironmentFile that bash can also source: double quotes, with \ " $ ` escaped.
env_quote() {
  local v="$1"
  [[ "${v}" != *$'\n'* ]] || die "an environment value contains a newline; refusing to write it"
  v=${v//\\/\\\\}
  v=${v//\"/\\\"}
  v=${v//\$/\\\$}
  v=${v//\`/\\\`}
  printf '"%s"' "${v}"
}

env_line() { printf '%s=%s\n' "$1" "$(env_quote "$2")"; }

# The S3 repository as repo2 of pgBackRest, for either side; nothing when S3 is not configured.
render_pgbr_s3() {
  [[ -n "${COOP_S3_ENDPOINT}" ]] || return 0
  local host="${COOP_S3_ENDPOINT#https://}" port=""
  host="${host%%/*}"
  if [[ "${host}" == *:* ]]; then
    port="${host##*:}"
    host="${host%:*}"
  fi
  printf '%s\n' \
    "repo2-type=s3" \
    "repo2-path=/pgbackrest" \
    "repo2-s3-endpoint=${host}" \
    "repo2-s3-bucket=${COOP_S3_BUCKET}" \
    "repo2-s3-region=${COOP_S3_REGION}" \
    "repo2-s3-key=${COOP_S3_ACCESS_KEY_ID}" \
    "repo2-s3-key-secret=${S3_SECRET}" \
    "repo2-s3-uri-style=path" \
    "repo2-cipher-type=aes-256-cbc" \
    "repo2-cipher-pass=${CIPHER_PASS}" \
    "repo2-retention-full=${COOP_RETENTION_FULL}"
  [[ -z "${port}" ]] || printf 'repo2-storage-port=%s\n' "${port}"
  [[ -z "${S3_CA_PEM}" ]] || printf 'repo2-storage-ca-file=%s\n' "${S3_CA_FILE}"
}

render_pg_section() {
  printf '%s\n' "[${COOP_STANZA}]" \
    "pg1-path=${COOP_PG_DATA}" \
    "pg1-port=${COOP_PG_PORT}" \
    "pg1-socket-path=${COOP_PG_SOCKET}"
}

# Options both sides share. lz4: restores are CPU-bound on small hosts and lz4 restored fastest of
# gz/zst/lz4/none (docs/bench-ttr.md).
render_pgbr_common() {
  printf '%s\n' \
    "log-path=${COOP_BACKUP_HOME}/log" \
    "log-level-console=warn" \
    "log-level-file=info" \
    "compress-type=lz4"
}

# Database side: WAL goes to the repository host over SSH (it holds repo1's passphrase), and straight
# to S3 when configured (which needs repo2's passphrase here).
render_pgbr_db() {
  printf '%s\n' "# Managed by install-backup.sh (database side); edits are overwritten." "[global]" \
    "repo1-host=${COOP_PEER_HOST}" \
    "repo1-host-port=${COOP_PEER_SSH_PORT}" \
    "repo1-host-user=${COOP_REPO_OS_USER}" \
    "repo1-host-config=${PGBR_CONFIG}" \
    "cmd-ssh=${SSH_WRAPPER}" \
    "archive-async=y" \
    "spool-path=${COOP_BACKUP_HOME}/spool" \
    "lock-path=${COOP_BACKUP_HOME}/lock"
  render_pgbr_common
  render_pgbr_s3
  printf '\n'
  render_pg_section
}

# Repository side: repo1 is local and encrypted; backups pull from the database host over SSH.
render_pgbr_repo() {
  printf '%s\n' "# Managed by install-backup.sh (repository side); edits are overwritten." "[global]" \
    "repo1-path=${COOP_REPO_PATH}" \
    "repo1-cipher-type=aes-256-cbc" \
    "repo1-cipher-pass=${CIPHER_PASS}" \
    "repo1-retention-full=${COOP_RETENTION_FULL}" \
    "cmd-ssh=${SSH_WRAPPER}" \
    "start-fast=y" \
    "process-max=2" \
    "lock-path=${COOP_BACKUP_HOME}/lock"
  render_pgbr_common
  render_pgbr_s3
  printf '\n'
  render_pg_section
  printf '%s\n' \
    "pg1-host=${COOP_PEER_HOST}" \
    "pg1-host-port=${COOP_PEER_SSH_PORT}" \
    "pg1-host-user=${COOP_PG_OS_USER}" \
    "pg1-host-config=${PGBR_CONFIG}"
}

# The drill restores on the repository host itself: the same repository read locally, without
# pg1-host (pgBackRest restores only where it sees the cluster as local), with its own lock and log.
render_pgbr_drill() {
  printf '%s\n' "# Managed by install-backup.sh (restore drill on the repository host); edits are overwritten." "[global]" \
    "repo1-path=${COOP_REPO_PATH}" \
    "repo1-cipher-type=aes-256-cbc" \
    "repo1-cipher-pass=${CIPHER_PASS}" \
    "lock-path=${COOP_BACKUP_HOME}/drill-lock" \
    "log-path=${COOP_BACKUP_HOME}/drill-log" \
    "spool-path=${COOP_BACKUP_HOME}/drill-spool" \
    "log-level-console=warn" \
    "log-level-file=info"
  printf '\n'
  render_pg_section
}

restic_repos_for_role() {
  local -a repos
  if [[ "${COOP_BACKUP_ROLE}" == db ]]; then
    repos=("sftp:${COOP_REPO_OS_USER}@${COOP_PEER_HOST}:${COOP_RESTIC_REPO_PATH}")
  else
    repos=("${COOP_RESTIC_REPO_PATH}")
  fi
  [[ -z "${COOP_S3_ENDPOINT}" ]] || repos+=("s3:${COOP_S3_ENDPOINT%/}/${COOP_S3_BUCKET}/restic")
  printf '%s' "${repos[*]}"
}

# What backup.sh (db side) and drill.sh (repository side) read, via the units' EnvironmentFile.
# The stanza and the cluster, as every backup environment file (install-reader.sh's too) starts.
render_pg_env() {
  env_line COOP_STANZA "${COOP_STANZA}"
  env_line COOP_PG_OS_USER "${COOP_PG_OS_USER}"
  env_line COOP_PG_BIN "/usr/lib/postgresql/${COOP_PG_VERSION}/bin"
  env_line COOP_PG_SOCKET "${COOP_PG_SOCKET}"
  env_line COOP_PG_PORT "${COOP_PG_PORT}"
  env_line COOP_DB_NAME "${COOP_DB_NAME}"
}

render_backup_env() {
  printf '# Managed by install-backup.sh (%s side); read by the coop-backup and coop-drill units.\n' "${COOP_BACKUP_ROLE}"
  render_pg_env
  env_line COOP_RESTIC_REPOS "$(restic_repos_for_role)"
  env_line COOP_RESTIC_PASSWORD_FILE "${RESTIC_PASSWORD_FILE}"
  if [[ "${COOP_BACKUP_ROLE}" == db ]]; then
    env_line COOP_PGBACKREST_CONFIG "${PGBR_CONFIG}"
    env_line COOP_REPO_SSH "${COOP_REPO_OS_USER}@${COOP_PEER_HOST}:${COOP_PEER_SSH_PORT}"
    env_line COOP_REPO_SSH_COMMAND "${SSH_WRAPPER}"
    env_line COOP_REPO_CONFIG "${PGBR_CONFIG}"
    env_line COOP_RESTIC_SFTP_COMMAND "${SSH_WRAPPER} -p ${COOP_PEER_SSH_PORT} ${COOP_REPO_OS_USER}@${COOP_PEER_HOST} -s sftp"
  else
    env_line COOP_PGBACKREST_CONFIG "${PGBR_DRILL_CONFIG}"
    env_line COOP_REPO_SSH ""
  fi
  if [[ -n "${COOP_S3_ENDPOINT}" ]]; then
    env_line COOP_PGBACKREST_REPOS "1 2"
    env_line AWS_ACCESS_KEY_ID "${COOP_S3_ACCESS_KEY_ID}"
    env_line AWS_SECRET_ACCESS_KEY "${S3_SECRET}"
    env_line AWS_DEFAULT_REGION "${COOP_S3_REGION}"
    # restic 0.14 has --cacert but no variable for it; Go reads SSL_CERT_FILE instead of the system's
    # bundle file (and still /etc/ssl/certs). curl, which the alerts use with this file, ignores it.
    [[ -z "${S3_CA_PEM}" ]] || env_line SSL_CERT_FILE "${S3_CA_FILE}"
  fi
}

# render_service NAME DESCRIPTION SCRIPT TIMEOUT [EXTRA_ENV] [AFTER]: a failure starts
# coop-alert@<this unit>.service, which tells the operators (alert.sh, install-alerts.sh).
render_service() {
  local name="$1" description="$2" script="$3" timeout="$4" extra_env="${5:-}" after="${6:-}"
  printf '%s\n' "# Managed by install-backup.sh; edits are overwritten." "[Unit]" \
    "Description=${description}" \
    "Documentation=file://${COOP_SCRIPTS_DIR}/${script}" \
    "Wants=network-online.target" \
    "After=network-online.target${after:+ ${after}}" \
    "OnFailure=coop-alert@%n.service" \
    "" "[Service]" \
    "Type=oneshot" \
    "EnvironmentFile=${ENV_FILE}"
  [[ -z "${extra_env}" ]] || printf 'Environment=%s\n' "${extra_env}"
  printf '%s\n' \
    "ExecStart=${COOP_SCRIPTS_DIR}/${script}" \
    "TimeoutStartSec=${timeout}" \
    "Nice=10" \
    "IOSchedulingClass=best-effort" \
    "IOSchedulingPriority=7" \
    "SyslogIdentifier=${name}"
}

# render_timer DESCRIPTION ON_CALENDAR
render_timer() {
  printf '%s\n' "# Managed by install-backup.sh; edits are overwritten." "[Unit]" \
    "Description=$1" \
    "" "[Timer]" \
    "OnCalendar=$2" \
    "Persistent=true" \
    "RandomizedDelaySec=5min" \
    "" "[Install]" \
    "WantedBy=timers.target"
}

# "03:15" and a day-of-month step N: full backups on days 1, 1+N, 1+2N... of every month, so two
# fulls are never more than N days apart (the month boundary only shortens the gap).
full_calendar() { printf '*-*-1/%s %s:00 UTC' "$1" "$2"; }
daily_calendar() { printf '*-*-* %s:00 UTC' "$1"; }
