#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The facts `coopctl status` judges, as one JSON object on stdout: last backup, last restore drill, WAL
# archiving, disk use, certificate expiry, maintenance mode, app version, the app's upstream releases,
# host name. Each fact is null when this host does not have it (the drill lives on the repository host,
# the backup manifest on the database host, the app and so its upstream on the app host). Read-only:
# takes no lock, changes nothing, prints no secret (no env file, no password).
#   status.sh [--help]
#
# upstream: on the host running the app (a `current` release) with COOP_CHECK_UPSTREAM_REPO set, the
# newest 100 releases of that GitHub repository (GET {COOP_CHECK_RELEASES_API}/repos/{repo}/releases?per_page=100,
# 30 s at most), each as {tag, publishedAt, prerelease, draft, security, ageSeconds}: `security` when its
# notes mention security, a CVE or a GHSA id (coopctl behind's rule); or, when they could not be had, the
# reason in `error`. check.sh and coopctl status tell a missed security release from them.
#
# Environment: the names backup.sh and drill.sh read (scripts/lib/pg.sh, scripts/lib/files.sh), and
#   COOP_DRILL_RESULTS_DIR [/var/lib/coop/drills]   drill.sh's last.json
#   COOP_DATA_MOUNT [/srv]           the data volume, when PostgreSQL does not answer with its data_directory
#   COOP_REPO_PATH [/srv/backup/pgbackrest]  COOP_RESTIC_REPO_PATH [/srv/backup/restic]   repositories on
#                                    this host (install-backup.sh's names); local COOP_RESTIC_REPOS paths too
#   COOP_TLS_CERT                    the certificate to check; default: every ${COOP_TLS_DIR}/live/*/fullchain.pem
#   COOP_TLS_DIR [/etc/letsencrypt]  COOP_MAINTENANCE_FLAG (scripts/lib/maintenance.sh)  COOP_APP_ROOT (releases.sh)
#   COOP_CHECK_UPSTREAM_REPO  COOP_CHECK_RELEASES_API [https://api.github.com]   the app's upstream (owner/name,
#                                    e.g. mastodon/mastodon) and the API listing its releases; default: what
#                                    install-alerts.sh wrote in ${COOP_ALERT_DIR:-/etc/coop/alerts}/alert.env (only these two are read there)
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
# shellcheck source=lib/maintenance.sh
source "${SCRIPT_DIR}/lib/maintenance.sh"
# shellcheck source=lib/alerts.sh
source "${SCRIPT_DIR}/lib/alerts.sh"

readonly USAGE="usage: status.sh [--help]   prints this host's status facts as one JSON object"
readonly PG_TIMEOUT=10
readonly RELEASES_TIMEOUT=30
# coopctl behind's rule (SECURITY_PATTERN in src/reports/behind.ts, the same text): "security", a CVE or a
# GHSA id as a word, in any case, spelt out in ASCII so that jq's regular expressions read it as JavaScript does.
readonly SECURITY_PATTERN='(?<![A-Za-z0-9_])[Ss][Ee][Cc][Uu][Rr][Ii][Tt][Yy](?![A-Za-z0-9_])|(?<![A-Za-z0-9_])[Cc][Vv][Ee]-[0-9]{4}-[0-9]{4,}(?![A-Za-z0-9_])|(?<![A-Za-z0-9_])[Gg][Hh][Ss][Aa](-[0-9A-Za-z]{4}){3}(?![A-Za-z0-9_])'
# GitHub's release list, each release reduced to what the judging reads; anything it would misread is an error.
# shellcheck disable=SC2016 # jq's own $variables
readonly REDUCE_RELEASES='
if type != "array" then error("expected a JSON array of releases, found \(type)") else . end |
map(
  if type != "object" or (.tag_name | type) != "string" then error("a release without tag_name") else . end |
  (.draft == true) as $draft |
  (if $draft and .published_at == null then .created_at else .published_at end) as $at |
  (try ($at | fromdate) catch null) as $t |
  if $t == null and ($draft | not) then error("release \(.tag_name) has published_at \($at | tojson), not an ISO 8601 date-time") else . end |
  {tag: .tag_name, publishedAt: (if ($at | type) == "string" then $at else "" end), prerelease: (.prerelease == true), draft: $draft,
   security: ((.body | type) == "string" and (.body | test($re))), ageSeconds: (if $t == null then null else $now - $t end)})
