#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The facts `coopctl status` judges, as one JSON object on stdout: last backup, last restore drill, WAL
# archiving, disk use, certificate expiry, maintenance mode, app version, host name. Each fact is null
# when this host does not have it (the drill lives on the repository host, the backup manifest on the
# database host). Read-only: takes no lock, changes nothing, prints no secret (no env file, no password).
#   status.sh [--help]
#
# Environment: the names backup.sh and drill.sh read (scripts/lib/pg.sh, scripts/lib/files.sh), and
#   COOP_DRILL_RESULTS_DIR [/var/lib/coop/drills]   drill.sh's last.json
#   COOP_DATA_MOUNT [/srv]           the data volume, when PostgreSQL does not answer with its data_directory
#   COOP_REPO_PATH [/srv/backup/pgbackrest]  COOP_RESTIC_REPO_PATH [/srv/backup/restic]   repositories on
#                                    this host (install-backup.sh's names); local COOP_RESTIC_REPOS paths too
#   COOP_TLS_CERT                    the certificate to check; default: every ${COOP_TLS_DIR}/live/*/fullchain.pem
#   COOP_TLS_DIR [/etc/letsencrypt]  COOP_MAINTENANCE_FLAG (scripts/lib/maintenance.sh)  COOP_APP_ROOT (releases.sh)
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

readonly USAGE="usage: status.sh [--help]   prints this host's status facts as one JSON object"
readonly PG_TIMEOUT=10

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
  jq -n --arg host "$(hostname)" --argjson now "${NOW}" --argjson backup "$(fact_backup)" --argjson drill "$(fact_drill)" \
    --argjson wal "$(fact_wal)" --argjson disks "$(fact_disks)" --argjson certificates "$(fact_certificates)" \
    --argjson maintenance "$(fact_maintenance)" --arg app "$(release_current)" \
    '{host: $host, collectedAt: ($now | todate), backup: $backup, drill: $drill, walArchive: $wal, disks: $disks,
      certificates: $certificates, maintenance: $maintenance, appVersion: (if $app == "" then null else $app end)}'
}

main "$@"
