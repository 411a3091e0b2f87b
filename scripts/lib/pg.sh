# shellcheck shell=bash
# PostgreSQL and pgBackRest helpers for the backup, restore and drill scripts (sourced after common.sh).
#
# Topology: the database host runs PostgreSQL and pushes WAL (archive_command = pgbackrest archive-push);
# the repository lives on the secondary host, where pgBackRest's repository-side commands (stanza-create,
# backup, expire, info) must run. COOP_REPO_SSH names that host; empty means the repository is local.
#
# Environment (defaults in brackets):
#   COOP_STANZA [main]              pgBackRest stanza
#   COOP_PG_OS_USER [postgres]      OS user owning the cluster; pgBackRest runs as this user
#   COOP_PG_BIN [/usr/lib/postgresql/15/bin]
#   COOP_PG_SOCKET [/var/run/postgresql]  COOP_PG_PORT [5432]  COOP_DB_NAME [mastodon_production]
#   COOP_PGBACKREST_CONFIG [/etc/pgbackrest/pgbackrest.conf]   database-side config
#   COOP_REPO_SSH                   user@host[:port] of the repository host (empty: local repository)
#   COOP_REPO_SSH_COMMAND [ssh]     ssh client command (a wrapper holding key and known_hosts)
#   COOP_REPO_CONFIG [/etc/pgbackrest/pgbackrest.conf]         repository-side config, on that host

readonly PG_DEFAULT_BIN="/usr/lib/postgresql/15/bin"

pg_env_defaults() {
  COOP_STANZA="${COOP_STANZA:-main}"
  COOP_PG_OS_USER="${COOP_PG_OS_USER:-postgres}"
  COOP_PG_BIN="${COOP_PG_BIN:-${PG_DEFAULT_BIN}}"
  COOP_PG_SOCKET="${COOP_PG_SOCKET:-/var/run/postgresql}"
  COOP_PG_PORT="${COOP_PG_PORT:-5432}"
  COOP_DB_NAME="${COOP_DB_NAME:-mastodon_production}"
  COOP_PGBACKREST_CONFIG="${COOP_PGBACKREST_CONFIG:-/etc/pgbackrest/pgbackrest.conf}"
  COOP_REPO_SSH="${COOP_REPO_SSH:-}"
  COOP_REPO_SSH_COMMAND="${COOP_REPO_SSH_COMMAND:-ssh}"
  COOP_REPO_CONFIG="${COOP_REPO_CONFIG:-/etc/pgbackrest/pgbackrest.conf}"
}

# as_pg cmd [args...]: run as the cluster's OS user (root drops privileges; that user runs it directly).
as_pg() {
  if [[ "$(id -un)" == "${COOP_PG_OS_USER}" ]]; then
    "$@"
  else
    runuser -u "${COOP_PG_OS_USER}" -- "$@"
  fi
}

# psql_at SOCKET PORT DB SQL: one statement list, unaligned tuples, stop at the first error.
psql_at() {
  as_pg "${COOP_PG_BIN}/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$1" -p "$2" -U postgres -d "$3" -c "$4"
}

pg_sql() { psql_at "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" "${COOP_DB_NAME}" "$1"; }

# pg_app_tables: how many tables the app's database holds; 0 for one no instance has used yet.
pg_app_tables() { pg_sql "select count(*) from information_schema.tables where table_schema = 'public'"; }

# pgbr_db ARGS...: pgBackRest on the database side (archive, check, restore).
pgbr_db() {
  as_pg pgbackrest --config="${COOP_PGBACKREST_CONFIG}" --stanza="${COOP_STANZA}" "$@"
}

