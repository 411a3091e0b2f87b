# shellcheck shell=bash
# The WAL restore point: whether it can be used, the named point archived by pgBackRest, and the rollback
# by delta restore and WAL replay. Sourced by upgrade-app.sh beside restore-point.sh, which chooses it.
# Fault injection for the tests: FAULT_AT=rollback_stop|rollback_restore|rollback_start kills the script
# (as common.sh's FAULT_AT does at a step) inside a WAL rollback.

# Why the WAL restore point cannot be used, or nothing when it can: archiving on and a backup to
# restore from.
wal_unusable() {
  if [[ "$(pg_sql "show archive_mode")" == "off" ]]; then
    printf 'WAL is not archived (archive_mode=off)'
    return 0
  fi
  command -v pgbackrest >/dev/null 2>&1 || {
    printf 'pgbackrest is not installed'
    return 0
  }
  local label
  label=$(pgbr_latest_label 2>/dev/null) || label=""
  [[ -n "${label}" ]] || printf 'no pgBackRest backup of stanza %s to restore from' "${COOP_STANZA}"
  return 0
}

# The cluster's service: a systemd unit, or empty for pg_ctl.
pg_service_name() {
  if [[ "${COOP_PG_SERVICE}" == none ]]; then return 0; fi
  if [[ "${COOP_PG_SERVICE}" != auto ]]; then
    printf '%s' "${COOP_PG_SERVICE}"
    return 0
  fi
  local major unit
  major=$(pg_sql "select current_setting('server_version_num')::int / 10000")
  unit="postgresql@${major}-main"
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "${unit}" 2>/dev/null; then
    printf '%s' "${unit}"
  fi
  return 0
}

# The restore point's record must be in the repository before anything changes: pg_switch_wal in its
# own statement closes its segment (FIELD-NOTES, "PITR gotcha"), then wait for the archiver to push it.
take_wal_restore_point() {
  local point segment waited=0 archived failed
  db_disconnect "${COOP_DB_NAME}"
  point=$(wal_point_name)
  pg_sql "select pg_create_restore_point('${point}')" >/dev/null
  segment=$(pg_sql "select pg_walfile_name(pg_switch_wal())")
  journal_set restore_point "${point}"
  until [[ "$(pg_sql "select coalesce(last_archived_wal, '') >= '${segment}' from pg_stat_archiver")" == t ]]; do
    ((waited < COOP_ARCHIVE_TIMEOUT * 10)) || {
      failed=$(pg_sql "select coalesce(last_failed_wal, 'none') from pg_stat_archiver")
      die "WAL segment ${segment} (restore point ${point}) was not archived within ${COOP_ARCHIVE_TIMEOUT}s (last failed: ${failed}); check archive_command and the repository"
    }
    sleep 0.1
    waited=$((waited + 1))
  done
  archived=$(pg_sql "select last_archived_wal from pg_stat_archiver")
  log_info "restore point: WAL restore point ${point} (segment ${segment} archived, last archived ${archived}); a rollback restores backup $(journal_get backup_label) to it"
}

rollback_fault() {
  if [[ "${FAULT_AT:-}" == "rollback_$1" ]]; then
    log_warn "FAULT_AT=rollback_$1, killing the script"
    _fault_kill
  fi
}

pg_cluster_stop() {
  local service data config_dir
  service=$(journal_get pg_service)
  data=$(journal_get pg_data)
  config_dir=$(journal_get pg_config_dir)
  if [[ -n "${service}" ]]; then
    systemctl stop "${service}"
  elif [[ -f "${data}/postmaster.pid" ]]; then
    as_pg "${COOP_PG_BIN}/pg_ctl" -D "${config_dir}" -m fast -w -t 120 stop >/dev/null
  fi
}

pg_cluster_start() {
  local service config_dir log="${COOP_STATE_DIR}/upgrade-app.postgresql.log"
  service=$(journal_get pg_service)
  config_dir=$(journal_get pg_config_dir)
  if [[ -n "${service}" ]]; then
    run_unlocked systemctl start "${service}"
  else
    touch "${log}"
    chown "${COOP_PG_OS_USER}:" "${log}"
    # The postmaster outlives this script; it must not inherit (and hold) the operation's lock, nor the
    # copies of the script's stdout and stderr (whoever reads those would wait for the postmaster).
    run_unlocked as_pg "${COOP_PG_BIN}/pg_ctl" -D "${config_dir}" -l "${log}" -w -t "${COOP_ROLLBACK_TIMEOUT}" start \
      >/dev/null 2>&1 {ORIG_STDOUT_FD}>&- {ORIG_STDERR_FD}>&- ||
      die "PostgreSQL did not start after the restore: $(tail -n 5 "${log}" 2>/dev/null)"
  fi
  # The rollback is done only when replay reached the restore point and the cluster was promoted.
  pg_wait_promoted "$(journal_get pg_data)" "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" "${COOP_ROLLBACK_TIMEOUT}" "${log}"
}

# The cluster back to the WAL restore point: stop, pgBackRest delta restore (only files that differ
# from the backup are rewritten), start, replay to the point, promote. Each part is safe to repeat, so
# a rollback killed anywhere here finishes when run again; db_restored marks it done.
db_rollback_wal() {
  local point label started out
  point=$(journal_get restore_point)
  label=$(journal_get backup_label)
  if [[ -z "${point}" || -z "$(journal_get db_changed)" ]]; then
    log_info "the migrations never started: database ${COOP_DB_NAME} is as it was, nothing to restore"
    return 0
  fi
  if [[ "$(journal_get db_restored)" == 1 ]]; then
    log_info "database cluster already restored to ${point}"
    return 0
  fi
  started=${EPOCHREALTIME//[^0-9]/}
  log_info "restoring the cluster to WAL restore point ${point} from backup ${label} (pgBackRest delta restore)"
  rollback_fault stop
  pg_cluster_stop
  rollback_fault restore
  if ! out=$(pgbr_db --delta --type=name "--target=${point}" --target-action=promote "--set=${label}" --log-level-console=warn restore 2>&1); then
    die "pgBackRest restore to ${point} failed: $(error_lines "${out}")"
  fi
  rollback_fault start
  pg_cluster_start
  journal_set db_restored 1
  log_info "database ${COOP_DB_NAME} is back at the restore point (pgBackRest delta restore + WAL replay in $(_elapsed "${started}" "${EPOCHREALTIME//[^0-9]/}"))"
}
