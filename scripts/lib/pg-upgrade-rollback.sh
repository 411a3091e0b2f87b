# shellcheck shell=bash
# The way back, for upgrade-postgres.sh (sourced after pg-upgrade.sh): the automatic rollback of a failed
# run before the point of no return (the EXIT trap), and `upgrade-postgres.sh rollback` after a kill.
# Reads STARTED_MARK, NEW_MARK, UPGRADE_MARK, ARMED, OLD_MAJOR and the COOP_PG_* parameters.

# The way back before the point of no return: stop whatever pg_upgrade left running, give the old
# cluster back its pg_control (pg_upgrade --link renames it to keep the old cluster from starting once
# files are linked), point the stable path at it, remove the new cluster, start the old one. Returns
# non-zero (never dies: it runs from the EXIT trap) when the old cluster is not back.
pgu_rollback() {
  if [[ -f "${STARTED_MARK}" ]]; then
    log_error "the new cluster has been started (${STARTED_MARK}): the old one cannot be used again; no rollback"
    return 1
  fi
  log_warn "rolling back to PostgreSQL ${OLD_MAJOR} at ${COOP_PG_OLD_DATA}"
  pgu_keep_logs || true
  pgu_stop "${COOP_PG_NEW_BIN}" "${COOP_PG_NEW_DATA}"
  # pg_upgrade runs the old cluster on its own port; a normally running old cluster stays up.
  if [[ -n "$(pgu_running_port "${COOP_PG_OLD_DATA}")" && "$(pgu_running_port "${COOP_PG_OLD_DATA}")" != "${COOP_PG_PORT}" ]]; then
    pgu_stop "${COOP_PG_OLD_BIN}" "${COOP_PG_OLD_DATA}"
  fi
  if [[ -f "${COOP_PG_OLD_DATA}/global/pg_control.old" && ! -f "${COOP_PG_OLD_DATA}/global/pg_control" ]]; then
    as_pg mv "${COOP_PG_OLD_DATA}/global/pg_control.old" "${COOP_PG_OLD_DATA}/global/pg_control" || return 1
  fi
  pgu_point_link "${COOP_PG_OLD_DATA}" || return 1
  # Only a new cluster this script made (it marks it before creating it) is removed.
  [[ -f "${NEW_MARK}" ]] && rm -rf "${COOP_PG_NEW_DATA}"
  rm -f "${NEW_MARK}" "${UPGRADE_MARK}"
  if [[ ! -f "${COOP_PG_OLD_DATA}/postmaster.pid" ]]; then
    run_unlocked as_pg "${COOP_PG_OLD_BIN}/pg_ctl" -D "${COOP_PG_DATA_LINK}" -l "${COOP_PG_LOG_FILE}" -w \
      -t "${COOP_PG_START_TIMEOUT}" start >/dev/null 2>&1 || return 1
  fi
  pgu_accepts
}

on_exit() {
  local code=$?
  ((code == 0)) && return 0
  trap - EXIT
  if ((ARMED == 0)); then
    log_error "STATE: nothing was changed; the old cluster is as it was."
  elif [[ -f "${STARTED_MARK}" ]]; then
    log_error "STATE: past the point of no return. PostgreSQL ${COOP_PG_TARGET_MAJOR} is live at ${COOP_PG_NEW_DATA}; the old cluster cannot be started. Fix the cause above and re-run: it resumes at the failed step."
  elif pgu_rollback; then
    rm -f "${COOP_STATE_FILE}"
    log_error "STATE: rolled back. PostgreSQL ${OLD_MAJOR} runs from ${COOP_PG_OLD_DATA} on port ${COOP_PG_PORT} with all its data; the new cluster was removed. Fix the cause above and re-run."
  else
    log_error "STATE: rollback did not finish; the old cluster is not serving. Follow docs/runbooks/upgrade-postgres.md, 'Rollback'."
  fi
  exit "${code}"
}

rollback_command() {
  lock_acquire upgrade-postgres
  COOP_STATE_FILE="${COOP_STATE_DIR}/upgrade-postgres.state"
  [[ -f "${STARTED_MARK}" || "$(pgu_link_target)" == "${COOP_PG_NEW_DATA}" ]] &&
    die "past the point of no return: PostgreSQL ${COOP_PG_TARGET_MAJOR} has run from ${COOP_PG_NEW_DATA}; the way back is a restore of the pre-upgrade backup (docs/runbooks/upgrade-postgres.md)"
  [[ -f "${NEW_MARK}" || -z "$(ls -A "${COOP_PG_NEW_DATA}" 2>/dev/null)" ]] ||
    die "${COOP_PG_NEW_DATA} was not made by this script: nothing to roll back"
  pgu_rollback || die "rollback did not finish; follow docs/runbooks/upgrade-postgres.md, 'Rollback'"
  rm -f "${COOP_STATE_FILE}"
  log_info "rolled back: PostgreSQL ${OLD_MAJOR} runs from ${COOP_PG_OLD_DATA} on port ${COOP_PG_PORT}"
}
