#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The restore drill: a backup counts only once it has been restored and verified. Restores the newest
# backup from the repositories alone (manifest from restic, database from pgBackRest) into a scratch
# cluster on a scratch port, replays WAL to the backup's restore point, checks it with pg_amcheck,
# compares row counts with the manifest, restores a sample of media and compares hashes, checks the
# restic repositories, removes the scratch copy, and records the Time To Restore per phase.
#
# Environment: see scripts/lib/pg.sh and scripts/lib/files.sh, and
#   COOP_DRILL_DIR [/srv/drill]            scratch folder (removed afterwards)
#   COOP_DRILL_PORT [5499]                 scratch cluster port (unix socket only)
#   COOP_DRILL_TIMEOUT [3600]              seconds allowed for start and WAL replay
#   COOP_DRILL_READ_DATA [5%]              share of restic pack data re-read and verified
#   COOP_DRILL_RESULTS_DIR [/var/lib/coop/drills]   JSON results (one per run, last.json, and
#                                  last-verified.json: the backup the last passing drill verified, 0644,
#                                  which a stack granted read access follows: alpha)
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

drill_env_defaults() {
  pg_env_defaults
  files_env_defaults
  COOP_DRILL_DIR="${COOP_DRILL_DIR:-/srv/drill}"
  COOP_DRILL_PORT="${COOP_DRILL_PORT:-5499}"
  COOP_DRILL_TIMEOUT="${COOP_DRILL_TIMEOUT:-3600}"
  COOP_DRILL_READ_DATA="${COOP_DRILL_READ_DATA:-5%}"
  COOP_DRILL_RESULTS_DIR="${COOP_DRILL_RESULTS_DIR:-/var/lib/coop/drills}"
  PHASES="${COOP_STATE_DIR}/drill.phases"
  MANIFEST="${COOP_DRILL_DIR}/manifest.json"
}

now_us() { printf '%s' "${EPOCHREALTIME//[^0-9]/}"; }

# phase NAME FUNCTION: run a step's work and record its duration for the TTR report.
phase() {
  local name="$1" fn="$2" started
  started=$(now_us)
  "${fn}"
  printf '%s %s\n' "${name}" "$(($(now_us) - started))" >>"${PHASES}"
}

remove_scratch() {
  pg_stop_dir "${COOP_DRILL_DIR}/data"
  rm -rf "${COOP_DRILL_DIR}"
}

# A killed drill leaves its scratch cluster running (the postmaster outlives its parent): clear it first.
prepare() {
  remove_scratch
  mkdir -p "${COOP_DRILL_DIR}" "${COOP_DRILL_RESULTS_DIR}"
  # The scratch cluster belongs to the database's OS user; nobody else may read restored data.
  chown "${COOP_PG_OS_USER}:" "${COOP_DRILL_DIR}"
  chmod 700 "${COOP_DRILL_DIR}"
  : >"${PHASES}"
}

fetch_manifest() {
  local repo snap label
  while read -r repo; do restic_open "${repo}"; done < <(restic_repos)
  repo=$(restic_primary_repo)
  snap=$(restic_fetch_manifest "${repo}" config "${MANIFEST}")
  [[ -n "${snap}" ]] || die "no config snapshot (with the manifest) in restic repository ${repo%%:*}"
  label=$(jq -r .backupLabel "${MANIFEST}")
  # One label per pgBackRest repository (each holds its own backup); any of them present will do.
  [[ -n "$(manifest_backup_set "${MANIFEST}")" ]] ||
    die "manifest $(jq -r .id "${MANIFEST}") names pgBackRest backup ${label}, which the repository no longer has"
  log_info "newest backup: manifest $(jq -r .id "${MANIFEST}"), pgBackRest ${label}, restic snapshot ${snap}"
}

# From the manifest's own backup set: a newer one (of a backup killed before it published) began after
# the manifest's restore point, and WAL replay from it can never reach that point.
restore_database() {
  pg_restore_into "${COOP_DRILL_DIR}/data" "name:$(jq -r .restorePoint "${MANIFEST}")" "$(manifest_backup_set "${MANIFEST}")"
}

