#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Upgrades PostgreSQL to a new major with pg_upgrade --link: check, fresh full backup, stop the old
# cluster, pg_upgrade, start the new one, analyze, pgBackRest stanza-upgrade, a full backup of the new
# cluster and a restore drill of it. The old cluster is kept until that drill has passed, and deleted
# only on COOP_PG_DELETE_OLD=1 (a later run deletes it once the upgrade is done).
#
# Point of no return: the first start of the new cluster (step `switch`). With --link both clusters
# share their data files, and the new server rewrites them as soon as it runs. Before that point any
# failure rolls back by itself (old pg_control back, stable path back, new data directory removed, old
# cluster started), and `upgrade-postgres.sh rollback` does the same after a kill. After it, a failure
# leaves the new cluster live and a re-run resumes at the failed step; the way back is then a restore
# of the pre-upgrade backup with the old binaries (docs/runbooks/upgrade-postgres.md).
#
# Usage: upgrade-postgres.sh [upgrade|rollback]
# Environment: see scripts/lib/pg.sh (COOP_PG_SOCKET/PORT are the cluster's, before and after), and
#   COOP_PG_TARGET_MAJOR            the major to upgrade to (required), e.g. 16
#   COOP_PG_OLD_BIN                 bindir of the running major (required)
#   COOP_PG_NEW_BIN [/usr/lib/postgresql/<target>/bin]
#   COOP_PG_OLD_DATA, COOP_PG_NEW_DATA   data directories of the old and the new cluster (required)
#   COOP_PG_DATA_LINK               stable path, a symlink to the live data directory; pgBackRest's pg1-path (required)
#   COOP_PG_LOG_FILE [<link>.log]   server log of pg_ctl starts
#   COOP_PG_UPGRADE_PORT [50432]    port pg_upgrade runs the clusters on (unix socket only)
#   COOP_PG_UPGRADE_JOBS [nproc]    pg_upgrade --jobs
#   COOP_PG_START_TIMEOUT [600]     seconds allowed for a cluster start
#   COOP_PG_DELETE_OLD [0]          1: delete the old cluster once the drill has passed on the new one
# backup.sh and drill.sh run with this environment (and COOP_PG_BIN set to the new bindir).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/pg.sh
source "${SCRIPT_DIR}/lib/pg.sh"
# shellcheck source=lib/pg-upgrade.sh
source "${SCRIPT_DIR}/lib/pg-upgrade.sh"

upgrade_env_defaults() {
  pg_env_defaults
  require_env COOP_PG_TARGET_MAJOR COOP_PG_OLD_BIN COOP_PG_OLD_DATA COOP_PG_NEW_DATA COOP_PG_DATA_LINK
  [[ "${COOP_PG_TARGET_MAJOR}" =~ ^[0-9]+$ ]] || die "COOP_PG_TARGET_MAJOR must be a major version number (found '${COOP_PG_TARGET_MAJOR}')"
  COOP_PG_NEW_BIN="${COOP_PG_NEW_BIN:-/usr/lib/postgresql/${COOP_PG_TARGET_MAJOR}/bin}"
  COOP_PG_LOG_FILE="${COOP_PG_LOG_FILE:-${COOP_PG_DATA_LINK%/}.log}"
  COOP_PG_UPGRADE_PORT="${COOP_PG_UPGRADE_PORT:-50432}"
  COOP_PG_UPGRADE_JOBS="${COOP_PG_UPGRADE_JOBS:-$(nproc)}"
  COOP_PG_START_TIMEOUT="${COOP_PG_START_TIMEOUT:-600}"
  COOP_PG_DELETE_OLD="${COOP_PG_DELETE_OLD:-0}"
  [[ "${COOP_PG_DELETE_OLD}" =~ ^[01]$ ]] || die "COOP_PG_DELETE_OLD must be 0 or 1 (found '${COOP_PG_DELETE_OLD}')"
  local bin
  for bin in "${COOP_PG_OLD_BIN}/pg_ctl" "${COOP_PG_OLD_BIN}/postgres" "${COOP_PG_NEW_BIN}/pg_upgrade" "${COOP_PG_NEW_BIN}/initdb" "${COOP_PG_NEW_BIN}/vacuumdb"; do
    [[ -x "${bin}" ]] || die "${bin} is missing: install both majors' server packages"
  done
  OLD_MAJOR=$(pgu_major_of_bin "${COOP_PG_OLD_BIN}")
  [[ "$(pgu_major_of_bin "${COOP_PG_NEW_BIN}")" == "${COOP_PG_TARGET_MAJOR}" ]] ||
    die "COOP_PG_NEW_BIN ${COOP_PG_NEW_BIN} holds PostgreSQL $(pgu_major_of_bin "${COOP_PG_NEW_BIN}"), not ${COOP_PG_TARGET_MAJOR}"
  # Client tools of the new major work against both servers; backup.sh and drill.sh inherit them.
  export COOP_PG_BIN="${COOP_PG_NEW_BIN}"
  WORK_DIR="${COOP_STATE_DIR}/upgrade-postgres-${COOP_PG_TARGET_MAJOR}"
  STARTED_MARK="${WORK_DIR}/new-cluster-started"
  UPGRADE_MARK="${WORK_DIR}/pg_upgrade-ran"
  NEW_MARK="${COOP_PG_NEW_DATA%/}.coop-upgrade"
  RUN_KEY="${COOP_PG_TARGET_MAJOR}:${COOP_PG_OLD_DATA}:${COOP_PG_NEW_DATA}"
  ARMED=0
}

