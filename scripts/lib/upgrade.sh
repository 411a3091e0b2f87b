# shellcheck shell=bash
# The parts of upgrade-app.sh that are not steps (sourced by it after common.sh, pg.sh, files.sh,
# releases.sh, the adapter and maintenance.sh): the journal, per-step logs, preflight checks and the
# rollback; the restore point and the database's rollback are in restore-point*.sh. Uses the globals upgrade-app.sh sets: TARGET, SNAPSHOT_DB, FAILED_DB,
# JOURNAL, LOG_DIR.
# ORIG_STDOUT_FD and ORIG_STDERR_FD are copies of the script's own stdout and stderr.
# shellcheck disable=SC2153 # TARGET and the others are set by upgrade-app.sh before any function runs.
#
# The journal (${COOP_STATE_DIR}/upgrade-app.journal, key=value lines) records what the run changed, so
# the rollback, in this run or a later one, knows what to undo: target, previous (the release to go
# back to), touched (maintenance was turned on and the app stopped), restore_point (WAL point name),
# restore_mechanism (copy | wal) and what a WAL rollback needs (backup_label, pg_data, pg_config_dir,
# pg_service, db_changed, db_restored: see restore-point*.sh), committed (past the point of no return), rolling_back (the step that failed, while a rollback runs).

journal_get() {
  [[ -f "${JOURNAL}" ]] || return 0
  sed -n "s/^$1=//p" "${JOURNAL}" | tail -n 1
}

journal_set() {
  {
    if [[ -f "${JOURNAL}" ]]; then grep -v "^$1=" "${JOURNAL}" || true; fi
    printf '%s=%s\n' "$1" "$2"
  } | write_atomic "${JOURNAL}"
}

step_log() { printf '%s/%s.log' "${LOG_DIR}" "${COOP_CURRENT_STEP:-upgrade}"; }

# logged cmd [args...]: the command's output goes to the step's log, which a failure report shows.
logged() {
  local log
  log=$(step_log)
  mkdir -p "${LOG_DIR}"
  printf -- '--- %s: %s\n' "$(date -u +%H:%M:%S)" "$*" >>"${log}"
  "$@" >>"${log}" 2>&1
}

mb_free() { df -Pm "$1" | awk 'NR == 2 { print $4 }'; }

# The free space each restore point needs: the copy needs the database's size again on its volume;
# the WAL restore point needs only room for the migrations' WAL (COOP_MIN_FREE_MB), as a rollback
# restores in place.
check_disk() {
  local free data_dir db_mb pg_free
  free=$(mb_free "${COOP_APP_ROOT}")
  ((free >= COOP_MIN_FREE_MB)) ||
    die "${free} MB free under ${COOP_APP_ROOT}; COOP_MIN_FREE_MB asks for ${COOP_MIN_FREE_MB} MB (remove old releases or grow the volume)"
  data_dir=$(pg_sql "show data_directory")
  pg_free=$(mb_free "${data_dir}")
  if [[ "${RESTORE_MECHANISM:-copy}" == wal ]]; then
    ((pg_free >= COOP_MIN_FREE_MB)) ||
      die "${data_dir}'s volume has ${pg_free} MB free; COOP_MIN_FREE_MB asks for ${COOP_MIN_FREE_MB} MB for the migrations' WAL"
    return 0
  fi
  db_mb=$(pg_sql "select pg_database_size(current_database()) / 1048576")
  ((pg_free >= db_mb + COOP_MIN_FREE_MB)) ||
    die "the restore point copies the database (${db_mb} MB) but ${data_dir}'s volume has ${pg_free} MB free (need ${db_mb} + ${COOP_MIN_FREE_MB} MB)"
}

