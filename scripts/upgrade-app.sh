#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Upgrades the app (Mastodon or Hometown, through the adapter) to one release tag, and rolls itself
# back on any failure: previous release, database back to the restore point, services up, maintenance
# off, and a non-zero exit naming the failing step with the tail of its log.
#   upgrade-app.sh <tag>        (or COOP_TARGET_TAG)
#
# Steps: preflight (tag exists and is newer than `current`, free disk, a drill that passed recently, no
# other operation running) → fetch and build the release while the old one still serves → maintenance
# on → stop the app → restore point → switch `current` → pre-deployment migrations → start web →
# health check → post-deployment migrations → start everything, maintenance off → clean up.
# Building before maintenance keeps the slowest part (bundle, yarn, assets) out of the downtime.
#
# The restore point is taken while the app is stopped, by one of two mechanisms chosen by size in
# preflight and named in the log with the reason (scripts/lib/restore-point.sh):
#   copy  CREATE DATABASE <db>_restore_point TEMPLATE <db> STRATEGY FILE_COPY: exact, and rolling back is
#         two renames (instant), but the copy grows the window with the database and needs its size
#         again in free space. The default for databases up to COOP_RESTORE_POINT_COPY_MAX_MB.
#   wal   a named WAL restore point, archived by pgBackRest before the migrations start: a fraction of a
#         second whatever the size, no extra space. Rolling back is a pgBackRest delta restore of the
#         cluster to that point: minutes at tens of GiB, paid only when an upgrade fails.
# Measured at 1, 5 and 20 GiB in docs/bench-downtime.md. With the copy, a WAL restore point named
# upgrade-<tag>-<time> is also created when WAL is archived (restore.sh name:<point> reaches it).
#
# Point of no return: once the maintenance flag is removed, users write to the new schema and a rollback
# would lose their rows, so a failure after that (cleanup) only reports. Before it, everything rolls back.
#
# Killed at any step (kill -9, OOM, a lost SSH session), a re-run with the same tag resumes after the
# finished steps (each is idempotent; the database only changes after the restore point, and a killed
# migration's transaction is rolled back by PostgreSQL); a failure during the resumed run rolls back as
# usual. A re-run with another tag, or after a killed rollback, first rolls the interrupted run back and
# exits non-zero: run it again to upgrade. Maintenance is never turned off over a half-done upgrade.
#
# Environment: see scripts/lib/pg.sh, scripts/lib/releases.sh, scripts/lib/maintenance.sh and the
# adapter's header, and
#   COOP_TARGET_TAG                   the release to upgrade to (or the first argument)
#   COOP_APP_ADAPTER [scripts/lib/app-mastodon.sh]
#   COOP_MIN_FREE_MB [2048]           free space required under COOP_APP_ROOT and on the database's
#                                     volume (with the copy: beyond the database's size)
#   COOP_RESTORE_POINT [auto]  COOP_RESTORE_POINT_COPY_MAX_MB [2048]  COOP_PG_SERVICE [auto]
#   COOP_ARCHIVE_TIMEOUT [120]  COOP_ROLLBACK_TIMEOUT [3600]          see scripts/lib/restore-point.sh
#   COOP_DRILL_RESULTS_DIR [/var/lib/coop/drills]  where drill.sh wrote last.json
#   COOP_DRILL_MAX_AGE_HOURS [26]     the last passing drill must be at most this old
#   COOP_REQUIRE_DRILL [1]            0: skip the drill check (alpha: a restore of prod, without backups of its own)
#   COOP_SKIP_OLDER [0]               1: a target older than `current` is a finished hop (exit 0), not a refusal
#   COOP_HEALTH_TIMEOUT [120]         seconds the new (or, on rollback, the previous) release has to pass
#   COOP_KEEP_RELEASES [3]            release folders kept (current and previous always)
#   COOP_OTHER_OPERATIONS [backup restore drill upgrade-postgres maintenance]  whose locks must be free
# Logs of each step: ${COOP_STATE_DIR}/upgrade-app.logs/<step>.log (kept until the next upgrade).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/pg.sh
source "${SCRIPT_DIR}/lib/pg.sh"
# shellcheck source=lib/files.sh
source "${SCRIPT_DIR}/lib/files.sh"
# shellcheck source=lib/releases.sh
source "${SCRIPT_DIR}/lib/releases.sh"
# shellcheck source=lib/requirements.sh
source "${SCRIPT_DIR}/lib/requirements.sh"
# shellcheck source=lib/app-mastodon.sh
source "${COOP_APP_ADAPTER:-${SCRIPT_DIR}/lib/app-mastodon.sh}"
# shellcheck source=lib/maintenance.sh
source "${SCRIPT_DIR}/lib/maintenance.sh"
# shellcheck source=lib/upgrade.sh
source "${SCRIPT_DIR}/lib/upgrade.sh"
# shellcheck source=lib/restore-point.sh
source "${SCRIPT_DIR}/lib/restore-point.sh"
# shellcheck source=lib/restore-point-copy.sh
source "${SCRIPT_DIR}/lib/restore-point-copy.sh"
# shellcheck source=lib/restore-point-wal.sh
source "${SCRIPT_DIR}/lib/restore-point-wal.sh"

