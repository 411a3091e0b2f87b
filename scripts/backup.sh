#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Backs up the instance: PostgreSQL with pgBackRest (continuous WAL archiving plus a full or
# differential backup), then a manifest of what the database and media held at a named restore point,
# then the files with restic (media, .env.production, a fresh Redis dump, nginx config); publishes the
# manifest, and only then expires what neither retention rule nor a restorable manifest keeps
# (scripts/lib/retention.sh). The drill (drill.sh) restores to that restore point and compares against
# the manifest.
#
# Environment: see scripts/lib/pg.sh and scripts/lib/files.sh, and
#   COOP_BACKUP_TYPE [diff]      full | diff | incr (pgBackRest makes the first one full)
#   COOP_PGBACKREST_REPOS [1]    pgBackRest repositories to back up to, e.g. "1 2" with S3 as repo2
#   COOP_KEY_TABLES              tables whose row counts go in the manifest (Mastodon's core tables)
#   COOP_ENV_FILE [/home/mastodon/live/.env.production]   COOP_NGINX_DIR [/etc/nginx]
#   COOP_TLS_DIR [/etc/letsencrypt]   (symlinks among these and COOP_MEDIA_DIR are followed: restic
#                                     would otherwise store the link and not the files)
#   COOP_REDIS_PORT [6379]  COOP_REDIS_RDB (default: Redis's own dir/dbfilename)
#   COOP_APP_VERSION             recorded in the manifest
#   COOP_RESTIC_KEEP [--keep-daily 14 --keep-weekly 8]   restic's keep rules, applied to the media and
#                                the config snapshots each; snapshots of a manifest whose pgBackRest
#                                backup set is still in a repository are kept on top of them
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/pg.sh
source "${SCRIPT_DIR}/lib/pg.sh"
# shellcheck source=lib/files.sh
source "${SCRIPT_DIR}/lib/files.sh"
# shellcheck source=lib/retention.sh
source "${SCRIPT_DIR}/lib/retention.sh"

readonly DEFAULT_KEY_TABLES="accounts users statuses follows favourites media_attachments notifications mentions status_stats account_stats conversations tags statuses_tags"

backup_env_defaults() {
  pg_env_defaults
  files_env_defaults
  COOP_BACKUP_TYPE="${COOP_BACKUP_TYPE:-diff}"
  COOP_PGBACKREST_REPOS="${COOP_PGBACKREST_REPOS:-1}"
  COOP_KEY_TABLES="${COOP_KEY_TABLES:-${DEFAULT_KEY_TABLES}}"
  COOP_ENV_FILE="${COOP_ENV_FILE:-/home/mastodon/live/.env.production}"
  COOP_NGINX_DIR="${COOP_NGINX_DIR:-/etc/nginx}"
  COOP_TLS_DIR="${COOP_TLS_DIR:-/etc/letsencrypt}"
  # restic stores a symlink as a symlink: back up what the app's links point at (live -> current ->
  # releases/<tag>, public/system -> shared/public/system), under the paths a restore puts back.
  [[ -e "${COOP_MEDIA_DIR}" ]] && COOP_MEDIA_DIR=$(readlink -f -- "${COOP_MEDIA_DIR}")
  COOP_REDIS_PORT="${COOP_REDIS_PORT:-6379}"
  COOP_REDIS_RDB="${COOP_REDIS_RDB:-}"
  COOP_APP_VERSION="${COOP_APP_VERSION:-unknown}"
  COOP_RESTIC_KEEP="${COOP_RESTIC_KEEP:---keep-daily 14 --keep-weekly 8}"
}

validate() {
  [[ "${COOP_BACKUP_TYPE}" =~ ^(full|diff|incr)$ ]] || die "COOP_BACKUP_TYPE must be full, diff or incr (found '${COOP_BACKUP_TYPE}')"
  [[ "${COOP_KEY_TABLES}" =~ ^[a-z_][a-z0-9_\ ]*$ ]] || die "COOP_KEY_TABLES must be table names separated by spaces"
  [[ "${COOP_PGBACKREST_REPOS}" =~ ^[1-4](\ [1-4])*$ ]] || die "COOP_PGBACKREST_REPOS must be repository numbers 1-4 separated by spaces"
  # Keep rules only: the tag filter and grouping are the expire step's, and a stray flag (--prune,
  # --tag) in here would change what it forgets.
  [[ "${COOP_RESTIC_KEEP}" =~ ^--keep-[a-z-]+\ [0-9a-z]+(\ --keep-[a-z-]+\ [0-9a-z]+)*$ ]] ||
    die "COOP_RESTIC_KEEP must be restic keep rules such as '--keep-daily 14 --keep-weekly 8' (found '${COOP_RESTIC_KEEP}')"
  [[ -d "${COOP_MEDIA_DIR}" ]] || die "media folder ${COOP_MEDIA_DIR} does not exist (set COOP_MEDIA_DIR to Mastodon's public/system)"
  [[ -f "${COOP_RESTIC_PASSWORD_FILE}" ]] || die "restic password file ${COOP_RESTIC_PASSWORD_FILE} is missing"
  [[ "$(stat -c %a "${COOP_RESTIC_PASSWORD_FILE}")" =~ ^[46]00$ ]] ||
    die "restic password file ${COOP_RESTIC_PASSWORD_FILE} is readable by others: chmod 600 it"
  require_cmd pgbackrest restic jq redis-cli sha256sum
  restic_repos >/dev/null
  mkdir -p "$(manifest_dir)" "${COOP_SPOOL_DIR}/staged" "${COOP_RESTIC_CACHE_DIR}"
  chmod 700 "${COOP_SPOOL_DIR}"
}