# The drill runs on the repository host; the `pulumi up` chain hands its result over in
# COOP_DRILL_RESULT_JSON, a host timer leaves it in COOP_DRILL_RESULTS_DIR/last.json.
check_drill() {
  local file="${COOP_DRILL_RESULTS_DIR}/last.json" result finished age_s
  if [[ "${COOP_REQUIRE_DRILL:-1}" == 0 ]]; then
    log_warn "no restore drill required (COOP_REQUIRE_DRILL=0: a stack without a backup repository of its own)"
    return 0
  fi
  if [[ -n "${COOP_DRILL_RESULT_JSON:-}" ]]; then
    result="${COOP_DRILL_RESULT_JSON}"
    file="the drill result handed over by the upgrade chain"
  else
    [[ -f "${file}" ]] || die "no restore drill result (${file}): run drill.sh first; a backup counts only once it has been restored"
    result=$(cat "${file}")
  fi
  jq -e '.ok == true' <<<"${result}" >/dev/null ||
    die "the last restore drill failed ($(jq -r '.reason // "no reason recorded"' <<<"${result}" 2>/dev/null)): fix the backups before upgrading"
  finished=$(jq -r '.finishedAt | fromdateiso8601' <<<"${result}" 2>/dev/null) || die "${file} has no valid finishedAt"
  age_s=$(($(date +%s) - finished))
  ((age_s <= COOP_DRILL_MAX_AGE_HOURS * 3600)) ||
    die "the last passing restore drill finished $((age_s / 3600)) hours ago (limit COOP_DRILL_MAX_AGE_HOURS=${COOP_DRILL_MAX_AGE_HOURS}): run drill.sh first"
  log_info "restore drill passed $((age_s / 60)) minutes ago"
}

check_other_operations() {
  local op lock
  for op in ${COOP_OTHER_OPERATIONS}; do
    lock="${COOP_STATE_DIR}/${op}.lock"
    [[ -f "${lock}" ]] || continue
    flock -n "${lock}" true || die "${op} is running (pid $(cat "${lock}" 2>/dev/null || echo unknown)); wait for it to finish"
  done
}

db_sql() { psql_at "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" postgres "$1"; }

db_exists() { [[ "$(db_sql "select 1 from pg_database where datname = '$1'")" == "1" ]]; }

# The app is stopped by now; anything still connected (a console, an orphaned migration of a killed
# run) would block the copy and the renames.
db_disconnect() {
  db_sql "select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = '$1' and pid <> pg_backend_pid()" >/dev/null
}

db_drop_if_exists() {
  db_exists "$1" || return 0
  db_sql "drop database \"$1\" with (force)" >/dev/null
  log_info "dropped database $1"
}

# wait_healthy TAG: the web process answers /health within COOP_HEALTH_TIMEOUT seconds.
wait_healthy() {
  local deadline=$((SECONDS + COOP_HEALTH_TIMEOUT))
  until logged app_health; do
    ((SECONDS < deadline)) || die "$1 did not pass its health check within ${COOP_HEALTH_TIMEOUT}s"
    sleep 0.5
  done
  log_info "$1 is healthy"
}

rollback_steps() {
  local previous touched
  previous=$(journal_get previous)
  touched=$(journal_get touched)
  [[ -n "${touched}" ]] && logged app_stop all
  db_rollback
  if [[ -n "${previous}" && "$(release_current)" != "${previous}" ]]; then
    release_switch "${previous}"
    log_info "current -> releases/${previous}"
  fi
  if [[ -n "${touched}" ]]; then
    run_unlocked logged app_start all
    wait_healthy "${previous}"
    run_unlocked logged maintenance_off
  fi
}

