# shellcheck shell=bash
# The upgrade's restore point and the database half of its rollback (sourced by upgrade-app.sh after
# upgrade.sh). Two mechanisms, chosen in preflight and recorded in the journal (restore_mechanism):
#
#   copy  CREATE DATABASE <db>_restore_point TEMPLATE <db> STRATEGY FILE_COPY while the app is stopped.
#         Exact and the rollback is two renames (instant), but the copy is inside the maintenance window,
#         grows with the database (2.6-3.9 s per GiB here, see docs/bench-downtime.md) and needs
#         the database's size again in free space.
#   wal   a named WAL restore point (pg_create_restore_point), its segment switched and archived by
#         pgBackRest before the step ends: well under a second whatever the size, no extra space. The
#         rollback is a pgBackRest delta restore of the cluster to that point (--type=name, --set = the
#         newest backup at preflight) and WAL replay: minutes at tens of GiB, paid only when an upgrade
#         fails. It rolls back the whole cluster, so it expects the cluster to hold the app's database
#         only (other databases would go back to the restore point too).
#
# auto (the default) takes the copy for a database of at most COOP_RESTORE_POINT_COPY_MAX_MB, and the
# WAL restore point above it when WAL is archived and a backup exists (else the copy, saying why).
#
# Environment:
#   COOP_RESTORE_POINT [auto]                  auto | copy | wal
#   COOP_RESTORE_POINT_COPY_MAX_MB [2048]      auto: the largest database restored by copy
#   COOP_ARCHIVE_TIMEOUT [120]                 seconds the restore point's WAL segment has to be archived
#   COOP_ROLLBACK_TIMEOUT [3600]               seconds the restored cluster has to replay WAL and promote
#   COOP_PG_SERVICE [auto]                     systemd unit of the cluster (auto: postgresql@<major>-main
#                                              when systemctl reports it active; none: pg_ctl -D <config dir>)
# Fault injection for the tests: FAULT_AT=rollback_stop|rollback_restore|rollback_start kills the script
# (as common.sh's FAULT_AT does at a step) inside a WAL rollback.

restore_point_env_defaults() {
  COOP_RESTORE_POINT="${COOP_RESTORE_POINT:-auto}"
  COOP_RESTORE_POINT_COPY_MAX_MB="${COOP_RESTORE_POINT_COPY_MAX_MB:-2048}"
  COOP_ARCHIVE_TIMEOUT="${COOP_ARCHIVE_TIMEOUT:-120}"
  COOP_ROLLBACK_TIMEOUT="${COOP_ROLLBACK_TIMEOUT:-3600}"
  COOP_PG_SERVICE="${COOP_PG_SERVICE:-auto}"
}

restore_point_validate() {
  [[ "${COOP_RESTORE_POINT}" =~ ^(auto|copy|wal)$ ]] || die "COOP_RESTORE_POINT must be auto, copy or wal (found '${COOP_RESTORE_POINT}')"
  [[ "${COOP_RESTORE_POINT_COPY_MAX_MB}" =~ ^[0-9]+$ ]] || die "COOP_RESTORE_POINT_COPY_MAX_MB must be a number of megabytes"
  [[ "${COOP_ARCHIVE_TIMEOUT}" =~ ^[0-9]+$ ]] || die "COOP_ARCHIVE_TIMEOUT must be a number of seconds"
  [[ "${COOP_ROLLBACK_TIMEOUT}" =~ ^[0-9]+$ ]] || die "COOP_ROLLBACK_TIMEOUT must be a number of seconds"
  [[ "${COOP_PG_SERVICE}" =~ ^[A-Za-z0-9@._-]+$ ]] || die "COOP_PG_SERVICE must be auto, none or a systemd unit name"
}

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

