#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Brings the instance back onto a new primary from its backups (docs/runbooks/restore.md): the database
# to the chosen target (PITR), the media, `.env.production` with the instance's own secrets, the nginx
# and certificate folders, and the Redis data; then PostgreSQL runs as its service with WAL archiving on
# again. The Restore component runs it during `pulumi up` with `restore.from` set, after install-database.sh
# and install-backup.sh (which gave this host the repositories' configs) and before deploy-app.sh. From
# another stack's backups (COOP_RESTORE_FROM=reader: alpha), install-reader.sh gave the configs instead,
# Redis starts empty and archiving stays off; sanitize-alpha.sh runs next.
#
# Only onto a new primary: it refuses a host whose database holds any table, unless the interrupted run
# it resumes is its own, or the host holds an earlier copy of another stack's backups (reader: alpha)
# and this is a newer one (COOP_RESTORE_GENERATION): a refresh replaces that copy whole, with the app's
# units stopped first (their guard holds them back until sanitize-alpha.sh has run again). A reader's
# restore keeps this host's own nginx and certificates (prod's are never restored here). Idempotent
# and resumable (named steps); once done it records the run key and a re-run changes nothing.
#
# Usage: restore-instance.sh [--help]
# Environment (defaults in brackets), besides scripts/lib/pg.sh's and files.sh's:
#   COOP_BACKUP_ENV_FILE [/etc/coop/backup.env]   what install-backup.sh (db side) or install-reader.sh wrote
#   COOP_RESTORE_FROM [secondary]    secondary | s3: the S3 repository alone (the secondary is lost too,
#                                    and the new one holds nothing yet) | reader: another stack's
#                                    backups, read-only through install-reader.sh's config (alpha reads
#                                    prod's): an empty Redis (no prod queue), and WAL archiving stays off
#   COOP_RESTORE_TARGET [latest]     latest | time:<YYYY-MM-DD HH:MM:SS+00> | name:<restore point>
#   COOP_RESTORE_GENERATION          the backup set the source's newest was when this was asked for (a
#                                    pgBackRest label); a new one is a new restore (from reader: a refresh)
#   COOP_RESTORE_STANZA [yes]        from s3: make the stanza in the (new) repository host's repo1 before
#                                    archiving starts again; no: there is no repository host yet (by hand)
#   COOP_PG_VERSION [15]   COOP_PG_DATA_LINK [/srv/postgresql/main]   COOP_REDIS_DIR [/srv/redis]
#   COOP_APP_USER [mastodon]   COOP_APP_ROOT [/home/mastodon]
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/pg.sh
source "${SCRIPT_DIR}/lib/pg.sh"
# shellcheck source=lib/redis-load.sh
source "${SCRIPT_DIR}/lib/redis-load.sh"

usage() { sed -n '/^# shellcheck /d; 2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

env_defaults() {
  COOP_BACKUP_ENV_FILE="${COOP_BACKUP_ENV_FILE:-/etc/coop/backup.env}"
  if [[ ! -f "${COOP_BACKUP_ENV_FILE}" ]]; then
    [[ "${COOP_RESTORE_FROM:-}" == reader ]] && die "${COOP_BACKUP_ENV_FILE} is missing: install-reader.sh must run on this host first"
    die "${COOP_BACKUP_ENV_FILE} is missing: install-backup.sh (db side) must run on this host first"
  fi
  set -a
  # shellcheck disable=SC1090
  source "${COOP_BACKUP_ENV_FILE}"
  set +a
  COOP_RESTORE_FROM="${COOP_RESTORE_FROM:-secondary}"
  COOP_RESTORE_TARGET="${COOP_RESTORE_TARGET:-latest}"
  case "${COOP_RESTORE_FROM}" in
    secondary | reader | s3) ;;
    *) die "COOP_RESTORE_FROM must be secondary, s3 or reader (found '${COOP_RESTORE_FROM}')" ;;
  esac
  COOP_PG_VERSION="${COOP_PG_VERSION:-15}"
  COOP_PG_DATA_LINK="${COOP_PG_DATA_LINK:-/srv/postgresql/main}"
  COOP_REDIS_DIR="${COOP_REDIS_DIR:-/srv/redis}"
  COOP_APP_USER="${COOP_APP_USER:-mastodon}"
  COOP_APP_ROOT="${COOP_APP_ROOT:-/home/mastodon}"
  pg_env_defaults
  PG_UNIT="postgresql@${COOP_PG_VERSION}-main"
  PG_LOG="/var/log/postgresql/postgresql-${COOP_PG_VERSION}-main.log"
  DONE_MARK="${COOP_STATE_DIR}/restore-instance.done"
  READER_MARK="${COOP_STATE_DIR}/restore-instance.reader-copy"
  COOP_RESTORE_GENERATION="${COOP_RESTORE_GENERATION:-}"
  [[ "${COOP_RESTORE_GENERATION}" =~ ^[0-9A-Za-z_-]*$ ]] || die "COOP_RESTORE_GENERATION '${COOP_RESTORE_GENERATION}' is not a backup label"
  RUN_KEY="${COOP_RESTORE_FROM}:${COOP_RESTORE_TARGET}${COOP_RESTORE_GENERATION:+:${COOP_RESTORE_GENERATION}}"
  S3_ONLY_CONFIG="$(dirname "${COOP_PGBACKREST_CONFIG}")/restore-s3.conf"
}

