# shellcheck shell=bash
# Booting and powering off a machine: systemd-nspawn with systemd as PID 1, detached from the
# caller, then waiting for cloud-init and sshd; power-off waits for nspawn and leaves no process.
# Sourced by machine.sh.

# The fixed path of the data volume inside every machine; cloud-init mounts it at /srv.
readonly DATA_DEVICE="/dev/coop-data"
# The detached child: closes inherited fds, writes its own pid (it becomes nspawn's), then execs nspawn.
# shellcheck disable=SC2016 # expanded by the child shell
readonly NSPAWN_LAUNCHER='for f in /proc/self/fd/*; do n=${f##*/}; if ((n > 2)) && [[ -e "$f" ]]; then exec {n}>&-; fi; done
printf "%s\n" "$$" >"$1.tmp" && mv -f "$1.tmp" "$1" && shift && exec "$@"'
readonly BOOT_TIMEOUT="${COOP_BOOT_TIMEOUT:-600}"

# wait_until SECONDS CMD...: polls CMD every 0.2 s; fails after SECONDS.
wait_until() {
  local seconds=$1
  shift
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

no_machine_pids() { [[ -z "$(machine_pids)" ]]; }
machine_gone() { [[ -z "$(nspawn_pid)" ]] && no_machine_pids; }
has_leader() { [[ -n "$(leader_pid)" ]]; }

# boot_machine LOOP_DEVICE: starts nspawn in its own session (it outlives this command and a kill of
# its process group); the child writes its own pid file before exec, so no kill point loses it.
boot_machine() {
  local loop=$1
  local -a nspawn=(
    systemd-nspawn --quiet -D "${M_ROOT}" --boot --machine="${M_NAME}"
    --register=no --keep-unit --link-journal=no --resolv-conf=off --timezone=off
    --network-namespace-path="/run/netns/${M_NETNS}"
    --bind="${loop}:${DATA_DEVICE}"
    --capability=CAP_NET_ADMIN
    --console=read-only
  )
  rm -f "${M_PIDFILE}" "${M_DIR}/pidns"
  printf '\n=== boot %s ===\n' "$(date -u +%FT%TZ)" >>"${M_DIR}/console.log"
  # The host's PID 1 is not systemd and cgroups are hybrid: nspawn needs the legacy layout (FIELD-NOTES),
  # hence SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=0.
  # A clean environment: nothing of the caller's (COOP_USER_DATA included) stays in nspawn's, and no
  # file descriptor but 0-2 (a lock fd inherited by nspawn would hold the machine's lock forever).
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=0 setsid --fork bash -c "${NSPAWN_LAUNCHER}" \
    boot "${M_PIDFILE}" "${nspawn[@]}" </dev/null >>"${M_DIR}/console.log" 2>&1 {LOCK_FD}>&-
  if ! wait_until 30 has_leader; then
    tail -n 20 "${M_DIR}/console.log" >&2
    die "machine ${M_NAME}: systemd-nspawn did not start the machine's systemd within 30s (console above: ${M_DIR}/console.log)"
  fi
  printf '%s %s\n' "$(readlink "/proc/$(leader_pid)/ns/pid")" "$(cat /proc/sys/kernel/random/boot_id)" >"${M_DIR}/pidns"
  progress "machine ${M_NAME} booting: nspawn pid $(nspawn_pid), leader pid $(leader_pid)"
}

# cloud_init_failure: what failed, for the error message: the modules cloud-init names and the
# last lines of its logs.
cloud_init_failure() {
  {
    in_machine cloud-init status --long 2>&1 || true
    printf -- '--- failed modules (cloud-init.log) ---\n'
    in_machine grep -E 'Running module .* failed|\[(WARNING|ERROR)\]' /var/log/cloud-init.log 2>/dev/null | tail -n 10 || true
    printf -- '--- last lines of /var/log/cloud-init-output.log ---\n'
    in_machine tail -n 15 /var/log/cloud-init-output.log 2>/dev/null || true
  } >&2
}

wait_cloud_init() {
  local rc=0
  timeout "${BOOT_TIMEOUT}" nsenter --target "$(leader_pid)" --mount --uts --ipc --net --pid -- \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin cloud-init status --wait >/dev/null 2>&1 || rc=$?
  if ((rc == 124)); then
    cloud_init_failure
    die "machine ${M_NAME}: cloud-init did not finish within ${BOOT_TIMEOUT}s (COOP_BOOT_TIMEOUT)"
  elif ((rc != 0)); then
    local failed
    failed=$(in_machine cat /var/log/cloud-init.log 2>/dev/null |
      sed -nE 's/.*Running module ([a-z0-9_-]+) .* failed.*/\1/p' | sort -u | paste -sd, || true)
    cloud_init_failure
    die "machine ${M_NAME}: cloud-init failed${failed:+ in module(s) ${failed}} (details above; inside: /var/log/cloud-init.log)"
  fi
  progress "machine ${M_NAME}: cloud-init finished"
}

host_key() { in_machine cat /etc/ssh/ssh_host_ed25519_key.pub 2>/dev/null | awk '{ print $1, $2 }'; }

# sshd_answers IP KEY: sshd on the address answers with the machine's own host key.
sshd_answers() {
  local ip=$1 key=$2
  [[ -n "${key}" ]] || return 1
  ssh-keyscan -T 2 -t ed25519 "${ip}" 2>/dev/null | awk '{ print $2, $3 }' | grep -qxF "${key}"
}

wait_sshd() {
  local ip=$1
  local deadline=$((SECONDS + BOOT_TIMEOUT))
  until sshd_answers "${ip}" "$(host_key)"; do
    ((SECONDS < deadline)) || die "machine ${M_NAME}: sshd on ${ip}:22 did not answer with the machine's host key within ${BOOT_TIMEOUT}s"
    has_leader || die "machine ${M_NAME} stopped while waiting for sshd (console: ${M_DIR}/console.log)"
    sleep 0.3
  done
  progress "machine ${M_NAME}: sshd answers on ${ip}"
}

# kill_machine_pids SIGNAL: signals every process of the machine.
kill_machine_pids() {
  local -a pids
  mapfile -t pids < <(machine_pids)
  ((${#pids[@]} == 0)) || kill "-$1" "${pids[@]}" 2>/dev/null || true
}

# power_off TIMEOUT: a clean shutdown (SIGTERM to nspawn asks the machine to power off; SIGRTMIN+4 to its
# systemd if nspawn is gone), waiting for nspawn to exit; then SIGKILL whatever is left. A SIGKILL of
# nspawn alone would orphan the machine's systemd, so the machine's own processes are checked too.
power_off() {
  local timeout=$1
  local nspawn leader
  nspawn=$(nspawn_pid)
  leader=$(leader_pid)
  if [[ -n "${nspawn}" ]]; then
    progress "machine ${M_NAME}: powering off (SIGTERM to nspawn ${nspawn})"
    kill -TERM "${nspawn}" 2>/dev/null || true
  elif [[ -n "${leader}" ]]; then
    progress "machine ${M_NAME}: powering off an orphaned machine (SIGRTMIN+4 to its systemd ${leader})"
    kill -RTMIN+4 "${leader}" 2>/dev/null || true
  fi
  if [[ -n "${nspawn}${leader}" ]] && ! wait_until "${timeout}" machine_gone; then
    log_warn "machine ${M_NAME}: still running after ${timeout}s: SIGKILL"
  fi
  if ! machine_gone; then
    nspawn=$(nspawn_pid)
    [[ -z "${nspawn}" ]] || kill -KILL "${nspawn}" 2>/dev/null || true
    kill_machine_pids KILL
    wait_until 20 no_machine_pids ||
      die "machine ${M_NAME}: processes still alive after SIGKILL: $(machine_pids | paste -sd' ')"
  fi
  rm -f "${M_PIDFILE}"
}
