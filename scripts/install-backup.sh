#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Installs the backup machinery on one host. The database host (COOP_BACKUP_ROLE=db) archives WAL
# continuously and runs backup.sh from timers (daily differential, full every N days); the repository
# host (COOP_BACKUP_ROLE=repo) holds the pgBackRest and restic repositories and runs drill.sh daily.
# Idempotent: every file is written only when it differs, so a re-run (also after a kill) converges.
# Secrets arrive in the environment and go only into root- or backup-user-only files; never to logs,
# stdout or a command line. Stdout carries only this host's public keys for the other host to trust.
#
# Environment (defaults in brackets):
#   COOP_BACKUP_ROLE             db | repo
#   COOP_PEER_HOST               address of the other host (repository host for db, database host for repo)
#   COOP_PEER_SSH_PORT [22]
#   COOP_PEER_PUBLIC_KEY         the other host's backup user key (empty on the first pass: not yet known)
#   COOP_PEER_HOST_KEY           the other host's SSH host key, `type base64`, for known_hosts
#   COOP_RESTIC_PASSWORD  COOP_PGBACKREST_CIPHER_PASS   secrets
#   COOP_S3_ENDPOINT COOP_S3_BUCKET COOP_S3_REGION COOP_S3_ACCESS_KEY_ID COOP_S3_SECRET_ACCESS_KEY  (all or none)
#                                the endpoint is https://host or https://host:port
#   COOP_S3_CA_CERT_B64          an endpoint with a private CA (a self-hosted MinIO): that CA's PEM, base64;
#                                pgBackRest and restic then trust it alone for S3
#   COOP_STANZA [main]  COOP_PG_VERSION [15]  COOP_PG_DATA [/var/lib/postgresql/<version>/main]
#   COOP_PG_PORT [5432]  COOP_PG_SOCKET [/var/run/postgresql]  COOP_DB_NAME [mastodon_production]
#   COOP_PG_OS_USER [postgres]  COOP_REPO_OS_USER [coop-backup]  COOP_BACKUP_HOME [/var/lib/coop-backup]
#   COOP_REPO_PATH [/srv/backup/pgbackrest]  COOP_RESTIC_REPO_PATH [/srv/backup/restic]
#   COOP_RETENTION_FULL [4]  COOP_FULL_EVERY_DAYS [7]  COOP_BACKUP_AT [03:15]  COOP_DRILL_AT [05:30]  (UTC)
#   COOP_SCRIPTS_FROM            uploaded scripts folder to install (empty: scripts are already in place)
#   COOP_SCRIPTS_DIR [/opt/coop/scripts]   where the units find backup.sh and drill.sh
#   COOP_METRICS_LISTEN [127.0.0.1:9100]  where prometheus-node-exporter serves this host's metrics and the
#                                backup's and drill's (a loopback or private address: lib/node-exporter.sh)
#   COOP_INSTALL_ID              which install this is (the Backup component's command inputs), recorded
#                                so that the delete of a replaced install leaves its replacement alone
#   For tests: COOP_ETC_DIR [/etc]  COOP_SYSTEMD_DIR [/etc/systemd/system]  COOP_SKIP_APT  COOP_SKIP_SYSTEMCTL
#   (also skips sshd reload and PostgreSQL)  COOP_STATE_DIR (common.sh)
#
# install-backup.sh --uninstall: stops, disables and removes this host's coop backup/drill timers and
# units, removes the sshd drop-in, stops WAL archiving (db) and node_exporter; keeps repositories, keys and configs.
# Needs only COOP_ETC_DIR, COOP_SYSTEMD_DIR, COOP_BACKUP_ROLE, COOP_INSTALL_ID and the COOP_PG_* above.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/backup-install.sh
source "${SCRIPT_DIR}/lib/backup-install.sh"
# shellcheck source=lib/backup-ssh.sh
source "${SCRIPT_DIR}/lib/backup-ssh.sh"
# shellcheck source=lib/backup-uninstall.sh
source "${SCRIPT_DIR}/lib/backup-uninstall.sh"
# shellcheck source=lib/alerts.sh
source "${SCRIPT_DIR}/lib/alerts.sh"
# shellcheck source=lib/node-exporter.sh
source "${SCRIPT_DIR}/lib/node-exporter.sh"

# Secrets, moved out of the environment so no child process (apt, ssh-keygen, psql) inherits them.
RESTIC_PASSWORD=""
CIPHER_PASS=""
S3_SECRET=""

