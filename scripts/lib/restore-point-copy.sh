# shellcheck shell=bash
# The copy restore point: the database copied while the app is stopped, and the rollback that renames
# the copy back. Sourced by upgrade-app.sh beside restore-point.sh, which chooses this or the WAL point.

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