# choose_restore_point: decides the mechanism (RESTORE_MECHANISM, for check_disk) and says why; nothing
# is written until record_restore_point, after the rest of preflight passed.
choose_restore_point() {
  local db_mb reason unusable=""
  db_mb=$(pg_sql "select pg_database_size(current_database()) / 1048576")
  case "${COOP_RESTORE_POINT}" in
    copy)
      RESTORE_MECHANISM=copy
      reason="COOP_RESTORE_POINT=copy"
      ;;
    wal)
      unusable=$(wal_unusable)
      [[ -z "${unusable}" ]] || die "COOP_RESTORE_POINT=wal, but ${unusable}"
      RESTORE_MECHANISM=wal
      reason="COOP_RESTORE_POINT=wal"
      ;;
    auto)
      if ((db_mb <= COOP_RESTORE_POINT_COPY_MAX_MB)); then
        RESTORE_MECHANISM=copy
        reason="the database (${db_mb} MB) is at most COOP_RESTORE_POINT_COPY_MAX_MB=${COOP_RESTORE_POINT_COPY_MAX_MB}: copying it costs seconds and a rollback is two renames"
      else
        unusable=$(wal_unusable)
        if [[ -n "${unusable}" ]]; then
          RESTORE_MECHANISM=copy
          reason="the database (${db_mb} MB) is above COOP_RESTORE_POINT_COPY_MAX_MB=${COOP_RESTORE_POINT_COPY_MAX_MB}, but ${unusable}"
        else
          RESTORE_MECHANISM=wal
          reason="the database (${db_mb} MB) is above COOP_RESTORE_POINT_COPY_MAX_MB=${COOP_RESTORE_POINT_COPY_MAX_MB}: a copy would grow the window with it; a rollback restores with pgBackRest instead"
        fi
      fi
      ;;
  esac
  if [[ "${RESTORE_MECHANISM}" == wal ]]; then
    log_info "restore point: WAL restore point + pgBackRest delta restore on rollback, because ${reason}"
  else
    log_info "restore point: copy of the database, because ${reason}"
  fi
}

# For the WAL restore point, also what a rollback needs while the cluster still runs: the backup to
# restore from (a backup taken later could not reach the point), the data and configuration folders,
# the service.
record_restore_point() {
  journal_set restore_mechanism "${RESTORE_MECHANISM}"
  [[ "${RESTORE_MECHANISM}" == wal ]] || return 0
  local config_file label
  config_file=$(pg_sql "show config_file")
  label=$(pgbr_latest_label)
  [[ -n "${label}" ]] || die "no pgBackRest backup to restore from"
  journal_set backup_label "${label}"
  journal_set pg_data "$(pg_sql "show data_directory")"
  journal_set pg_config_dir "$(dirname "${config_file}")"
  journal_set pg_service "$(pg_service_name)"
  log_info "a rollback would restore backup ${label}"
}

take_restore_point() {
  if [[ "$(journal_get restore_mechanism)" == wal ]]; then
    take_wal_restore_point
  else
    take_copy_restore_point
  fi
}

wal_point_name() {
  local point
  point="upgrade-${TARGET//[^A-Za-z0-9._-]/_}-$(date -u +%Y%m%dT%H%M%SZ)"
  printf '%s' "${point:0:60}"
}

# Re-taken from scratch when the step is re-run: the database has not changed since the app stopped.
take_copy_restore_point() {
  local owner point
  db_drop_if_exists "${SNAPSHOT_DB}"
  db_disconnect "${COOP_DB_NAME}"
  owner=$(db_sql "select pg_get_userbyid(datdba) from pg_database where datname = '${COOP_DB_NAME}'")
  [[ -n "${owner}" ]] || die "database ${COOP_DB_NAME} does not exist"
  db_sql "create database \"${SNAPSHOT_DB}\" template \"${COOP_DB_NAME}\" owner \"${owner}\" strategy file_copy" >/dev/null
  if [[ "$(pg_sql "show archive_mode")" != "off" ]]; then
    point=$(wal_point_name)
    pg_sql "select pg_create_restore_point('${point}')" >/dev/null
    journal_set restore_point "${point}"
    log_info "WAL restore point ${point}"
  fi
  log_info "restore point: database ${SNAPSHOT_DB} ($(db_sql "select pg_size_pretty(pg_database_size('${SNAPSHOT_DB}'))"))"
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

# Journalled before the first migration: until then a WAL rollback has nothing to restore.
mark_db_changing() { journal_set db_changed 1; }

db_rollback() {
  if [[ "$(journal_get restore_mechanism)" == wal ]]; then
    db_rollback_wal
  else
    db_rollback_copy
  fi
}

# Renames only, each checked first, so a rollback killed half-way finishes when run again.
db_rollback_copy() {
  if db_exists "${SNAPSHOT_DB}"; then
    if db_exists "${COOP_DB_NAME}"; then
      db_drop_if_exists "${FAILED_DB}"
      db_disconnect "${COOP_DB_NAME}"
      db_sql "alter database \"${COOP_DB_NAME}\" rename to \"${FAILED_DB}\"" >/dev/null
    fi
    db_sql "alter database \"${SNAPSHOT_DB}\" rename to \"${COOP_DB_NAME}\"" >/dev/null
    log_info "database ${COOP_DB_NAME} is back at the restore point (renamed from the copy)"
  fi
  db_drop_if_exists "${FAILED_DB}"
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
