# shellcheck shell=bash
# Restoring a PostgreSQL cluster from pgBackRest and starting it on a given port (sourced after pg.sh
# and files.sh).

# pg_restore_into DATA_DIR TARGET [SET]: TARGET is `latest` (replay all archived WAL), `time:<timestamp>`,
# or `name:<restore point>`; SET the pgBackRest backup set to start from (default: pgBackRest's choice,
# the newest set for `latest` and `name:`). --delta makes a re-run after a kill finish the same directory.
pg_restore_into() {
  local data="$1" target="$2" set="${3:-}"
  local -a args=(--pg1-path="${data}" --archive-mode=off --log-level-console=warn)
  [[ -n "${set}" ]] && args+=("--set=${set}")
  # --delta only over a restore that was interrupted: into an empty folder it only adds a warning.
  if [[ -f "${data}/PG_VERSION" || -f "${data}/backup.manifest" ]]; then
    args+=(--delta)
  elif [[ -n "$(ls -A "${data}" 2>/dev/null)" ]]; then
    # pgBackRest creates the cluster's folders before it writes its manifest (under a temporary name,
    # then renamed). A kill in between leaves a folder that --delta cannot trust (no PG_VERSION, no
    # backup.manifest) and a plain restore refuses (not empty). The caller owns the folder (the drill's
    # scratch, or a restore that preflight found empty): nothing in it is data yet.
    log_warn "clearing ${data}: an interrupted restore left folders but no manifest"
    find -H "${data}" -mindepth 1 -delete
  fi
  case "${target}" in
    latest) args+=(--type=default) ;;
    time:*) args+=(--type=time "--target=${target#time:}" --target-action=promote) ;;
    name:*) args+=(--type=name "--target=${target#name:}" --target-action=promote) ;;
    *) die "restore target must be latest, time:<timestamp> or name:<restore point> (found '${target}')" ;;
  esac
  mkdir -p "${data}"
  chown "${COOP_PG_OS_USER}:" "${data}"
  chmod 700 "${data}"
  local out
  if ! out=$(pgbr_db "${args[@]}" restore 2>&1); then
    die "pgBackRest restore failed: $(error_lines "${out}")$(pgbr_damaged_files)"
  fi
}

# pg_start_at DATA_DIR PORT SOCKET_DIR TIMEOUT: start a restored cluster on loopback-free unix socket
# only, so nothing but this host's root and the cluster's owner can reach it, then wait for promotion.
pg_start_at() {
  local data="$1" port="$2" socket="$3" timeout="$4"
  mkdir -p "${socket}"
  chown "${COOP_PG_OS_USER}:" "${socket}"
  chmod 700 "${socket}"
  # Debian keeps postgresql.conf and pg_hba.conf in /etc, outside the backed-up data directory.
  [[ -f "${data}/postgresql.conf" ]] || as_pg touch "${data}/postgresql.conf"
  if [[ ! -f "${data}/pg_hba.conf" ]]; then
    printf 'local all all trust\n' | as_pg tee "${data}/pg_hba.conf" >/dev/null
  fi
  pg_stop_dir "${data}"
  # The postmaster outlives this script; it must not inherit (and hold) the operation's lock.
  # hot_standby=off: a hot standby refuses to start with max_connections (and a few others) below the
  # source's, which lives in /etc on Debian and is not in the backup; nothing reads the copy before it
  # is promoted, and pg_ctl -w then returns when replay is done (or at once when the server exits).
  run_unlocked as_pg "${COOP_PG_BIN}/pg_ctl" -D "${data}" -l "${data}/coop-start.log" -w -t "${timeout}" \
    -o "-p ${port} -c listen_addresses='' -c unix_socket_directories=${socket} -c archive_mode=off -c hot_standby=off" start >/dev/null ||
    die "restored cluster did not start: $(tail -n 5 "${data}/coop-start.log" 2>/dev/null)"
  pg_wait_promoted "${data}" "${socket}" "${port}" "${timeout}" "${data}/coop-start.log"
}

# manifest_backup_set MANIFEST: the pgBackRest backup set a restore to the manifest's restore point starts
# from: the manifest's own, by the first repository (in number order) that still holds it; nothing when
# none does. pgBackRest's default, the newest set, may come from a backup killed before it published:
# it began after the restore point, and replay from it ends with "recovery ended before configured
# recovery target was reached".
manifest_backup_set() {
  local have
  have=$(pgbr_labels)
  manifest_set_among "${have}" "$1"
}

# After a failed restore: which repository files fail their checksums. A restore reports only the
# decoder's error, `verify` names the files (and exits 0 even when it finds some, so read its log).
pgbr_damaged_files() {
  local found
  found=$(pgbr_repo --log-level-console=info verify 2>&1 | grep -oE "invalid checksum '[^']+'|missing '[^']+'" | head -n 5 | paste -sd ' ' || true)
  [[ -n "${found}" ]] && printf '; pgbackrest verify: %s' "${found}"
  return 0
}
