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
# shellcheck source=lib/pg-upgrade-cluster.sh
source "${SCRIPT_DIR}/lib/pg-upgrade-cluster.sh"
# shellcheck source=lib/pg-upgrade-rollback.sh
source "${SCRIPT_DIR}/lib/pg-upgrade-rollback.sh"

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