install_env() {
  require_env COOP_BACKUP_ROLE COOP_PEER_HOST COOP_RESTIC_PASSWORD COOP_PGBACKREST_CIPHER_PASS
  [[ "${COOP_BACKUP_ROLE}" =~ ^(db|repo)$ ]] || die "COOP_BACKUP_ROLE must be db or repo (found '${COOP_BACKUP_ROLE}')"
  COOP_PEER_SSH_PORT="${COOP_PEER_SSH_PORT:-22}"
  COOP_PEER_PUBLIC_KEY="${COOP_PEER_PUBLIC_KEY:-}"
  COOP_PEER_HOST_KEY="${COOP_PEER_HOST_KEY:-}"
  COOP_STANZA="${COOP_STANZA:-main}"
  COOP_PG_VERSION="${COOP_PG_VERSION:-15}"
  COOP_PG_DATA="${COOP_PG_DATA:-/var/lib/postgresql/${COOP_PG_VERSION}/main}"
  COOP_PG_PORT="${COOP_PG_PORT:-5432}"
  COOP_PG_SOCKET="${COOP_PG_SOCKET:-/var/run/postgresql}"
  COOP_DB_NAME="${COOP_DB_NAME:-mastodon_production}"
  COOP_PG_OS_USER="${COOP_PG_OS_USER:-postgres}"
  COOP_REPO_OS_USER="${COOP_REPO_OS_USER:-coop-backup}"
  COOP_BACKUP_HOME="${COOP_BACKUP_HOME:-/var/lib/coop-backup}"
  COOP_REPO_PATH="${COOP_REPO_PATH:-/srv/backup/pgbackrest}"
  COOP_RESTIC_REPO_PATH="${COOP_RESTIC_REPO_PATH:-/srv/backup/restic}"
  COOP_RETENTION_FULL="${COOP_RETENTION_FULL:-4}"
  COOP_FULL_EVERY_DAYS="${COOP_FULL_EVERY_DAYS:-7}"
  COOP_BACKUP_AT="${COOP_BACKUP_AT:-03:15}"
  COOP_DRILL_AT="${COOP_DRILL_AT:-05:30}"
  COOP_SCRIPTS_FROM="${COOP_SCRIPTS_FROM:-}"
  COOP_SCRIPTS_DIR="${COOP_SCRIPTS_DIR:-/opt/coop/scripts}"
  COOP_ETC_DIR="${COOP_ETC_DIR:-/etc}"
  COOP_SYSTEMD_DIR="${COOP_SYSTEMD_DIR:-/etc/systemd/system}"
  COOP_S3_ENDPOINT="${COOP_S3_ENDPOINT:-}"
  node_exporter_env
  local v
  for v in COOP_PEER_SSH_PORT COOP_PG_VERSION COOP_PG_PORT COOP_RETENTION_FULL COOP_FULL_EVERY_DAYS; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "${v} must be a number (found '${!v}')"
  done
  for v in COOP_BACKUP_AT COOP_DRILL_AT; do
    [[ "${!v}" =~ ^([01][0-9]|2[0-3]):[0-5][0-9]$ ]] || die "${v} must be HH:MM (found '${!v}')"
  done
  [[ "${COOP_PEER_HOST}" =~ ^[A-Za-z0-9.:-]+$ ]] || die "COOP_PEER_HOST must be a host name or address (found '${COOP_PEER_HOST}')"
  if [[ -n "${COOP_S3_ENDPOINT}" ]]; then
    require_env COOP_S3_BUCKET COOP_S3_REGION COOP_S3_ACCESS_KEY_ID COOP_S3_SECRET_ACCESS_KEY
    [[ "${COOP_S3_ENDPOINT}" =~ ^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$ ]] ||
      die "COOP_S3_ENDPOINT must be https://host or https://host:port (found '${COOP_S3_ENDPOINT}')"
  fi
  S3_CA_PEM=""
  if [[ -n "${COOP_S3_CA_CERT_B64:-}" ]]; then
    S3_CA_PEM=$(base64 -d <<<"${COOP_S3_CA_CERT_B64}" 2>/dev/null || true)
    [[ "${S3_CA_PEM}" == "-----BEGIN CERTIFICATE-----"* ]] || die "COOP_S3_CA_CERT_B64 is not a base64 PEM certificate"
  fi
  RESTIC_PASSWORD="${COOP_RESTIC_PASSWORD}"
  CIPHER_PASS="${COOP_PGBACKREST_CIPHER_PASS}"
  S3_SECRET="${COOP_S3_SECRET_ACCESS_KEY:-}"
  unset COOP_RESTIC_PASSWORD COOP_PGBACKREST_CIPHER_PASS COOP_S3_SECRET_ACCESS_KEY

  PGBR_CONFIG="${COOP_ETC_DIR}/pgbackrest/pgbackrest.conf"
  PGBR_DRILL_CONFIG="${COOP_ETC_DIR}/pgbackrest/drill.conf"
  ENV_FILE="${COOP_ETC_DIR}/coop/backup.env"
  RESTIC_PASSWORD_FILE="${COOP_ETC_DIR}/coop/restic-password"
  S3_CA_FILE="${COOP_ETC_DIR}/coop/s3-ca.pem"
  SSH_DIR="${COOP_ETC_DIR}/coop/backup-ssh"
  SSH_WRAPPER="${SSH_DIR}/ssh"
  # The OS user that runs pgBackRest and owns the SSH key on this side.
  if [[ "${COOP_BACKUP_ROLE}" == db ]]; then BACKUP_USER="${COOP_PG_OS_USER}"; else BACKUP_USER="${COOP_REPO_OS_USER}"; fi
}