replay_wal() {
  pg_start_at "${COOP_DRILL_DIR}/data" "${COOP_DRILL_PORT}" "${COOP_DRILL_DIR}/sock" "${COOP_DRILL_TIMEOUT}"
}

drill_sql() { psql_at "${COOP_DRILL_DIR}/sock" "${COOP_DRILL_PORT}" "$(jq -r .database "${MANIFEST}")" "$1"; }

verify_database() {
  local out
  # One job per core: the check reads every heap and index page and dominates the verify phase.
  out=$(as_pg "${COOP_PG_BIN}/pg_amcheck" -h "${COOP_DRILL_DIR}/sock" -p "${COOP_DRILL_PORT}" -U postgres --jobs="$(nproc)" \
    --install-missing --heapallindexed -d "$(jq -r .database "${MANIFEST}")" 2>&1) ||
    die "pg_amcheck found corruption: $(error_lines "${out}")"
  local table expected found
  local -a mismatches=()
  while read -r table expected; do
    found=$(drill_sql "select count(*) from ${table}")
    [[ "${found}" == "${expected}" ]] || mismatches+=("${table}: manifest ${expected}, restored ${found}")
  done < <(jq -r '.tables | to_entries[] | "\(.key) \(.value)"' "${MANIFEST}")
  ((${#mismatches[@]} == 0)) || die "row counts differ from the manifest: ${mismatches[*]}"
  jq -c .tables "${MANIFEST}" >"${COOP_DRILL_DIR}/verified-tables.json"
}

# restic_checked REPO WHAT ARGS...: run restic; on failure die with what failed and restic's error lines.
restic_checked() {
  local repo="$1" what="$2" out
  shift 2
  out=$(restic_at "${repo}" "$@" 2>&1) || die "restic ${what} of ${repo%%:*} failed: $(error_lines "${out}")"
}

verify_media() {
  local repo snap media_dir rel expected actual
  local -a includes=() bad=()
  repo=$(restic_primary_repo)
  # Snapshot IDs differ between repositories: find this backup's media snapshot by its tags
  # (one --tag with a comma list means both tags; repeated --tag options mean either).
  snap=$(restic_at "${repo}" snapshots --json --tag "media,$(jq -r .id "${MANIFEST}")" | jq -r 'sort_by(.time) | .[-1].short_id // empty')
  [[ -n "${snap}" ]] || die "no media snapshot tagged $(jq -r .id "${MANIFEST}") in restic repository ${repo%%:*}"
  media_dir=$(jq -r .media.dir "${MANIFEST}")
  # The structure check first: it names a missing or damaged pack, which a failed restore would not.
  # A check locks exclusively; a killed one's stale lock goes first (restic_open).
  while read -r repo; do
    restic_open "${repo}"
    restic_checked "${repo}" check check
  done < <(restic_repos)
  repo=$(restic_primary_repo)
  while read -r rel; do includes+=(--include "${media_dir}/${rel}"); done < <(jq -r '.media.sample | keys[]' "${MANIFEST}")
  if ((${#includes[@]} > 0)); then
    restic_checked "${repo}" "restore of the media sample (snapshot ${snap})" restore "${snap}" --target "${COOP_DRILL_DIR}/media" "${includes[@]}"
  fi
  while read -r rel expected; do
    actual=$(sha256sum "${COOP_DRILL_DIR}/media${media_dir}/${rel}" 2>/dev/null | cut -d' ' -f1 || true)
    [[ "${actual}" == "${expected}" ]] || bad+=("${rel}")
  done < <(jq -r '.media.sample | to_entries[] | "\(.key) \(.value)"' "${MANIFEST}")
  ((${#bad[@]} == 0)) || die "media files differ from their hashes at backup time: ${bad[*]}"
  local files
  files=$(restic_file_totals "${repo}" "${snap}" | jq -r .files)
  [[ "${files}" == "$(jq -r .media.files "${MANIFEST}")" ]] ||
    die "media snapshot ${snap} holds ${files} files, the manifest says $(jq -r .media.files "${MANIFEST}")"
  while read -r repo; do
    restic_checked "${repo}" "check of ${COOP_DRILL_READ_DATA} of the data" check --read-data-subset="${COOP_DRILL_READ_DATA}"
  done < <(restic_repos)
}

verify() {
  verify_database
  verify_media
}

write_result() {
  local ok="$1" reason="$2" result
  result=$(jq -n --arg ok "${ok}" --arg reason "${reason}" --arg stanza "${COOP_STANZA}" \
    --rawfile phases "${PHASES}" --slurpfile m <(cat "${MANIFEST}" 2>/dev/null || echo '{}') \
    '($phases | split("\n") | map(select(length > 0) | split(" ") | {(.[0]): ((.[1] | tonumber) / 1e6)}) | add // {}) as $p |
     {finishedAt: (now | todate), ok: ($ok == "true"), stanza: $stanza, manifest: ($m[0].id // null),
      backupLabel: ($m[0].backupLabel // null), restorePoint: ($m[0].restorePoint // null),
      ttrSeconds: ({fetch: 0, restore: 0, replay: 0, verify: 0} + $p | .total = (.fetch + .restore + .replay + .verify)),
      verified: (if $ok == "true" then {tables: $m[0].tables, mediaFiles: $m[0].media.files, mediaSampled: ($m[0].media.sample | length)} else null end)}
     + (if $reason == "" then {} else {reason: $reason} end)')
  write_atomic "${COOP_DRILL_RESULTS_DIR}/drill-$(date -u +%Y%m%dT%H%M%SZ).json" <<<"${result}"
  write_atomic "${COOP_DRILL_RESULTS_DIR}/last.json" <<<"${result}"
  # Labels and a time, nothing secret: readable by the stacks that read the backups (grant-repo-reader.sh).
  if [[ "${ok}" == true ]]; then
    jq '{finishedAt, stanza, backupLabel, restorePoint}' <<<"${result}" | write_atomic "${COOP_DRILL_RESULTS_DIR}/last-verified.json" 0644
  fi
  mkdir -p "${COOP_TEXTFILE_DIR}"
  jq -r '"# HELP coop_drill_success 1 if the last restore drill verified the newest backup.",
    "# TYPE coop_drill_success gauge", "coop_drill_success \(if .ok then 1 else 0 end)",
    "# HELP coop_drill_ttr_seconds Time To Restore of the last drill, by phase.",
    "# TYPE coop_drill_ttr_seconds gauge",
    (.ttrSeconds | to_entries[] | "coop_drill_ttr_seconds{phase=\"\(.key)\"} \(.value)"),
    "coop_drill_last_run_timestamp_seconds \(now | floor)"' <<<"${result}" |
    write_atomic "${COOP_TEXTFILE_DIR}/coop_drill.prom" 0644
  printf '%s\n' "${result}"
}

report_success() {
  write_result true ""
  remove_scratch
}

# Any failure: record why, and leave no scratch cluster behind.
on_exit() {
  local code=$?
  ((code == 0)) && return 0
  trap - EXIT
  write_result false "${COOP_DIE_REASON:-drill failed (exit ${code}); see the log above}" >/dev/null 2>&1 || true
  remove_scratch || true
  # A failed drill is over, not interrupted: the next run starts from the beginning.
  rm -f "${COOP_STATE_FILE}"
  exit "${code}"
}

# A kill inside write_atomic, between its mktemp and its rename, leaves a temp file beside the target
# (a result, last.json, the metrics). Under the lock none of them is live.
clear_write_temps() {
  rm -f "${COOP_DRILL_RESULTS_DIR}"/*.json.?????? "${COOP_TEXTFILE_DIR}/coop_drill.prom".??????
}

main() {
  drill_env_defaults
  require_cmd pgbackrest restic jq sha256sum
  restic_repos >/dev/null
  # Every drill starts from scratch: resuming half a restore would prove less than redoing it.
  run_begin drill "$(date +%s%N)"
  clear_write_temps
  trap on_exit EXIT
  steps_total 6
  step prepare prepare
  step fetch phase fetch fetch_manifest
  step restore phase restore restore_database
  step replay phase replay replay_wal
  step verify phase verify verify
  step report report_success
  run_finish
}

main "$@"