# pgbr_repo ARGS...: pgBackRest on the repository side, over SSH when the repository is remote.
pgbr_repo() {
  if [[ -z "${COOP_REPO_SSH}" ]]; then
    pgbr_db "$@"
    return
  fi
  local dest="${COOP_REPO_SSH%:*}"
  local port="22"
  [[ "${COOP_REPO_SSH}" == *:* ]] && port="${COOP_REPO_SSH##*:}"
  local -a ssh_cmd
  read -r -a ssh_cmd <<<"${COOP_REPO_SSH_COMMAND}"
  # The remote side gets a fixed argument list: nothing from here is interpreted by its shell.
  as_pg "${ssh_cmd[@]}" -p "${port}" "${dest}" \
    "$(printf '%q ' pgbackrest "--config=${COOP_REPO_CONFIG}" "--stanza=${COOP_STANZA}" "$@")"
}

# pgbr_repo_locked ARGS...: pgbr_repo for the stanza commands, which take every lock of the stanza: a
# killed run's repository side (the SSH client dies first) or the archiver's archive-push may still hold
# one for a while. Retried on pgBackRest's lock error [050] only, for up to a minute; prints the output.
pgbr_repo_locked() {
  local out rc waited=0
  while true; do
    rc=0
    out=$(pgbr_repo "$@" 2>&1) || rc=$?
    if ((rc == 0)) || ! grep -q 'ERROR: \[050\]' <<<"${out}" || ((waited >= 60)); then
      printf '%s\n' "${out}"
      return "${rc}"
    fi
    log_warn "pgBackRest $* waits for a lock another pgBackRest process holds ($(error_lines "${out}"))"
    sleep 5
    waited=$((waited + 5))
  done
}

# The newest backup's label in the repository, or nothing when there is none.
pgbr_latest_label() {
  pgbr_repo --output=json info | jq -r '.[0].backup[-1].label // empty'
}

# The labels of every backup set the repositories hold (all of them: `info` without --repo), as a JSON
# array: which manifests can still be restored (manifest_set_among, in files.sh).
pgbr_labels() {
  pgbr_repo --output=json info | jq -c '[.[0].backup[]?.label]'
}

# pg_stop_dir DATA_DIR: stop a cluster by its data directory if it runs (fast, then immediate).
pg_stop_dir() {
  local data="$1"
  [[ -f "${data}/postmaster.pid" ]] || return 0
  as_pg "${COOP_PG_BIN}/pg_ctl" -D "${data}" -m fast -w -t 60 stop >/dev/null 2>&1 ||
    as_pg "${COOP_PG_BIN}/pg_ctl" -D "${data}" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
}

# pg_postmaster_runs DATA_DIR: the postmaster that DATA_DIR/postmaster.pid names is alive.
pg_postmaster_runs() {
  local pid
  pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null || true)
  [[ "${pid}" =~ ^[0-9]+$ ]] && kill -0 "${pid}" 2>/dev/null
}

# pg_wait_promoted DATA_DIR SOCKET PORT TIMEOUT LOG: pg_ctl -w returns once read-only connections work
# (and, with hot_standby=off, may return before replay ends); a restore is usable only after WAL replay
# reaches the target and the cluster is promoted. A postmaster that exits on the way (a target replay
# cannot reach, a missing WAL segment, a full disk) fails at once with the end of its log.
pg_wait_promoted() {
  local data="$1" socket="$2" port="$3" timeout="$4" log="$5" waited=0 state
  while true; do
    state=$(psql_at "${socket}" "${port}" postgres "select pg_is_in_recovery()" 2>/dev/null || echo "down")
    [[ "${state}" == "f" ]] && return 0
    if [[ "${state}" != "t" ]] && ! pg_postmaster_runs "${data}"; then
      die "cluster on port ${port} exited before it was promoted: $(tail -n 5 "${log}" 2>/dev/null | paste -sd ' ')"
    fi
    ((waited < timeout)) || die "cluster on port ${port} still in recovery (${state}) after ${timeout}s"
    ((waited % 10 == 0)) && log_info "replaying WAL (${waited}s)"
    sleep 1
    waited=$((waited + 1))
  done
}