skip_systemctl() { [[ "${COOP_SKIP_SYSTEMCTL:-}" == 1 ]]; }

install_packages() {
  local -a wanted=(pgbackrest restic jq redis-tools openssh-client curl)
  if [[ "${COOP_BACKUP_ROLE}" == repo ]]; then
    # The drill restores into a scratch cluster on the repository host: it needs the server binaries,
    # and no main cluster (the drill and, later, the spare build their own from the repository).
    wanted+=("postgresql-${COOP_PG_VERSION}")
    [[ "${COOP_SKIP_APT:-}" == 1 ]] ||
      printf 'create_main_cluster = false\n' | put_file "${COOP_ETC_DIR}/postgresql-common/createcluster.d/50-coop.conf" 0644 root root
  fi
  install_missing "${wanted[@]}"
}

ensure_users() {
  if [[ "${COOP_BACKUP_ROLE}" == repo ]] && ! id -u "${COOP_REPO_OS_USER}" >/dev/null 2>&1; then
    useradd --system --home-dir "${COOP_BACKUP_HOME}" --shell /bin/bash "${COOP_REPO_OS_USER}"
  fi
  id -u "${COOP_PG_OS_USER}" >/dev/null 2>&1 ||
    die "no OS user ${COOP_PG_OS_USER}: install PostgreSQL ${COOP_PG_VERSION} on this host first"
  # On the repository host the drill runs pgBackRest as the PostgreSQL user: it reads the repository by group.
  if [[ "${COOP_BACKUP_ROLE}" == repo ]] && ! id -nG "${COOP_PG_OS_USER}" | tr ' ' '\n' | grep -qx "${COOP_REPO_OS_USER}"; then
    usermod -a -G "${COOP_REPO_OS_USER}" "${COOP_PG_OS_USER}"
  fi
  local d
  for d in "${COOP_BACKUP_HOME}" "${COOP_BACKUP_HOME}/lock" "${COOP_BACKUP_HOME}/log" "${COOP_BACKUP_HOME}/spool"; do
    install -d -m 0750 -o "${BACKUP_USER}" -g "${BACKUP_USER}" "${d}"
  done
  if [[ "${COOP_BACKUP_ROLE}" == repo ]]; then
    for d in "${COOP_REPO_PATH}" "${COOP_RESTIC_REPO_PATH}"; do
      install -d -m 0750 -o "${COOP_REPO_OS_USER}" -g "${COOP_REPO_OS_USER}" "${d}"
    done
    for d in "${COOP_BACKUP_HOME}/drill-lock" "${COOP_BACKUP_HOME}/drill-log" "${COOP_BACKUP_HOME}/drill-spool"; do
      install -d -m 0750 -o "${COOP_PG_OS_USER}" -g "${COOP_PG_OS_USER}" "${d}"
    done
  fi
}

install_scripts() {
  [[ -n "${COOP_SCRIPTS_FROM}" ]] || return 0
  install_scripts_from "${COOP_SCRIPTS_FROM}" "${COOP_SCRIPTS_DIR}" install-backup.sh
}

write_configs() {
  local group="${BACKUP_USER}"
  # Written before the configs that name it and removed after those that no longer do: a run killed
  # between the two never leaves a config pointing at no CA file.
  [[ -z "${S3_CA_PEM}" ]] || printf '%s\n' "${S3_CA_PEM}" | put_file "${S3_CA_FILE}" 0644 root root
  if [[ "${COOP_BACKUP_ROLE}" == db ]]; then
    render_pgbr_db | put_file "${PGBR_CONFIG}" 0640 root "${group}"
  else
    render_pgbr_repo | put_file "${PGBR_CONFIG}" 0640 root "${group}"
    render_pgbr_drill | put_file "${PGBR_DRILL_CONFIG}" 0640 root "${COOP_PG_OS_USER}"
  fi
  printf '%s' "${RESTIC_PASSWORD}" | put_file "${RESTIC_PASSWORD_FILE}" 0600 root root
  render_backup_env | put_file "${ENV_FILE}" 0600 root root
  [[ -n "${S3_CA_PEM}" ]] || rm -f "${S3_CA_FILE}"
}

