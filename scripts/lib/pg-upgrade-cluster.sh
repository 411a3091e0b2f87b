# shellcheck shell=bash
# The new cluster and pg_upgrade itself, for upgrade-postgres.sh (sourced after pg-upgrade.sh, used after
# upgrade_env_defaults): make the new cluster like the old one, check, and upgrade, resetting what an
# interrupted pg_upgrade left. Reads WORK_DIR, UPGRADE_MARK and the COOP_PG_* parameters.

# The new cluster must match the old one in encoding, locale, checksums and WAL segment size, or
# pg_upgrade refuses it. Read from the running old cluster once and kept, for a reset after a kill.
init_new_cluster() {
  local enc collate ctype checksums segsize
  IFS='|' read -r enc collate ctype < <(psql_at "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" postgres \
    "select pg_encoding_to_char(encoding), datcollate, datctype from pg_database where datname = 'template1'")
  checksums=$(psql_at "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" postgres "show data_checksums")
  segsize=$(psql_at "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" postgres "select pg_size_bytes(current_setting('wal_segment_size')) / 1048576")
  local -a args=(-U postgres -E "${enc}" "--lc-collate=${collate}" "--lc-ctype=${ctype}" "--wal-segsize=${segsize}" -A trust)
  [[ "${checksums}" == on ]] && args+=(--data-checksums)
  printf '%s\n' "${args[@]}" >"${WORK_DIR}/initdb.args"
  make_new_cluster
}

# A fresh new cluster configured as the old one (port, sockets, archive_command, tuning, pg_hba).
make_new_cluster() {
  local file out
  local -a args
  mapfile -t args <"${WORK_DIR}/initdb.args"
  pgu_stop "${COOP_PG_NEW_BIN}" "${COOP_PG_NEW_DATA}"
  rm -rf "${COOP_PG_NEW_DATA}" "${UPGRADE_MARK}"
  mkdir -p "$(dirname "${COOP_PG_NEW_DATA}")"
  out=$(cd "${WORK_DIR}" && as_pg "${COOP_PG_NEW_BIN}/initdb" -D "${COOP_PG_NEW_DATA}" "${args[@]}" 2>&1) ||
    die "initdb of the new cluster failed: $(error_lines "${out}")"
  for file in postgresql.conf postgresql.auto.conf pg_hba.conf pg_ident.conf; do
    [[ -f "${COOP_PG_OLD_DATA}/${file}" ]] || continue
    install -o "${COOP_PG_OS_USER}" -g "$(id -gn "${COOP_PG_OS_USER}")" -m 600 "${COOP_PG_OLD_DATA}/${file}" "${COOP_PG_NEW_DATA}/${file}"
  done
}

# run_pg_upgrade OLD_PORT NEW_PORT [--check]: from the work folder, where pg_upgrade writes
# delete_old_cluster.sh. The clusters it starts listen only on a socket in that folder.
run_pg_upgrade() {
  local old_port="$1" new_port="$2" out
  shift 2
  if ! out=$(cd "${WORK_DIR}" && run_unlocked as_pg "${COOP_PG_NEW_BIN}/pg_upgrade" "$@" \
    -b "${COOP_PG_OLD_BIN}" -B "${COOP_PG_NEW_BIN}" -d "${COOP_PG_OLD_DATA}" -D "${COOP_PG_NEW_DATA}" -U postgres \
    -p "${old_port}" -P "${new_port}" -s "${WORK_DIR}" -j "${COOP_PG_UPGRADE_JOBS}" --link 2>&1); then
    pgu_keep_logs
    die "pg_upgrade $* failed: $(pgu_failure_lines "${out}") (pg_upgrade's logs: ${WORK_DIR}/pg_upgrade_output.d)"
  fi
}

# --check while the old cluster serves (pg_upgrade reads its socket from postmaster.pid). The check
# starts the new cluster; a kill meanwhile leaves it running (pg_ctl gave it a session of its own), and
# pg_upgrade then refuses ("a postmaster servicing the new cluster"): stop it first.
check_upgrade() {
  pgu_stop "${COOP_PG_NEW_BIN}" "${COOP_PG_NEW_DATA}"
  run_pg_upgrade "${COOP_PG_PORT}" "${COOP_PG_UPGRADE_PORT}" --check
  log_info "pg_upgrade --check: PostgreSQL ${OLD_MAJOR} -> ${COOP_PG_TARGET_MAJOR} compatible"
}

# A pg_upgrade that was interrupted has linked some files and renamed the old pg_control: undo that
# and start from a fresh new cluster. A server of the new cluster left by a kill in an earlier step
# (pg_upgrade --check starts it) is stopped first, or pg_upgrade refuses to run.
upgrade_cluster() {
  pgu_stop "${COOP_PG_NEW_BIN}" "${COOP_PG_NEW_DATA}"
  if [[ -f "${UPGRADE_MARK}" ]]; then
    log_warn "an earlier pg_upgrade was interrupted: resetting the new cluster"
    pgu_stop "${COOP_PG_OLD_BIN}" "${COOP_PG_OLD_DATA}"
    if [[ -f "${COOP_PG_OLD_DATA}/global/pg_control.old" && ! -f "${COOP_PG_OLD_DATA}/global/pg_control" ]]; then
      as_pg mv "${COOP_PG_OLD_DATA}/global/pg_control.old" "${COOP_PG_OLD_DATA}/global/pg_control"
    fi
    make_new_cluster
  fi
  : >"${UPGRADE_MARK}"
  run_pg_upgrade "${COOP_PG_UPGRADE_PORT}" "${COOP_PG_UPGRADE_PORT}"
}
