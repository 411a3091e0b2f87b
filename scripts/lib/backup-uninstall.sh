# shellcheck shell=bash
# install-backup.sh --uninstall (sourced after common.sh): what removing the Backup component takes off a
# host, and the record of which install a `pulumi up` made last.
# It stops and disables the coop backup and drill timers and services, removes their unit files and the
# sshd drop-in that lets the other host in, and turns WAL archiving off on the database host. It keeps
# the repositories, the backup user, its keys, the configs and the installed scripts, so a restore by
# hand (docs/runbooks/restore.md) still works and a later install picks everything up again.

readonly BACKUP_UNITS=(coop-backup.timer coop-backup-full.timer coop-drill.timer coop-backup.service coop-backup-full.service coop-drill.service)

# Where the install that a `pulumi up` made last is recorded (install_id_record, common.sh).
install_id_file() { printf '%s/coop/backup-install.id' "${COOP_ETC_DIR}"; }

remove_units() {
  local -a present=()
  local u
  for u in "${BACKUP_UNITS[@]}"; do
    [[ -e "${COOP_SYSTEMD_DIR}/${u}" ]] && present+=("${u}")
  done
  if ((${#present[@]} == 0)); then
    log_info "no coop backup or drill units in ${COOP_SYSTEMD_DIR}"
  elif [[ "${COOP_SKIP_SYSTEMCTL:-}" == 1 ]]; then
    log_warn "COOP_SKIP_SYSTEMCTL=1: not stopping or disabling ${present[*]}"
  else
    # Timers first, so none starts a service between the stop and the removal.
    systemctl disable --now "${present[@]}"
  fi
  for u in "${present[@]}"; do
    rm -f "${COOP_SYSTEMD_DIR}/${u}"
    log_info "removed ${COOP_SYSTEMD_DIR}/${u}"
  done
  # The alert template goes too, unless alerts are installed (install-alerts.sh's destinations): other
  # units (certificate renewal) may name it then.
  if [[ -e "${COOP_SYSTEMD_DIR}/coop-alert@.service" && ! -f "${COOP_ETC_DIR}/coop/alerts/alert.env" ]]; then
    rm -f "${COOP_SYSTEMD_DIR}/coop-alert@.service"
    log_info "removed ${COOP_SYSTEMD_DIR}/coop-alert@.service"
    ((${#present[@]} > 0)) || [[ "${COOP_SKIP_SYSTEMCTL:-}" == 1 ]] || systemctl daemon-reload
  fi
  if ((${#present[@]} > 0)) && [[ "${COOP_SKIP_SYSTEMCTL:-}" != 1 ]]; then
    systemctl daemon-reload
    systemctl reset-failed "${present[@]}" 2>/dev/null || true
  fi
}

remove_sshd_dropin() {
  local dropin="${COOP_ETC_DIR}/ssh/sshd_config.d/60-coop-backup.conf"
  [[ -e "${dropin}" ]] || return 0
  rm -f "${dropin}"
  log_info "removed ${dropin}: the other host's backup user can no longer log in here"
  if [[ "${COOP_SKIP_SYSTEMCTL:-}" == 1 ]]; then
    log_warn "COOP_SKIP_SYSTEMCTL=1: not reloading sshd"
  else
    systemctl reload ssh
  fi
}

# archive_mode is on from the cluster's creation (the Database component owns it), and with it on an
# archive_command that no longer reaches a repository, or an empty one, keeps every WAL segment in
# pg_wal until the disk is full. `true` lets PostgreSQL recycle them; a reinstall sets pgBackRest's again
# (a reload, no restart).
stop_archiving() {
  [[ "${COOP_BACKUP_ROLE}" == db ]] || return 0
  local -a psql=(runuser -u "${COOP_PG_OS_USER}" -- "/usr/lib/postgresql/${COOP_PG_VERSION}/bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "${COOP_PG_SOCKET}" -p "${COOP_PG_PORT}" -d postgres)
  if [[ "${COOP_SKIP_SYSTEMCTL:-}" == 1 ]] || ! "${psql[@]}" -c 'select 1' >/dev/null 2>&1; then
    log_warn "WAL archiving NOT turned off: PostgreSQL is not reachable on ${COOP_PG_SOCKET}:${COOP_PG_PORT}; if it still runs pgbackrest archive-push, run: sudo -u ${COOP_PG_OS_USER} psql -c \"alter system set archive_command = 'true'\" -c 'select pg_reload_conf()'"
    return 0
  fi
  local current
  current=$("${psql[@]}" -c 'show archive_command')
  if [[ "${current}" != *"pgbackrest"*"archive-push"* ]]; then
    log_info "archive_command is not pgBackRest's ('${current}'): left as it is"
    return 0
  fi
  "${psql[@]}" <<<"alter system set archive_command = 'true'; select pg_reload_conf();" >/dev/null
  log_warn "WAL archiving stopped: archive_command is now 'true', so PostgreSQL recycles WAL instead of keeping it for the removed repository"
}

# The delete command of the Backup component's installs (see install-backup.sh's header).
uninstall_backup() {
  # Not needed here, and no child process (systemctl, psql) should inherit them.
  unset COOP_RESTIC_PASSWORD COOP_PGBACKREST_CIPHER_PASS COOP_S3_SECRET_ACCESS_KEY
  COOP_ETC_DIR="${COOP_ETC_DIR:-/etc}"
  COOP_SYSTEMD_DIR="${COOP_SYSTEMD_DIR:-/etc/systemd/system}"
  COOP_PG_VERSION="${COOP_PG_VERSION:-15}"
  COOP_PG_PORT="${COOP_PG_PORT:-5432}"
  COOP_PG_SOCKET="${COOP_PG_SOCKET:-/var/run/postgresql}"
  COOP_PG_OS_USER="${COOP_PG_OS_USER:-postgres}"
  COOP_BACKUP_ROLE="${COOP_BACKUP_ROLE:-}"
  [[ -z "${COOP_BACKUP_ROLE}" || "${COOP_BACKUP_ROLE}" =~ ^(db|repo)$ ]] ||
    die "COOP_BACKUP_ROLE must be db or repo (found '${COOP_BACKUP_ROLE}')"
  install_id_superseded "$(install_id_file)" && return 0
  # Before remove_units: its daemon-reload then forgets the drop-in too.
  node_exporter_uninstall
  remove_units
  remove_sshd_dropin
  stop_archiving
  rm -f "$(install_id_file)"
  log_info "backup units removed; repositories, keys and configs kept"
}