write_units() {
  local d="${COOP_SYSTEMD_DIR}"
  if [[ "${COOP_BACKUP_ROLE}" == db ]]; then
    render_service coop-backup-full "social.coop backup (full)" backup.sh 12h COOP_BACKUP_TYPE=full | put_file "${d}/coop-backup-full.service" 0644 root root
    render_timer "social.coop full backup every ${COOP_FULL_EVERY_DAYS} days" "$(full_calendar "${COOP_FULL_EVERY_DAYS}" "${COOP_BACKUP_AT}")" |
      put_file "${d}/coop-backup-full.timer" 0644 root root
    # On a full day both timers fire together; the differential then waits for the full (ordering).
    render_service coop-backup "social.coop backup (differential)" backup.sh 6h COOP_BACKUP_TYPE=diff "postgresql.service coop-backup-full.service" |
      put_file "${d}/coop-backup.service" 0644 root root
    render_timer "social.coop daily differential backup" "$(daily_calendar "${COOP_BACKUP_AT}")" | put_file "${d}/coop-backup.timer" 0644 root root
  else
    render_service coop-drill "social.coop restore drill" drill.sh 6h | put_file "${d}/coop-drill.service" 0644 root root
    render_timer "social.coop daily restore drill" "$(daily_calendar "${COOP_DRILL_AT}")" | put_file "${d}/coop-drill.timer" 0644 root root
  fi
  # What the units' OnFailure= starts; where it sends is install-alerts.sh's (until then, the journal).
  render_alert_unit "${COOP_SCRIPTS_DIR}" | put_file "${d}/coop-alert@.service" 0644 root root
  install_id_record "$(install_id_file)"
}

enable_units() {
  local -a timers=(coop-drill.timer)
  [[ "${COOP_BACKUP_ROLE}" == db ]] && timers=(coop-backup.timer coop-backup-full.timer)
  if skip_systemctl; then
    log_warn "COOP_SKIP_SYSTEMCTL=1: not reloading systemd or sshd, not enabling ${timers[*]}"
    return 0
  fi
  # Unconditional: after a kill the step that wrote the files may have finished in the earlier run.
  systemctl daemon-reload
  systemctl enable --now "${timers[@]}"
  sshd -t || die "sshd rejects its config with ${COOP_ETC_DIR}/ssh/sshd_config.d/60-coop-backup.conf"
  systemctl reload ssh
}

# WAL archiving is continuous through archive_command; archive_mode itself takes effect only on restart.
configure_archiving() {
  [[ "${COOP_BACKUP_ROLE}" == db ]] || return 0
  local cmd="pgbackrest --config=${PGBR_CONFIG} --stanza=${COOP_STANZA} archive-push %p"
  local -a psql=(runuser -u "${COOP_PG_OS_USER}" -- "/usr/lib/postgresql/${COOP_PG_VERSION}/bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "${COOP_PG_SOCKET}" -p "${COOP_PG_PORT}" -d postgres)
  if skip_systemctl || ! "${psql[@]}" -c 'select 1' >/dev/null 2>&1; then
    log_warn "WAL archiving NOT configured: PostgreSQL is not reachable on ${COOP_PG_SOCKET}:${COOP_PG_PORT}; re-run once it runs"
    return 0
  fi
  local mode current
  mode=$("${psql[@]}" -c 'show archive_mode')
  current=$("${psql[@]}" -c 'show archive_command')
  if [[ "${current}" != "${cmd}" ]]; then
    "${psql[@]}" -v cmd="${cmd}" <<<"alter system set archive_command = :'cmd'; select pg_reload_conf();" >/dev/null
    log_info "archive_command set and reloaded"
  fi
  if [[ "${mode}" != on ]]; then
    "${psql[@]}" <<<"alter system set archive_mode = on;" >/dev/null
    log_warn "archive_mode is '${mode}' until PostgreSQL restarts: restart it (systemctl restart postgresql@${COOP_PG_VERSION}-main) to start WAL archiving"
  fi
}

main() {
  if [[ "${1:-}" == --uninstall ]]; then
    uninstall_backup
    return 0
  fi
  (($# == 0)) || die "unknown argument '$1': install-backup.sh takes none, or --uninstall"
  install_env
  # Every run starts from the first step: all steps are idempotent, and a resumed run could skip a
  # step that an earlier run did with other inputs (the second pass adds the other host's key).
  run_begin install-backup "${COOP_BACKUP_ROLE}-$(date +%s%N)"
  steps_total 9
  step packages install_packages
  step users ensure_users
  step scripts install_scripts
  step ssh ssh_trust
  step configs write_configs
  step units write_units
  step enable enable_units
  step archiving configure_archiving
  step metrics node_exporter_install
  run_finish
  print_keys
}

main "$@"
