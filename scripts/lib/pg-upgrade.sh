# shellcheck shell=bash
# Helpers of upgrade-postgres.sh (sourced after common.sh and pg.sh): the cluster layout, starting and
# stopping each major with its own binaries, and the way back to the old cluster.
#
# Layout: each major has its own data directory (COOP_PG_OLD_DATA, COOP_PG_NEW_DATA); a stable path
# COOP_PG_DATA_LINK is a symlink to the live one. pgBackRest's pg1-path (database and repository side)
# and pg_ctl use the stable path, so the upgrade switches the cluster by moving one symlink and no
# configuration on either host changes with the major. Configuration files live in the data directory.

pgu_major_of_bin() {
  "$1/pg_ctl" --version | sed -nE 's/.* ([0-9]+)(\.[0-9]+)?.*/\1/p'
}

# The data directory the stable path points at (empty when it is no symlink).
pgu_link_target() { readlink "${COOP_PG_DATA_LINK}" || true; }

# Repoint the stable path atomically: a crash leaves either the old or the new link, never none.
pgu_point_link() {
  ln -sfn "$1" "${COOP_PG_DATA_LINK}.coop-tmp"
  mv -Tf "${COOP_PG_DATA_LINK}.coop-tmp" "${COOP_PG_DATA_LINK}"
}

# The port in a running cluster's postmaster.pid (4th line), or nothing.
pgu_running_port() {
  [[ -f "$1/postmaster.pid" ]] && sed -n 4p "$1/postmaster.pid"
  return 0
}

pgu_accepts() { psql_at "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" postgres "select 1" >/dev/null 2>&1; }

# pgu_start BIN: start the cluster behind the stable path with that major's binaries. The postmaster
# outlives this script, so it must not inherit the operation's lock.
pgu_start() {
  local bin="$1"
  run_unlocked as_pg "${bin}/pg_ctl" -D "${COOP_PG_DATA_LINK}" -l "${COOP_PG_LOG_FILE}" -w -t "${COOP_PG_START_TIMEOUT}" start >/dev/null ||
    die "PostgreSQL $(pgu_major_of_bin "${bin}") did not start from ${COOP_PG_DATA_LINK}: $(tail -n 5 "${COOP_PG_LOG_FILE}" 2>/dev/null)"
}

# pgu_stop BIN DATA: stop a cluster with the binaries of its own major, and any server of DATA that no
# postmaster.pid names yet. pg_ctl gives the server a session of its own, so a kill of this script's
# process group leaves it running; killed while pg_ctl was starting it, it may write its pid file only
# after a re-run has looked, and then break that run's pg_upgrade ("a postmaster servicing the new
# cluster"). Bounded: SIGQUIT (immediate shutdown), then SIGKILL after 30 s.
pgu_stop() {
  local data="${2%/}" waited=0
  local -a pids
  COOP_PG_BIN="$1" pg_stop_dir "${data}"
  mapfile -t pids < <(pgu_servers_of "${data}")
  ((${#pids[@]} == 0)) && return 0
  log_warn "stopping PostgreSQL processes of ${data} that no postmaster.pid named: ${pids[*]}"
  kill -QUIT "${pids[@]}" 2>/dev/null || true
  while mapfile -t pids < <(pgu_servers_of "${data}") && ((${#pids[@]} > 0)); do
    # (|| true: a process that exits meanwhile makes kill fail, which must not end the script.)
    ((waited == 300)) && { kill -KILL "${pids[@]}" 2>/dev/null || true; }
    ((waited++ < 400)) || die "PostgreSQL processes ${pids[*]} of ${data} did not exit after SIGKILL"
    sleep 0.1
  done
  # A server killed before it could remove its pid file leaves it behind naming a dead process.
  if [[ -f "${data}/postmaster.pid" ]] && ! pg_postmaster_runs "${data}"; then rm -f "${data}/postmaster.pid"; fi
}

# pgu_servers_of DATA: processes of the PostgreSQL OS user started on DATA ("-D DATA" in their command
# line, as pg_ctl and pg_upgrade start them; the shell pg_ctl runs before exec'ing the server too).
pgu_servers_of() {
  local data="${1%/}" uid proc cmd IFS=' '
  local -a args
  uid=$(id -u "${COOP_PG_OS_USER}")
  for proc in /proc/[0-9]*; do
    [[ "${proc#/proc/}" != "$$" ]] || continue
    mapfile -d '' -t args 2>/dev/null <"${proc}/cmdline" || continue
    cmd=" ${args[*]} "
    case "${cmd}" in
      *" -D ${data} "* | *" -D \"${data}\" "*)
        [[ "$(stat -c %u "${proc}" 2>/dev/null)" == "${uid}" ]] && printf '%s\n' "${proc#/proc/}"
        ;;
    esac
  done
  return 0
}

# pgu_failure_lines OUTPUT: the failed check and its explanation (pg_upgrade prints them after
# "fatal"), else the lines that name an error.
pgu_failure_lines() {
  local found
  found=$(sed -n '/fatal$/,$p' <<<"$1" | grep -v '^$' | head -n 12 | paste -sd ' ' || true)
  printf '%s' "${found:-$(error_lines "$1")}"
}

# Keep pg_upgrade's own logs (and the list of problem columns a failed check names) out of the new data
# directory, which a rollback removes.
pgu_keep_logs() {
  [[ -d "${COOP_PG_NEW_DATA}/pg_upgrade_output.d" ]] || return 0
  rm -rf "${WORK_DIR}/pg_upgrade_output.d"
  cp -a "${COOP_PG_NEW_DATA}/pg_upgrade_output.d" "${WORK_DIR}/pg_upgrade_output.d"
}