upgrade_env_defaults() {
  pg_env_defaults
  releases_env_defaults
  app_env_defaults
  maintenance_env_defaults
  restore_point_env_defaults
  COOP_MIN_FREE_MB="${COOP_MIN_FREE_MB:-2048}"
  COOP_DRILL_RESULTS_DIR="${COOP_DRILL_RESULTS_DIR:-/var/lib/coop/drills}"
  COOP_DRILL_MAX_AGE_HOURS="${COOP_DRILL_MAX_AGE_HOURS:-26}"
  COOP_HEALTH_TIMEOUT="${COOP_HEALTH_TIMEOUT:-120}"
  COOP_KEEP_RELEASES="${COOP_KEEP_RELEASES:-3}"
  COOP_SKIP_OLDER="${COOP_SKIP_OLDER:-0}"
  COOP_OTHER_OPERATIONS="${COOP_OTHER_OPERATIONS:-backup restore drill upgrade-postgres maintenance}"
  SNAPSHOT_DB="${COOP_DB_NAME}_restore_point"
  FAILED_DB="${COOP_DB_NAME}_failed_upgrade"
  JOURNAL="${COOP_STATE_DIR}/upgrade-app.journal"
  LOG_DIR="${COOP_STATE_DIR}/upgrade-app.logs"
}

validate() {
  [[ "${TARGET}" =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]] || die "usage: upgrade-app.sh <tag> (or COOP_TARGET_TAG); '${TARGET}' is not a release tag"
  [[ "${COOP_MIN_FREE_MB}" =~ ^[0-9]+$ ]] || die "COOP_MIN_FREE_MB must be a number of megabytes"
  [[ "${COOP_DRILL_MAX_AGE_HOURS}" =~ ^[0-9]+$ ]] || die "COOP_DRILL_MAX_AGE_HOURS must be a number of hours"
  [[ "${COOP_HEALTH_TIMEOUT}" =~ ^[0-9]+$ ]] || die "COOP_HEALTH_TIMEOUT must be a number of seconds"
  [[ "${COOP_KEEP_RELEASES}" =~ ^[0-9]+$ ]] || die "COOP_KEEP_RELEASES must be a number"
  restore_point_validate
  ((${#SNAPSHOT_DB} <= 63 && ${#FAILED_DB} <= 63)) || die "COOP_DB_NAME is too long for the restore point's name (${SNAPSHOT_DB})"
  require_cmd git jq flock df curl
}

preflight() {
  local current
  current=$(release_current)
  [[ -n "${current}" ]] || die "no current release in ${COOP_APP_ROOT}/current: deploy one first"
  if version_lt "${TARGET}" "${current}"; then
    die "${TARGET} is older than the current release ${current}: upgrade-app.sh does not downgrade (restore a backup instead)"
  fi
  logged app_has_tag "${TARGET}" || die "release tag ${TARGET} is not in the app's repository"
  # Before anything is stopped: a release this host's PostgreSQL or Redis is too old for never starts.
  requirements_check "${TARGET}"
  choose_restore_point
  check_disk
  check_drill
  check_other_operations
  journal_set target "${TARGET}"
  journal_set previous "${current}"
  record_restore_point
  log_info "upgrading ${current} -> ${TARGET}"
}

fetch_release() { logged app_fetch "${TARGET}"; }

build_release() { logged app_build "${TARGET}"; }

enter_maintenance() {
  journal_set touched 1
  run_unlocked logged maintenance_on "upgrade to ${TARGET}"
}

stop_app() {
  logged app_stop all
  db_disconnect "${COOP_DB_NAME}"
}

switch_release() {
  release_switch "${TARGET}"
  log_info "current -> releases/${TARGET}"
}

migrate_pre() {
  mark_db_changing
  logged app_migrate_pre "${TARGET}"
}

start_web() { run_unlocked logged app_start web; }

health_check() { wait_healthy "${TARGET}"; }

migrate_post() { logged app_migrate_post "${TARGET}"; }

# Everything runs before the flag goes: the commit mark in between is the point of no return. Web has
# run since the health check with the schema it loaded before the post-deployment migrations (Rails reads
# the columns once), so every process (re)starts on the final schema, and must be healthy again.
leave_maintenance() {
  run_unlocked logged app_stop web
  run_unlocked logged app_start all
  wait_healthy "${TARGET}"
  journal_set committed 1
  run_unlocked logged maintenance_off
}

clean_up() {
  local previous
  previous=$(journal_get previous)
  db_drop_if_exists "${SNAPSHOT_DB}"
  release_prune "${COOP_KEEP_RELEASES}" "${TARGET}" "${previous}"
  rm -f "${JOURNAL}"
  log_info "upgraded ${previous} -> ${TARGET}"
}

main() {
  TARGET="${1:-${COOP_TARGET_TAG:-}}"
  upgrade_env_defaults
  validate
  exec {ORIG_STDOUT_FD}>&1 {ORIG_STDERR_FD}>&2
  run_begin upgrade-app "${TARGET}"
  trap on_exit EXIT
  recover_interrupted
  if [[ ! -f "${JOURNAL}" && "$(release_current)" == "${TARGET}" ]]; then
    log_info "${TARGET} is already the current release: nothing to do"
    run_finish
    return 0
  fi
  # A hop of the upgrade chain for a series the host has already left (COOP_SKIP_OLDER=1) is done.
  if [[ ! -f "${JOURNAL}" && "${COOP_SKIP_OLDER}" == 1 && -n "$(release_current)" ]] &&
    version_lt "${TARGET}" "$(release_current)"; then
    log_info "${TARGET} is older than the current release $(release_current): this hop has nothing to do"
    run_finish
    return 0
  fi
  [[ -f "${JOURNAL}" ]] || rm -rf "${LOG_DIR}"
  mkdir -p "${LOG_DIR}"
  steps_total 13
  step preflight preflight
  step fetch fetch_release
  step build build_release
  step maintenance enter_maintenance
  step stop stop_app
  step restore_point take_restore_point
  step switch switch_release
  step migrate_pre migrate_pre
  step start start_web
  step health health_check
  step migrate_post migrate_post
  step maintenance_off leave_maintenance
  step cleanup clean_up
  run_finish
}

main "$@"
