# shellcheck shell=bash
# Loading a restored Redis dump into a server that persists with an append-only file (sourced after
# common.sh). Redis 7 with `appendonly yes` loads only its AOF and, when there is none, starts empty and
# ignores dump.rdb (redis/redis#12098): a restored dump put in place and the service started would lose
# every queued job. So a one-off server with AOF off loads the dump, AOF is then turned on (Redis writes
# it from memory), and the one-off server stops; the service then starts from that AOF.

# redis_load_rdb DIR CONF: DIR holds the restored dump.rdb; CONF is the service's config file. Resumable:
# a kill at any moment leaves the pending mark, and the next run stops a leftover one-off server and
# starts again from the dump (which nothing here changes).
redis_load_rdb() {
  local dir=$1 conf=$2
  local sock="${dir}/coop-load.sock" pidfile="${dir}/coop-load.pid" mark="${dir}/coop-load.pending"
  if [[ -d "${dir}/appendonlydir" && ! -f "${mark}" ]]; then
    log_info "Redis: the append-only file already holds the restored dump"
    return 0
  fi
  [[ -f "${dir}/dump.rdb" ]] || die "no ${dir}/dump.rdb to load into Redis"
  touch "${mark}"
  _redis_load_stop "${pidfile}"
  rm -rf "${dir}/appendonlydir" "${sock}"
  # The one-off server outlives a killed run; it must not hold the operation's lock.
  run_unlocked runuser -u "${COOP_REDIS_OS_USER:-redis}" -- redis-server "${conf}" --dir "${dir}" --appendonly no --save "" --port 0 \
    --unixsocket "${sock}" --unixsocketperm 700 --daemonize yes --pidfile "${pidfile}" --logfile "${dir}/coop-load.log"
  local cli=(redis-cli -s "${sock}")
  _redis_wait "the restored dump to load" 300 "${cli[@]}" -- loading:0
  local keys
  keys=$("${cli[@]}" dbsize)
  local reply
  reply=$("${cli[@]}" config set appendonly yes 2>&1)
  [[ "${reply}" == OK ]] || die "Redis refused to turn the append-only file on (${reply}): $(tail -n 3 "${dir}/coop-load.log" | paste -sd ' ')"
  _redis_wait "the append-only file to be written" 600 "${cli[@]}" -- aof_enabled:1 aof_rewrite_in_progress:0 aof_rewrite_scheduled:0 aof_last_bgrewrite_status:ok
  [[ -f "${dir}/appendonlydir/appendonly.aof.manifest" ]] || die "Redis reports the append-only file written, but ${dir}/appendonlydir has no manifest"
  "${cli[@]}" shutdown nosave >/dev/null 2>&1 || true
  _redis_load_stop "${pidfile}"
  rm -f "${mark}" "${sock}"
  log_info "Redis: the restored dump (${keys} keys) is in the append-only file"
}

# _redis_wait WHAT TIMEOUT CLI... -- FIELD:VALUE...: until `info persistence` shows every FIELD:VALUE.
_redis_wait() {
  local what=$1 timeout=$2 waited=0 info want ok
  shift 2
  local -a cli=()
  while [[ "$1" != -- ]]; do cli+=("$1"); shift; done
  shift
  while true; do
    info=$("${cli[@]}" info persistence 2>/dev/null | tr -d '\r' || true)
    ok=1
    for want in "$@"; do grep -qx "${want}" <<<"${info}" || ok=""; done
    [[ -n "${ok}" ]] && return 0
    ((waited < timeout)) || die "Redis: gave up waiting for ${what} after ${timeout}s: $(grep -E '^(loading|aof_)' <<<"${info}" | paste -sd ' ')"
    sleep 1
    waited=$((waited + 1))
  done
}

# _redis_load_stop PIDFILE: the one-off server of this or an earlier (killed) run, if it still runs.
_redis_load_stop() {
  local pidfile=$1 pid n=0
  [[ -f "${pidfile}" ]] || return 0
  pid=$(cat "${pidfile}")
  if [[ "${pid}" =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/${pid}/comm" 2>/dev/null)" == redis-server* ]]; then
    kill "${pid}" 2>/dev/null || true
    while _redis_runs "${pid}"; do
      ((n < 30)) || { kill -9 "${pid}" 2>/dev/null || true; break; }
      sleep 1
      n=$((n + 1))
    done
  fi
  rm -f "${pidfile}"
}

# _redis_runs PID: the process exists and has not exited (a zombie waiting for a reaper has).
_redis_runs() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n "${state}" && "${state}" != Z ]]
}