'

status_env_defaults() {
  pg_env_defaults
  files_env_defaults
  releases_env_defaults
  maintenance_env_defaults
  COOP_DRILL_RESULTS_DIR="${COOP_DRILL_RESULTS_DIR:-/var/lib/coop/drills}"
  COOP_DATA_MOUNT="${COOP_DATA_MOUNT:-/srv}"
  COOP_REPO_PATH="${COOP_REPO_PATH:-/srv/backup/pgbackrest}"
  COOP_RESTIC_REPO_PATH="${COOP_RESTIC_REPO_PATH:-/srv/backup/restic}"
  COOP_TLS_DIR="${COOP_TLS_DIR:-/etc/letsencrypt}"
  COOP_TLS_CERT="${COOP_TLS_CERT:-}"
  NOW=$(date +%s)
}

# status_sql SQL: one value from the live cluster, or failure when it does not answer in time (psql_at is a
# function, which timeout(1) cannot run: libpq's own connect and statement timeouts bound it).
status_sql() {
  PGCONNECT_TIMEOUT="${PG_TIMEOUT}" PGOPTIONS="-c statement_timeout=${PG_TIMEOUT}s" \
    psql_at "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" postgres "$1" 2>/dev/null
}

# The newest backup the pgBackRest repository holds (label, end time, sizes), or null when it cannot be
# read; a repository host that stops answering is bounded by pgBackRest's io-timeout (60 s by default).
pgbr_newest() {
  local info
  info=$(pgbr_repo --log-level-file=off --output=json info 2>/dev/null) || { echo null; return 0; }
  jq -c '.[0].backup[-1] // empty | {label: .label, type: .type, stoppedAt: (.timestamp.stop | todate),
    databaseBytes: .info.size, repositoryBytes: .info.repository.delta}' <<<"${info}" 2>/dev/null | grep . || echo null
}