# rollback FAILED_STEP: undo what the journal records; returns non-zero when the rollback itself failed,
# leaving maintenance on and the journal in place for a re-run to finish it.
rollback() {
  local rc
  journal_set rolling_back "$1"
  COOP_CURRENT_STEP=rollback
  log_warn "rolling back the upgrade to $(journal_get target)"
  # In a subshell so that `set -e` applies: a failed rollback step must stop the rollback before it
  # opens the site, which it would not do inside a condition.
  set +e
  (rollback_steps)
  rc=$?
  set -e
  COOP_CURRENT_STEP=""
  if ((rc != 0)); then
    log_error "the rollback did not finish (see ${LOG_DIR}/rollback.log); maintenance stays on. Re-run upgrade-app.sh to finish it, or follow docs/runbooks/upgrade.md"
    return 1
  fi
  # The state first: a journal without it only ever leads to another (idempotent) rollback.
  rm -f "${COOP_STATE_FILE}"
  rm -f "${JOURNAL}"
  return 0
}

print_log_tail() {
  local log="${LOG_DIR}/$1.log"
  [[ -s "${log}" ]] || return 0
  printf 'coop[%s] ERROR last lines of %s:\n' "${COOP_SCRIPT}" "${log}" >&2
  tail -n 20 "${log}" | sed 's/^/    | /' >&2
}

on_exit() {
  local code=$?
  local failed="${COOP_CURRENT_STEP}"
  ((code == 0)) && return 0
  trap - EXIT
  # A failure inside `logged` exits with its redirection to the step's log still in place.
  exec 1>&"${ORIG_STDOUT_FD}" 2>&"${ORIG_STDERR_FD}"
  print_log_tail "${failed}"
  if [[ ! -f "${JOURNAL}" ]]; then
    # Failed before preflight recorded anything: nothing changed on the host.
    rm -f "${COOP_STATE_FILE}"
    log_error "upgrade to ${TARGET} failed at step ${failed:-start}; nothing was changed"
    exit "${code}"
  fi
  if [[ "$(journal_get committed)" == "1" ]]; then
    log_error "upgrade to ${TARGET} failed at step ${failed} after the new release went live: not rolling back (users have written since). Re-run upgrade-app.sh to finish"
    exit "${code}"
  fi
  local previous
  previous=$(journal_get previous)
  local touched
  touched=$(journal_get touched)
  if rollback "${failed}"; then
    if [[ -n "${touched}" ]]; then
      log_error "upgrade to ${TARGET} failed at step ${failed}; rolled back to ${previous}: database back at the restore point, services up, maintenance off"
    else
      log_error "upgrade to ${TARGET} failed at step ${failed}, before maintenance: ${previous} kept serving, nothing to roll back"
    fi
  fi
  exit 1
}

# A journal left by a killed run: resume it (same target), or undo it before anything else.
recover_interrupted() {
  [[ -f "${JOURNAL}" ]] || return 0
  local target failed_step
  target=$(journal_get target)
  failed_step=$(journal_get rolling_back)
  if [[ -n "${failed_step}" ]]; then
    log_warn "a rollback of the upgrade to ${target} (failed at ${failed_step}) was interrupted: finishing it"
  elif [[ "${target}" != "${TARGET}" && "$(journal_get committed)" == "1" ]]; then
    log_warn "the upgrade to ${target} went live but did not clean up: cleaning up"
    db_drop_if_exists "${SNAPSHOT_DB}"
    rm -f "${JOURNAL}"
    return 0
  elif [[ "${target}" != "${TARGET}" ]]; then
    log_warn "an upgrade to ${target} was interrupted: rolling it back before anything else"
    failed_step=interrupted
  else
    log_info "resuming the interrupted upgrade to ${TARGET}"
    # A kill -9 of this script leaves its children running: a migration still at work would race the
    # resumed one. Ending its session rolls its transaction back (the app is in maintenance meanwhile).
    if [[ -n "$(journal_get touched)" && -z "$(journal_get committed)" ]]; then
      db_disconnect "${COOP_DB_NAME}"
    fi
    return 0
  fi
  trap - EXIT
  if rollback "${failed_step}"; then
    log_error "rolled back the interrupted upgrade to ${target}; the upgrade to ${TARGET} did not run: run upgrade-app.sh again"
  fi
  exit 1
}