# stanza-create is idempotent on a matching stanza; after a PostgreSQL major upgrade it asks for stanza-upgrade.
ensure_stanza() {
  local out
  if out=$(pgbr_repo_locked stanza-create); then
    return 0
  fi
  if grep -q "stanza-upgrade" <<<"${out}"; then
    log_info "database changed since the stanza was created: stanza-upgrade"
    out=$(pgbr_repo_locked stanza-upgrade) || die "stanza-upgrade failed: ${out}"
    return 0
  fi
  die "stanza-create failed: ${out}"
}

# One pgBackRest backup writes one repository: each configured repository gets its own.
backup_database() {
  local repo
  for repo in ${COOP_PGBACKREST_REPOS}; do
    # A killed run can leave the repository side still finishing its backup and holding its lock.
    with_retry 6 5 pgbr_repo "--repo=${repo}" "--type=${COOP_BACKUP_TYPE}" --start-fast backup
  done
  log_info "pgBackRest backup $(pgbr_latest_label) stored in repositories ${COOP_PGBACKREST_REPOS}"
}

counts_sql() {
  local present="$1"
  local t
  local -a parts=()
  for t in ${present}; do
    parts+=("'${t}', (select count(*) from ${t})")
  done
  local IFS=,
  printf 'select json_build_object(%s);' "${parts[*]}"
}

# Writers to the key tables wait (SHARE lock) while they are counted and the restore point is made,
# so the counts are exactly what a restore to that point holds.
write_manifest() {
  local id present counts label labels sample
  id="coop-$(date -u +%Y%m%dT%H%M%SZ)"
  present=$(pg_sql "select string_agg(t, ' ') from unnest(string_to_array('${COOP_KEY_TABLES}', ' ')) t where to_regclass(t) is not null")
  [[ -n "${present}" ]] || die "none of the key tables (${COOP_KEY_TABLES}) exist in ${COOP_DB_NAME}"
  counts=$(as_pg "${COOP_PG_BIN}/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "${COOP_PG_SOCKET}" -p "${COOP_PG_PORT}" -U postgres -d "${COOP_DB_NAME}" -f - <<SQL | sed -n 1p
begin;
lock table ${present// /, } in share mode;
$(counts_sql "${present}")
select pg_create_restore_point('${id}') is not null;
commit;
SQL
)
  # The restore point must reach the repository before anything relies on it: switch and check.
  pg_sql "select pg_switch_wal()" >/dev/null
  pgbr_db check
  label=$(pgbr_latest_label)
  # Each repository holds its own backup under its own label: the newest of each, by repository number.
  labels=$(pgbr_repo --output=json info | jq -c '[.[0].backup[] | {(.database."repo-key" | tostring): .label}] | add // {}')
  sample=$(media_sample "${COOP_MEDIA_DIR}" "${COOP_MEDIA_SAMPLE}" | jq -R 'split("  ") | {(.[1]): .[0]}' | jq -s 'add // {}')
  jq -n --arg id "${id}" --arg backup "${label}" --arg stanza "${COOP_STANZA}" --arg db "${COOP_DB_NAME}" \
    --arg app "${COOP_APP_VERSION}" --arg pg "$(pg_sql 'show server_version')" \
    --argjson tables "${counts}" --argjson sample "${sample}" --argjson labels "${labels}" \
    '{id: $id, restorePoint: $id, createdAt: (now | todate), stanza: $stanza, backupLabel: $backup, backupLabels: $labels,
      database: $db, pgVersion: $pg, appVersion: $app, tables: $tables, media: {sample: $sample}}' |
    write_atomic "$(manifest_dir)/${id}.json"
  printf '%s\n' "${id}" | write_atomic "$(manifest_dir)/pending"
  log_info "manifest ${id}: $(jq -c . <<<"${counts}")"
}

pending_id() {
  [[ -f "$(manifest_dir)/pending" ]] || die "no pending manifest: the manifest step did not finish"
  cat "$(manifest_dir)/pending"
}

redis_cmd() { redis-cli -h 127.0.0.1 -p "${COOP_REDIS_PORT}" --raw "$@"; }

