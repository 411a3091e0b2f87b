#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Restores a chosen backup onto an empty host or into a scratch folder: PostgreSQL from pgBackRest
# (WAL replayed to the target), the files from restic (media, .env.production, nginx config, the
# Redis dump), and the Redis dump into place. Resumable: a re-run after a kill finishes the same
# restore (pgBackRest --delta, restic restore overwrites).
#
# Environment: see scripts/lib/pg.sh and scripts/lib/files.sh, and
#   COOP_RESTORE_TARGET [latest]    latest | time:<YYYY-MM-DD HH:MM:SS+00> | name:<restore point>
#   COOP_RESTORE_PG_DATA            data directory to restore into (required; must be empty or ours)
#   COOP_RESTORE_PORT [5432]        port to start the restored cluster on
#   COOP_RESTORE_SOCKET [/var/run/postgresql]
#   COOP_RESTORE_FILES_TO [/]       root under which restic restores files to their original paths
#   COOP_RESTORE_EXCLUDE            paths (space-separated, absolute as backed up) left out of the files,
#                                   with everything under them: a copy keeps its own nginx and certificates
#   COOP_RESTORE_REDIS_RDB          where to put the Redis dump (empty: leave it under FILES_TO)
#   COOP_REDIS_OS_USER [redis]      owner of the placed dump
#   COOP_RESTORE_TIMEOUT [3600]     seconds allowed for start and WAL replay
#   COOP_RESTORE_START [yes]        no: leave the cluster stopped, for its own service (pg_ctlcluster) to start
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/pg.sh
source "${SCRIPT_DIR}/lib/pg.sh"
# shellcheck source=lib/files.sh
source "${SCRIPT_DIR}/lib/files.sh"
# shellcheck source=lib/restore.sh
source "${SCRIPT_DIR}/lib/restore.sh"