# From S3 alone, restore.sh reads pgBackRest repo2 and the S3 restic repository only: the repository
# host's repo1 is new and empty (or gone), and pgBackRest would take its missing stanza for an error.
# The config is install-backup.sh's without repo1, kept until the cluster is promoted (its restore_command
# names it), then removed by s3_stanza.
s3_only_config() {
  if [[ -z "${AWS_ACCESS_KEY_ID:-}" ]] || ! grep -q '^repo2-type=s3$' "${COOP_PGBACKREST_CONFIG}"; then
    die "COOP_RESTORE_FROM=s3 but this host's backup config names no S3 repository: set backup.s3 in stack config (docs/runbooks/s3.md)"
  fi
  grep -v '^repo1-' "${COOP_PGBACKREST_CONFIG}" | put_file "${S3_ONLY_CONFIG}" 0640 root "${COOP_PG_OS_USER}"
}

# From S3, the new secondary's repo1 has no stanza yet: archive-push would store each segment in repo2 but
# fail, so PostgreSQL would keep every segment and retry, until the first backup made it. Made here, from
# the repository host (install-backup.sh gave it the trust), as backup.sh would. The S3-only config goes
# too: it holds the S3 key and the passphrase, and the promoted cluster no longer reads it.
s3_stanza() {
  [[ "${COOP_RESTORE_FROM}" == s3 ]] || return 0
  if [[ "${COOP_RESTORE_STANZA:-yes}" == no ]]; then
    log_warn "COOP_RESTORE_STANZA=no: no repository host yet; WAL archiving fails until one exists (docs/runbooks/s3.md)"
    rm -f "${S3_ONLY_CONFIG}"
    return 0
  fi
  local out
  out=$(pgbr_repo_locked stanza-create) || die "stanza-create for the new repository failed: $(error_lines "${out}")"
  log_info "stanza ${COOP_STANZA} ready in every repository"
  rm -f "${S3_ONLY_CONFIG}"
}

s3_restic_repo() {
  local repo
  for repo in ${COOP_RESTIC_REPOS}; do
    [[ "${repo}" == s3:* ]] && { printf '%s' "${repo}"; return 0; }
  done
  die "COOP_RESTIC_REPOS names no s3: repository"
}

# The cluster's data directory as the layout has it (the link's target): restore.sh restores into it.
data_dir() { readlink -f -- "${COOP_PG_DATA_LINK}"; }

# A reader's copy is marked as one before anything is restored, and stays so: a later, newer restore
# (a refresh) may replace it, even one interrupted half-way (its database then stopped or incomplete).
# A copy restored before the mark existed is known by its recorded run key.
is_reader_copy() {
  [[ "${COOP_RESTORE_FROM}" == reader ]] || return 1
  [[ -f "${READER_MARK}" ]] || [[ -f "${DONE_MARK}" && "$(cat "${DONE_MARK}")" == reader:* ]]
}