# Done, unless an interrupted upgrade run is on record: that one resumes.
upgraded_already() {
  local state="${COOP_STATE_DIR}/upgrade-postgres.state"
  [[ -f "${state}" ]] && grep -Fqx "run_key=${RUN_KEY}" "${state}" && return 1
  [[ "$(pgu_link_target)" == "${COOP_PG_NEW_DATA}" && "$(cat "${COOP_PG_NEW_DATA}/PG_VERSION" 2>/dev/null)" == "${COOP_PG_TARGET_MAJOR}" ]]
}

preflight() {
  ((OLD_MAJOR < COOP_PG_TARGET_MAJOR)) || die "COOP_PG_OLD_BIN holds PostgreSQL ${OLD_MAJOR}: nothing to upgrade to ${COOP_PG_TARGET_MAJOR}"
  [[ -L "${COOP_PG_DATA_LINK}" ]] || die "${COOP_PG_DATA_LINK} must be a symlink to the live data directory (pgBackRest's pg1-path follows it)"
  [[ "$(pgu_link_target)" == "${COOP_PG_OLD_DATA}" ]] ||
    die "${COOP_PG_DATA_LINK} points at '$(pgu_link_target)', not at the old cluster ${COOP_PG_OLD_DATA}"
  [[ "$(cat "${COOP_PG_OLD_DATA}/PG_VERSION" 2>/dev/null)" == "${OLD_MAJOR}" ]] ||
    die "${COOP_PG_OLD_DATA} is not a PostgreSQL ${OLD_MAJOR} data directory"
  pgu_accepts || die "the old cluster does not accept connections on ${COOP_PG_SOCKET}:${COOP_PG_PORT}; start it first"
  if [[ -e "${COOP_PG_NEW_DATA}" && -n "$(ls -A "${COOP_PG_NEW_DATA}")" && ! -f "${NEW_MARK}" ]]; then
    die "${COOP_PG_NEW_DATA} is not empty and was not made by this script; move it away"
  fi
  mkdir -p "${WORK_DIR}" "$(dirname "${COOP_PG_NEW_DATA}")"
  chown "${COOP_PG_OS_USER}:" "${WORK_DIR}"
  chmod 700 "${WORK_DIR}"
  rm -f "${STARTED_MARK}"
  : >"${NEW_MARK}"
}

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

backup_full() {
  COOP_BACKUP_TYPE=full bash "${SCRIPT_DIR}/backup.sh" || die "the full backup failed (backup.sh's log is above)"
}