restore_env_defaults() {
  pg_env_defaults
  files_env_defaults
  require_env COOP_RESTORE_PG_DATA
  COOP_RESTORE_TARGET="${COOP_RESTORE_TARGET:-latest}"
  COOP_RESTORE_PORT="${COOP_RESTORE_PORT:-5432}"
  COOP_RESTORE_SOCKET="${COOP_RESTORE_SOCKET:-/var/run/postgresql}"
  COOP_RESTORE_FILES_TO="${COOP_RESTORE_FILES_TO:-/}"
  COOP_RESTORE_REDIS_RDB="${COOP_RESTORE_REDIS_RDB:-}"
  read -ra RESTORE_EXCLUDE <<<"${COOP_RESTORE_EXCLUDE:-}"
  local p
  for p in "${RESTORE_EXCLUDE[@]}"; do
    [[ "${p}" == /* && "${p}" != / && "${p}" != *[*?[]* ]] || die "COOP_RESTORE_EXCLUDE: '${p}' is not an absolute path below / (no wildcards)"
  done
  COOP_REDIS_OS_USER="${COOP_REDIS_OS_USER:-redis}"
  COOP_RESTORE_TIMEOUT="${COOP_RESTORE_TIMEOUT:-3600}"
  COOP_RESTORE_START="${COOP_RESTORE_START:-yes}"
  [[ "${COOP_RESTORE_START}" =~ ^(yes|no)$ ]] || die "COOP_RESTORE_START must be yes or no (found '${COOP_RESTORE_START}')"
  MARKER="${COOP_RESTORE_PG_DATA%/}.coop-restore"
  DONE="${COOP_RESTORE_PG_DATA%/}.coop-restored"
}

# A re-run after the restore finished (killed after its last step, or simply run again) changes nothing:
# the folder holds this very restore, which finish recorded.
already_restored() {
  [[ -f "${DONE}" && ! -f "${MARKER}" && "$(cat "${DONE}")" == "${COOP_RESTORE_TARGET}" && -n "$(ls -A "${COOP_RESTORE_PG_DATA}" 2>/dev/null)" ]]
}

# Never restore over a cluster this script did not start restoring: that would destroy live data.
preflight() {
  if [[ -n "$(ls -A "${COOP_RESTORE_PG_DATA}" 2>/dev/null)" && ! -f "${MARKER}" ]]; then
    die "${COOP_RESTORE_PG_DATA} is not empty and holds no restore of ours; move it away or choose another COOP_RESTORE_PG_DATA"
  fi
  restic_repos >/dev/null
  mkdir -p "$(dirname "${MARKER}")"
  printf '%s\n' "${COOP_RESTORE_TARGET}" | write_atomic "${MARKER}"
}

# The backup set a restore to a named point starts from: the one the manifest of that restore point (in
# the restic repository, beside the files of that backup) names. The newest set may have begun after the
# point (a backup killed before it published) and could never replay to it. A restore point no manifest
# names (taken outside backup.sh) is left to pgBackRest, which starts from the newest set.
backup_set_of_target() {
  local name repo manifest snap
  [[ "${COOP_RESTORE_TARGET}" == name:* ]] || return 0
  name="${COOP_RESTORE_TARGET#name:}"
  repo=$(restic_primary_repo)
  restic_open "${repo}"
  manifest="${MARKER}.manifest"
  snap=$(restic_fetch_manifest "${repo}" "config,${name}" "${manifest}")
  if [[ -z "${snap}" ]]; then
    log_warn "no backup manifest names restore point ${name}: restoring from pgBackRest's newest backup set, which must have begun before it"
    return 0
  fi
  local set label
  set=$(manifest_backup_set "${manifest}")
  label=$(jq -r .backupLabel "${manifest}")
  rm -f "${manifest}"
  [[ -n "${set}" ]] || die "the manifest of restore point ${name} names pgBackRest backup ${label}, which the repository no longer has"
  log_info "restore point ${name}: from pgBackRest backup set ${set} (restic snapshot ${snap})"
  printf '%s\n' "${set}"
}

restore_database() {
  local set
  set=$(backup_set_of_target)
  pg_stop_dir "${COOP_RESTORE_PG_DATA}"
  pg_restore_into "${COOP_RESTORE_PG_DATA}" "${COOP_RESTORE_TARGET}" "${set}"
}

start_database() {
  if [[ "${COOP_RESTORE_START}" == no ]]; then
    log_info "not starting the restored cluster (COOP_RESTORE_START=no): start it with its service; it replays WAL to the target, then promotes"
    return 0
  fi
  pg_start_at "${COOP_RESTORE_PG_DATA}" "${COOP_RESTORE_PORT}" "${COOP_RESTORE_SOCKET}" "${COOP_RESTORE_TIMEOUT}"
  log_info "restored cluster is up on port ${COOP_RESTORE_PORT} (socket ${COOP_RESTORE_SOCKET})"
}

# The newest files, whatever the database target: media only grows, so the newest snapshot holds every
# file an earlier database state refers to.
restore_files() {
  local repo tag snap p
  local -a exclude=()
  for p in "${RESTORE_EXCLUDE[@]}"; do exclude+=(--exclude "${p}"); done
  repo=$(restic_primary_repo)
  restic_open "${repo}"
  for tag in media config; do
    snap=$(restic_at "${repo}" snapshots --json --tag "${tag}" | jq -r 'sort_by(.time) | .[-1].short_id // empty')
    [[ -n "${snap}" ]] || die "no ${tag} snapshot in restic repository ${repo%%:*}"
    log_info "restic: restoring ${tag} snapshot ${snap} under ${COOP_RESTORE_FILES_TO}${RESTORE_EXCLUDE[*]:+, without ${RESTORE_EXCLUDE[*]}}"
    restic_at "${repo}" restore "${snap}" --target "${COOP_RESTORE_FILES_TO}" "${exclude[@]}" >/dev/null
  done
}

place_redis() {
  [[ -n "${COOP_RESTORE_REDIS_RDB}" ]] || return 0
  local dump
  dump="${COOP_RESTORE_FILES_TO%/}${COOP_SPOOL_DIR}/staged/redis/dump.rdb"
  [[ -f "${dump}" ]] || die "the restored files hold no Redis dump at ${dump}"
  mkdir -p "$(dirname "${COOP_RESTORE_REDIS_RDB}")"
  write_atomic "${COOP_RESTORE_REDIS_RDB}" <"${dump}"
  if id "${COOP_REDIS_OS_USER}" >/dev/null 2>&1; then chown "${COOP_REDIS_OS_USER}:" "${COOP_RESTORE_REDIS_RDB}"; fi
  log_info "Redis dump placed at ${COOP_RESTORE_REDIS_RDB}; start Redis to load it"
}

finish() {
  printf '%s\n' "${COOP_RESTORE_TARGET}" | write_atomic "${DONE}"
  rm -f "${MARKER}"
}

# A kill inside write_atomic, between its mktemp and its rename, leaves a temp file beside the target:
# the marker, the fetched manifest, the placed Redis dump. Under the lock none of them is live.
clear_write_temps() {
  rm -f "${MARKER}".?????? "${MARKER}.manifest".?????? "${DONE}".??????
  [[ -z "${COOP_RESTORE_REDIS_RDB}" ]] || rm -f "${COOP_RESTORE_REDIS_RDB}".??????
}

main() {
  restore_env_defaults
  require_cmd pgbackrest restic jq
  run_begin restore "${COOP_RESTORE_TARGET}@${COOP_RESTORE_PG_DATA}"
  clear_write_temps
  if already_restored; then
    log_info "${COOP_RESTORE_PG_DATA} already holds this restore (${COOP_RESTORE_TARGET}); nothing to do"
    run_finish
    return 0
  fi
  steps_total 6
  step preflight preflight
  step database restore_database
  step start start_database
  step files restore_files
  step redis place_redis
  step finish finish
  run_finish
}

main "$@"