# A database with tables is an instance's: never restore over it, unless it is a copy of another stack's
# backups this script made. A re-run after `clear` finds the cluster stopped and skips this step (it is
# recorded done).
preflight() {
  local tables
  [[ -d "$(data_dir)" ]] || die "${COOP_PG_DATA_LINK} does not lead to a cluster: install-database.sh must run on this host first"
  if is_reader_copy; then
    log_info "replacing this host's copy ($(cat "${DONE_MARK}" 2>/dev/null || echo "an interrupted restore")) with a newer one (${RUN_KEY}): its data, media and Redis go"
    return 0
  fi
  tables=$(pg_app_tables 2>/dev/null) ||
    die "cannot read ${COOP_DB_NAME} on this host (is ${PG_UNIT} running?)"
  ((tables == 0)) ||
    die "${COOP_DB_NAME} on this host holds ${tables} tables: restore-instance.sh restores only onto a new primary; to go back in time on this one, follow docs/runbooks/restore.md"
  [[ "${COOP_RESTORE_FROM}" != reader ]] || printf '%s\n' "${RUN_KEY}" | put_file "${READER_MARK}" 0644 root root
  log_info "restoring from ${COOP_RESTORE_FROM} to ${COOP_RESTORE_TARGET} onto $(data_dir)"
}