# The last backup: the manifest backup.sh published, the end time in its metric, the repository's newest backup.
fact_backup() {
  local manifest="${COOP_SPOOL_DIR}/manifests/latest.json" prom="${COOP_TEXTFILE_DIR}/coop_backup.prom" finished="" newest m
  [[ -r "${prom}" ]] && finished=$(sed -n 's/^coop_backup_last_success_timestamp_seconds \([0-9]*\).*/\1/p' "${prom}")
  newest=$(pgbr_newest)
  m=$(jq -c . "${manifest}" 2>/dev/null) || m=null
  if [[ "${m}" == null && "${newest}" == null ]]; then
    echo null
    return 0
  fi
  jq -n --argjson m "${m}" --argjson pgbr "${newest}" --arg finished "${finished}" --argjson now "${NOW}" \
    --arg restic "${COOP_RESTIC_REPOS}" '
    (if $finished != "" then ($finished | tonumber)
     elif $m != null then ($m.createdAt | fromdate)
     else ($pgbr.stoppedAt | fromdate) end) as $at |
    {manifest: $m.id, finishedAt: ($at | todate), ageSeconds: ($now - $at), backupLabel: ($m.backupLabel // $pgbr.label),
     appVersion: $m.appVersion, pgVersion: $m.pgVersion,
     sizeBytes: {database: $pgbr.databaseBytes, repository: $pgbr.repositoryBytes, media: $m.media.bytes},
     mediaFiles: $m.media.files,
     repositories: {pgbackrest: (($m.backupLabels // {}) | keys | map("repo" + .)),
                    restic: ($restic | split(" ") | map(select(length > 0)))},
     newestInRepository: $pgbr}'
}

# The last restore drill, as drill.sh wrote it.
fact_drill() {
  local last="${COOP_DRILL_RESULTS_DIR}/last.json"
  [[ -r "${last}" ]] || { echo null; return 0; }
  jq -c --argjson now "${NOW}" '{ok, reason: (.reason // null), finishedAt, backupLabel, ttrSeconds, verified,
    ageSeconds: (try ($now - (.finishedAt | fromdate)) catch null)}' "${last}" 2>/dev/null ||
    jq -n --arg f "${last}" '{ok: false, reason: ("\($f) cannot be read as JSON"), finishedAt: null, ageSeconds: null,
      backupLabel: null, ttrSeconds: null, verified: null}'
}

# WAL archiving from pg_stat_archiver. lagSeconds is the age of the oldest segment waiting to be archived
# (0 when none waits): an idle database archives nothing for hours and is not late.
fact_wal() {
  status_sql "select json_build_object(
      'archiveMode', current_setting('archive_mode'),
      'archivedCount', archived_count, 'lastArchivedWal', last_archived_wal,
      'lastArchivedAt', to_char(last_archived_time at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
      'secondsSinceLastArchived', extract(epoch from now() - last_archived_time)::bigint,
      'failedCount', failed_count, 'lastFailedWal', last_failed_wal,
      'lastFailedAt', to_char(last_failed_time at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
      'failedSinceLastSuccess', coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false),
      'pendingSegments', (select count(*) from pg_ls_archive_statusdir() where name like '%.ready'),
      'lagSeconds', coalesce((select extract(epoch from now() - min(modification))::bigint
                              from pg_ls_archive_statusdir() where name like '%.ready'), 0))
    from pg_stat_archiver" || echo null
}

# df_entry WHAT PATH: use of the filesystem holding PATH.
df_entry() {
  local what="$1" path="$2" line pcent avail size target
  line=$(df -B1 --output=pcent,avail,size,target "${path}" 2>/dev/null | tail -n 1) || return 0
  read -r pcent avail size target <<<"${line}"
  jq -nc --arg what "${what}" --arg path "${path}" --arg p "${pcent%\%}" --arg a "${avail}" --arg s "${size}" --arg m "${target}" \
    '{what: $what, path: $path, mount: $m, usePercent: ($p | tonumber), availBytes: ($a | tonumber), sizeBytes: ($s | tonumber)}'
}

fact_disks() {
  local data repo
  data=$(status_sql "show data_directory") || data=""
  [[ -n "${data}" ]] || data="${COOP_DATA_MOUNT}"
  {
    if [[ -e "${data}" ]]; then df_entry data "${data}"; fi
    # Word splitting is wanted: COOP_RESTIC_REPOS is a space-separated list (as restic_repos reads it).
    for repo in "${COOP_REPO_PATH}" "${COOP_RESTIC_REPO_PATH}" ${COOP_RESTIC_REPOS}; do
      if [[ "${repo}" == /* && -e "${repo}" ]]; then df_entry repository "${repo}"; fi
    done
  } | jq -sc 'unique_by(.path)'
}

fact_certificates() {
  local -a certs=()
  local cert end
  if [[ -n "${COOP_TLS_CERT}" ]]; then
    certs=("${COOP_TLS_CERT}")
  else
    mapfile -t certs < <(find "${COOP_TLS_DIR}/live" -mindepth 2 -maxdepth 2 -name fullchain.pem 2>/dev/null | sort)
  fi
  for cert in "${certs[@]}"; do
    if end=$(openssl x509 -enddate -noout -in "${cert}" 2>/dev/null); then
      end=$(date -u -d "${end#notAfter=}" +%s)
      jq -nc --arg path "${cert}" --argjson expiry "${end}" --argjson now "${NOW}" --arg subject "$(openssl x509 -subject -noout -in "${cert}" 2>/dev/null)" \
        '{path: $path, subject: ($subject | sub("^subject= *"; "")), notAfter: ($expiry | todate), daysLeft: ((($expiry - $now) / 86400) | floor)}'
    else
      jq -nc --arg path "${cert}" '{path: $path, subject: null, notAfter: null, daysLeft: null}'
    fi
  done | jq -sc .
}

# upstream_fact URL ERROR [RELEASES_FILE]: the upstream fact, with the error or the reduced releases.
upstream_fact() {
  jq -nc --arg repo "${COOP_CHECK_UPSTREAM_REPO}" --arg url "$1" --arg error "$2" --slurpfile releases "${3:-/dev/null}" \
    '{repo: $repo, url: $url, error: (if $error == "" then null else $error end), releases: (if $error == "" then $releases[0] else null end)}'
}

# fact_upstream APP_VERSION: the releases of the app's upstream (see the top), null without an app or a repo.
fact_upstream() {
  upstream_env
  if [[ -z "$1" || -z "${COOP_CHECK_UPSTREAM_REPO}" ]]; then
    echo null
    return 0
  fi
  local url="${COOP_CHECK_RELEASES_API%/}/repos/${COOP_CHECK_UPSTREAM_REPO}/releases?per_page=100"
  local problem dir code rc=0 message
  problem=$(upstream_env_problem)
  [[ -z "${problem}" ]] || { upstream_fact "${url}" "${problem}"; return 0; }
  command -v curl >/dev/null 2>&1 || { upstream_fact "${url}" "curl is not installed on this host"; return 0; }
  dir=$(mktemp -d)
  code=$(curl --silent --show-error --location --connect-timeout 10 --max-time "${RELEASES_TIMEOUT}" \
    --header "Accept: application/vnd.github+json" --header "X-GitHub-Api-Version: 2022-11-28" \
    --user-agent "social.coop status.sh" --output "${dir}/body" --write-out '%{http_code}' "${url}" 2>"${dir}/err") || rc=$?
  if ((rc != 0)); then
    upstream_fact "${url}" "${url} could not be reached (curl exit ${rc}: $(sed 's/^curl: ([0-9]*) //' "${dir}/err" | head -n 1))"
  elif [[ "${code}" != 200 ]]; then
    # GitHub says why in {"message": ...} (a rate limit, a repository not found).
    message=$(jq -r '.message // empty | tostring' "${dir}/body" 2>/dev/null | head -c 300) || message=""
    upstream_fact "${url}" "${url} answered HTTP ${code}${message:+: ${message}}"
  elif ! jq -c --arg re "${SECURITY_PATTERN}" --argjson now "${NOW}" "${REDUCE_RELEASES}" "${dir}/body" >"${dir}/releases" 2>"${dir}/err"; then
    upstream_fact "${url}" "${url} did not answer with GitHub's list of releases: $(sed 's/^jq: error (at [^)]*): //' "${dir}/err" | head -n 1)"
  else
    upstream_fact "${url}" "" "${dir}/releases"
  fi
  rm -rf "${dir}"
}

fact_maintenance() {
  if maintenance_is_on; then
    jq -nc --arg since "$(head -n 1 "${COOP_MAINTENANCE_FLAG}" 2>/dev/null)" '{on: true, since: $since}'
  else
    echo '{"on": false, "since": null}'
  fi
}

main() {
  case "${1:-}" in
    "") ;;
    --help | -h)
      printf '%s\n' "${USAGE}"
      return 0
      ;;
    *)
      printf '%s\n' "${USAGE}" >&2
      exit 2
      ;;
  esac
  status_env_defaults
  require_cmd jq df openssl
  local app upstream
  app=$(release_current)
  upstream=$(mktemp)
  # shellcheck disable=SC2064 # the path is fixed now
  trap "rm -f '${upstream}'" EXIT
  # A file, not an argument: a list of releases may be longer than one argument can be.
  fact_upstream "${app}" >"${upstream}"
  jq -n --arg host "$(hostname)" --argjson now "${NOW}" --argjson backup "$(fact_backup)" --argjson drill "$(fact_drill)" \
    --argjson wal "$(fact_wal)" --argjson disks "$(fact_disks)" --argjson certificates "$(fact_certificates)" \
    --argjson maintenance "$(fact_maintenance)" --arg app "${app}" --slurpfile upstream "${upstream}" \
    '{host: $host, collectedAt: ($now | todate), backup: $backup, drill: $drill, walArchive: $wal, disks: $disks,
      certificates: $certificates, maintenance: $maintenance, appVersion: (if $app == "" then null else $app end),
      upstream: $upstream[0]}'
}

main "$@"