stage_redis() {
  local before waited=0 src
  before=$(redis_cmd LASTSAVE)
  # LASTSAVE has one-second resolution: a save in the same second would look like no save.
  [[ "$(date +%s)" -gt "${before}" ]] || sleep 1
  redis_cmd BGSAVE >/dev/null || true
  until [[ "$(redis_cmd LASTSAVE)" -gt "${before}" ]] &&
    redis_cmd INFO persistence | grep -q '^rdb_bgsave_in_progress:0'; do
    ((waited < 300)) || die "Redis BGSAVE did not finish within 300s"
    sleep 1
    waited=$((waited + 1))
  done
  redis_cmd INFO persistence | grep -q '^rdb_last_bgsave_status:ok' || die "Redis BGSAVE failed (see the Redis log)"
  src="${COOP_REDIS_RDB:-$(redis_cmd CONFIG GET dir | tail -n 1)/$(redis_cmd CONFIG GET dbfilename | tail -n 1)}"
  mkdir -p "${COOP_SPOOL_DIR}/staged/redis"
  write_atomic "${COOP_SPOOL_DIR}/staged/redis/dump.rdb" <"${src}"
}

# Media first, so the manifest can record exactly what the media snapshot holds; then the config
# snapshot, which carries that manifest: a restore needs nothing but the repository.
backup_files() {
  local id repo snap stats path
  id=$(pending_id)
  while read -r repo; do
    restic_ensure_repo "${repo}"
    log_info "restic: media to ${repo%%:*}"
    restic_at "${repo}" backup --host coop --tag coop --tag media --tag "${id}" "${COOP_MEDIA_DIR}" >/dev/null
  done < <(restic_repos)
  repo=$(restic_primary_repo)
  snap=$(restic_at "${repo}" snapshots --json --tag "media,${id}" | jq -r 'sort_by(.time) | .[-1].short_id')
  stats=$(restic_file_totals "${repo}" "${snap}")
  jq --argjson s "${stats}" --arg snap "${snap}" --arg dir "${COOP_MEDIA_DIR}" \
    '.media.files = $s.files | .media.bytes = $s.bytes | .media.snapshot = $snap | .media.dir = $dir' \
    "$(manifest_dir)/${id}.json" | write_atomic "$(manifest_dir)/${id}.json"
  write_atomic "${COOP_SPOOL_DIR}/staged/manifest.json" <"$(manifest_dir)/${id}.json"

  local -a config_paths=("${COOP_SPOOL_DIR}/staged")
  for path in "${COOP_ENV_FILE}" "${COOP_NGINX_DIR}" "${COOP_TLS_DIR}"; do
    if [[ -e "${path}" ]]; then config_paths+=("$(readlink -f -- "${path}")"); else log_warn "no ${path} to back up"; fi
  done
  while read -r repo; do
    log_info "restic: config to ${repo%%:*}"
    restic_at "${repo}" backup --host coop --tag coop --tag config --tag "${id}" "${config_paths[@]}" >/dev/null
  done < <(restic_repos)
}

# Before expire_old (lib/retention.sh), which keeps what the published manifest names. The metric marks
# the backup restorable from here on; an expire that fails afterwards fails the unit, which alerts.
publish_manifest() {
  local id
  if [[ -f "$(manifest_dir)/pending" ]]; then
    id=$(pending_id)
    ln -sfn "${id}.json" "$(manifest_dir)/latest.tmp"
    mv -Tf "$(manifest_dir)/latest.tmp" "$(manifest_dir)/latest.json"
    rm -f "$(manifest_dir)/pending"
  else
    # Only this step removes `pending`, after the rename: a run killed between the two finds it gone and
    # this run's manifest published already.
    [[ -e "$(manifest_dir)/latest.json" ]] || die "no pending manifest and none published: the manifest step did not finish"
    id=$(jq -r .id "$(manifest_dir)/latest.json")
  fi
  mkdir -p "${COOP_TEXTFILE_DIR}"
  printf '# HELP coop_backup_last_success_timestamp_seconds End of the last complete backup.\n# TYPE coop_backup_last_success_timestamp_seconds gauge\ncoop_backup_last_success_timestamp_seconds %s\n' "$(date +%s)" |
    write_atomic "${COOP_TEXTFILE_DIR}/coop_backup.prom" 0644
  log_info "backup ${id} complete: $(jq -c '{backupLabel, tables, media: {files: .media.files, bytes: .media.bytes}}' "$(manifest_dir)/${id}.json")"
}

# A kill inside write_atomic, between its mktemp and its rename, leaves a temp file beside the target
# (a manifest, the staged dump, the metrics). Under the lock none of them is live.
clear_write_temps() {
  rm -f "$(manifest_dir)"/*.json.?????? "$(manifest_dir)/pending".?????? "${COOP_SPOOL_DIR}/staged/manifest.json".?????? \
    "${COOP_SPOOL_DIR}/staged/redis/dump.rdb".?????? "${COOP_TEXTFILE_DIR}/coop_backup.prom".??????
}

main() {
  backup_env_defaults
  validate
  run_begin backup "${COOP_BACKUP_TYPE}"
  clear_write_temps
  steps_total 7
  step stanza ensure_stanza
  step database backup_database
  step manifest write_manifest
  step redis stage_redis
  step files backup_files
  step publish publish_manifest
  step expire expire_old
  run_finish
}

main "$@"