# The units sanitize-alpha.sh guards (an earlier copy's app): stopped before their data goes, and held
# back by their guard until the new copy is made safe.
guarded_units() {
  local dropin unit
  for dropin in /etc/systemd/system/*.d/coop-alpha-guard.conf; do
    [[ -f "${dropin}" ]] || continue
    unit=$(basename "$(dirname "${dropin}")")
    printf '%s\n' "${unit%.d}"
  done
}

stop_app_units() {
  local -a app=()
  mapfile -t app < <(guarded_units)
  ((${#app[@]} == 0)) || { log_info "stopping the app of this host's earlier copy: ${app[*]}"; systemctl stop "${app[@]}"; }
}

# (A reader copy's app units were stopped by main, on every run.)
stop_services() {
  systemctl stop redis-server "${PG_UNIT}"
}

# The empty cluster install-database.sh made (preflight proved it empty), or a reader's earlier copy,
# and the Redis files go; a reader's media too, so none of an earlier copy's uploads stays behind.
clear_empty() {
  local data
  data=$(data_dir)
  if [[ ! -f "${data%/}.coop-restore" ]]; then
    find "${data}" -mindepth 1 -delete
  fi
  rm -rf "${COOP_REDIS_DIR}/appendonlydir" "${COOP_REDIS_DIR}/dump.rdb"
  # An interrupted sanitize of the earlier copy must not resume over this one (it would skip its done steps).
  [[ "${COOP_RESTORE_FROM}" != reader ]] || rm -f "${COOP_STATE_DIR}/sanitize-alpha.state"
  if [[ "${COOP_RESTORE_FROM}" == reader && -d "${COOP_APP_ROOT}/shared/public/system" ]]; then
    find "${COOP_APP_ROOT}/shared/public/system" -mindepth 1 -delete
  fi
}

# install-database.sh made the app's user (peer authentication needs it); the restored files' numeric
# owners are fixed to it after (fix_owners).
ensure_app_user() {
  id -u "${COOP_APP_USER}" >/dev/null 2>&1 || die "no user ${COOP_APP_USER} on this host: install-database.sh must run first"
}

restore_all() {
  local rdb="${COOP_REDIS_DIR}/dump.rdb"
  [[ "${COOP_RESTORE_FROM}" == reader ]] && rdb=""
  local -a from=()
  # This host's own site and certificate stay: prod's would name prod and carry its ACME account.
  [[ "${COOP_RESTORE_FROM}" != reader ]] || from=(COOP_RESTORE_EXCLUDE="/etc/nginx /etc/letsencrypt")
  if [[ "${COOP_RESTORE_FROM}" == s3 ]]; then
    s3_only_config
    from=(COOP_PGBACKREST_CONFIG="${S3_ONLY_CONFIG}" COOP_REPO_SSH="" COOP_RESTIC_REPOS="$(s3_restic_repo)")
  fi
  env "${from[@]}" COOP_RESTORE_PG_DATA="$(data_dir)" COOP_RESTORE_START=no COOP_RESTORE_FILES_TO=/ \
    COOP_RESTORE_REDIS_RDB="${rdb}" COOP_REDIS_OS_USER=redis \
    bash "${SCRIPT_DIR}/restore.sh" || die "restore.sh failed (its log is above); run this again to resume"
  # The other stack's Redis dump came back with its spool: its queues have no place here.
  [[ "${COOP_RESTORE_FROM}" != reader ]] || rm -rf "${COOP_SPOOL_DIR:-/srv/backup-spool}/staged/redis"
}

# Files restored with an old uid that this host gave to nobody, or to another user, become the app's.
fix_owners() {
  local shared="${COOP_APP_ROOT}/shared"
  [[ -d "${shared}" ]] || die "the restored files hold no ${shared}: was the backup made by this program?"
  find "${COOP_APP_ROOT}" -xdev ! -user "${COOP_APP_USER}" -path "${shared}*" -exec chown -h "${COOP_APP_USER}:${COOP_APP_USER}" {} +
  chown "${COOP_APP_USER}:${COOP_APP_USER}" "${COOP_APP_ROOT}"
}

# Replay to the target happens in the service's own start; archiving stays off until it is promoted.
start_database() {
  systemctl start "${PG_UNIT}"
  pg_wait_promoted "$(data_dir)" "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" "${COOP_RESTORE_TIMEOUT:-3600}" "${PG_LOG}"
  log_info "database promoted: $(pg_app_tables) tables"
}

# archiving ON|OFF: archive_mode as wanted, with the restart it takes. pgBackRest's restore wrote
# archive_mode = 'off' into postgresql.auto.conf: resetting it gives the layout's own setting (on,
# conf.d) back.
archiving() {
  local want=$1
  if [[ "$(psql_at "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" postgres "show archive_mode")" != "${want}" ]]; then
    if [[ "${want}" == on ]]; then
      psql_at "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" postgres "alter system reset archive_mode" >/dev/null
    else
      psql_at "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" postgres "alter system set archive_mode = off" >/dev/null
    fi
    systemctl restart "${PG_UNIT}"
    with_retry 10 1 psql_at "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" postgres "select 1" >/dev/null
  fi
  [[ "$(psql_at "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" postgres "show archive_mode")" == "${want}" ]] ||
    die "archive_mode is not ${want} after the restart: check ${PG_LOG}"
}

archiving_on() {
  archiving on
  [[ "$(psql_at "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" postgres "show archive_command")" == *pgbackrest*archive-push* ]] ||
    die "archive_command is not pgBackRest's: re-run install-backup.sh on this host"
}

# A reader's repositories are another stack's: this host's WAL has nowhere to go, and archive_mode on
# with a failing command would keep every segment until the disk fills.
archiving_off() {
  archiving off
  log_info "WAL archiving off: this host's data came from another stack's backups, which it cannot write"
}

# A reader's Redis starts empty (clear_empty removed its files): prod's queues never reach it.
start_redis() {
  [[ "${COOP_RESTORE_FROM}" == reader ]] || redis_load_rdb "${COOP_REDIS_DIR}" /etc/redis/coop.conf
  systemctl start redis-server
}

# deploy-app.sh runs the deployed release's migrations over a database restored under it (a refresh):
# the mark is its cue, set before the run is recorded done.
record_done() {
  : >"${COOP_STATE_DIR}/deploy-app.migrate-pending"
  # An interrupted deploy resumed past its release step would skip the migrations: it starts over.
  rm -f "${COOP_STATE_DIR}/deploy-app.state"
  printf '%s\n' "${RUN_KEY}" | put_file "${DONE_MARK}" 0644 root root
}

main() {
  [[ "${1:-}" == --help || "${1:-}" == -h ]] && { usage; return 0; }
  env_defaults
  if [[ -f "${DONE_MARK}" && "$(cat "${DONE_MARK}")" == "${RUN_KEY}" ]]; then
    log_info "already restored (${RUN_KEY}); nothing to do"
    return 0
  fi
  require_cmd pgbackrest restic jq redis-server redis-cli
  run_begin restore-instance "${RUN_KEY}"
  # A reboot after the stop step starts the earlier copy's app again (its guard passes on that copy):
  # a resumed replacement stops it again before going on.
  if is_reader_copy; then stop_app_units; fi
  steps_total 10
  step preflight preflight
  step stop stop_services
  step clear clear_empty
  step user ensure_app_user
  step restore restore_all
  step owners fix_owners
  step database start_database
  step stanza s3_stanza
  if [[ "${COOP_RESTORE_FROM}" == reader ]]; then step archiving archiving_off; else step archiving archiving_on; fi
  step redis start_redis
  record_done
  run_finish
}

main "$@"