# Every WAL segment of the old cluster reaches the repository (pgBackRest check switches WAL and waits
# for it), so the pre-upgrade backup can be replayed to the very end of the old cluster.
stop_old_cluster() {
  if [[ -f "${COOP_PG_OLD_DATA}/postmaster.pid" ]]; then
    pgbr_db check
    pgu_stop "${COOP_PG_OLD_BIN}" "${COOP_PG_OLD_DATA}"
  fi
  [[ ! -f "${COOP_PG_OLD_DATA}/postmaster.pid" ]] || die "the old cluster did not stop"
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

# The point of no return: the mark goes down (and to disk) before the new server can touch the
# shared files, so no rollback after this can start the old cluster on files the new one changed.
switch_to_new() {
  : >"${STARTED_MARK}"
  sync "${STARTED_MARK}"
  log_warn "point of no return: starting PostgreSQL ${COOP_PG_TARGET_MAJOR}; from now on the old cluster at ${COOP_PG_OLD_DATA} cannot be started"
  pgu_point_link "${COOP_PG_NEW_DATA}"
  [[ -f "${COOP_PG_NEW_DATA}/postmaster.pid" ]] || pgu_start "${COOP_PG_NEW_BIN}"
  pgu_accepts || die "PostgreSQL ${COOP_PG_TARGET_MAJOR} started but does not accept connections on ${COOP_PG_SOCKET}:${COOP_PG_PORT}"
  log_info "PostgreSQL $(psql_at "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" postgres 'show server_version') accepts connections"
}

analyze_new() {
  local out
  out=$(as_pg "${COOP_PG_NEW_BIN}/vacuumdb" -h "${COOP_PG_SOCKET}" -p "${COOP_PG_PORT}" -U postgres --all --analyze-in-stages 2>&1) ||
    die "vacuumdb --analyze-in-stages failed: $(error_lines "${out}")"
}

# stanza-upgrade records the new cluster's system id and version, so its WAL is archived again.
upgrade_stanza() {
  local out
  out=$(pgbr_repo_locked stanza-upgrade) || die "pgBackRest stanza-upgrade failed: $(error_lines "${out}")"
  pgbr_db check
}

run_drill() { bash "${SCRIPT_DIR}/drill.sh" >&2 || die "the restore drill failed on the new cluster (drill.sh's log is above); the old cluster is kept"; }

delete_or_keep_old() {
  if [[ "${COOP_PG_DELETE_OLD}" != 1 ]]; then
    log_info "old cluster kept at ${COOP_PG_OLD_DATA} (it shares files with the new one and cannot be started); re-run with COOP_PG_DELETE_OLD=1 to delete it"
    return 0
  fi
  [[ -d "${COOP_PG_OLD_DATA}" ]] || return 0
  [[ -x "${WORK_DIR}/delete_old_cluster.sh" ]] || die "no ${WORK_DIR}/delete_old_cluster.sh: pg_upgrade did not finish here"
  as_pg "${WORK_DIR}/delete_old_cluster.sh"
  rm -rf "${WORK_DIR}"
  rm -f "${NEW_MARK}"
  log_info "old cluster ${COOP_PG_OLD_DATA} deleted"
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

main() {
  local action="${1:-upgrade}"
  [[ "${action}" =~ ^(upgrade|rollback)$ ]] || die "usage: upgrade-postgres.sh [upgrade|rollback]"
  upgrade_env_defaults
  require_cmd pgbackrest jq
  if [[ "${action}" == rollback ]]; then
    rollback_command
    return
  fi
  if upgraded_already; then
    run_begin upgrade-postgres "done:${COOP_PG_NEW_DATA}"
    log_info "already on PostgreSQL ${COOP_PG_TARGET_MAJOR} (${COOP_PG_DATA_LINK} -> ${COOP_PG_NEW_DATA})"
    # One idempotent action under the lock: nothing to resume, so no step record.
    delete_or_keep_old
    run_finish
    return
  fi
  run_begin upgrade-postgres "${RUN_KEY}"
  trap on_exit EXIT
  steps_total 12
  step preflight preflight
  # From here on a failure has something to roll back (or to report past the point of no return).
  ARMED=1
  step init_new init_new_cluster
  step check check_upgrade
  step backup_old backup_full
  step stop_old stop_old_cluster
  step upgrade upgrade_cluster
  step switch switch_to_new
  step analyze analyze_new
  step stanza upgrade_stanza
  step backup_new backup_full
  step drill run_drill
  step cleanup delete_or_keep_old
  run_finish
}

main "$@"
