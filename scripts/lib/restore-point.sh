# shellcheck shell=bash
# The upgrade's restore point and the database half of its rollback (sourced by upgrade-app.sh after
# upgrade.sh): the choice of mechanism, what preflight records for it, and the steps that hand over to
# it. The two mechanisms, each in a file of its own (restore-point-copy.sh, restore-point-wal.sh), are
# chosen in preflight and recorded in the journal (restore_mechanism):
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
# Fault injection for the tests: see restore-point-wal.sh (FAULT_AT=rollback_*).

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

# Journalled before the first migration: until then a WAL rollback has nothing to restore.
mark_db_changing() { journal_set db_changed 1; }

db_rollback() {
  if [[ "$(journal_get restore_mechanism)" == wal ]]; then
    db_rollback_wal
  else
    db_rollback_copy
  fi
}
