# shellcheck shell=bash
# A machine's names and what is running of it. The kernel is the source of truth (processes,
# namespaces, links, loop devices, mounts); the state folder only records what was asked for.
# Sourced by machine.sh.

# machine_init NAME: the names every other function uses.
# shellcheck disable=SC2034 # the M_* names are read by the other lib files
machine_init() {
  M_NAME=$1
  M_DIR="${STATE_ROOT}/machines/${M_NAME}"
  M_ROOT="${M_DIR}/root"
  M_VOLUME="${M_DIR}/volume.img"
  M_PIDFILE="${M_DIR}/nspawn.pid"
  M_NETNS="${M_NAME}"
  # Interface names are at most 15 characters: a hash keeps long machine names apart.
  M_VETH="lc-$(short_hash "${M_NAME}" 10)"
  M_TABLE="coop-m-${M_NAME}"
  M_LOCK="machine-${M_NAME}"
}

machine_param() { sed -n "s/^$1=//p" "${M_DIR}/params" 2>/dev/null | head -n 1; }

# pid_cmdline PID: the command line, NULs as spaces.
pid_cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# nspawn_pid: the systemd-nspawn running this machine (from the pid file it writes itself before
# exec, else by looking for it: a create killed before anything was recorded still finds it).
nspawn_pid() {
  local pid
  local -a pids
  pid=$(cat "${M_PIDFILE}" 2>/dev/null || true)
  if [[ "${pid}" =~ ^[0-9]+$ ]] && [[ "$(pid_cmdline "${pid}")" == *"systemd-nspawn "*" -D ${M_ROOT} "* ]]; then
    printf '%s\n' "${pid}"
    return 0
  fi
  mapfile -t pids < <(pgrep -f -x "systemd-nspawn .* -D ${M_ROOT} .*" || true)
  [[ ${#pids[@]} -gt 0 ]] && printf '%s\n' "${pids[0]}"
  return 0
}

# root_dev: the device number of the machine's overlay root while it is mounted, else nothing.
root_dev() {
  mountpoint -q "${M_ROOT}" 2>/dev/null || return 0
  stat -L -c %d "${M_ROOT}/"
}

# machine_pids: every process of the machine: those whose root is the machine's overlay (every
# process inside, whatever mount namespace it made for itself) and those in its recorded PID
# namespace (even if the root were gone).
machine_pids() {
  local dev pidns p
  dev=$(root_dev)
  # Recorded as "pid:[inode] boot_id": namespace inodes are reused after this machine reboots.
  pidns=$(awk -v boot="$(cat /proc/sys/kernel/random/boot_id)" '$2 == boot { print $1 }' "${M_DIR}/pidns" 2>/dev/null || true)
  [[ -n "${dev}${pidns}" ]] || return 0
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    if [[ -n "${dev}" && "$(stat -L -c %d "/proc/${p}/root/" 2>/dev/null || true)" == "${dev}" ]] ||
      [[ -n "${pidns}" && "$(readlink "/proc/${p}/ns/pid" 2>/dev/null || true)" == "${pidns}" ]]; then
      printf '%s\n' "${p}"
    fi
  done
}

# leader_pid: the machine's PID 1 (its systemd) as the host sees it.
leader_pid() {
  local p nspid
  while read -r p; do
    nspid=$(awk '/^NSpid:/ { print $NF }' "/proc/${p}/status" 2>/dev/null || true)
    if [[ "${nspid}" == 1 && "$(readlink "/proc/${p}/ns/pid")" != "$(readlink /proc/self/ns/pid)" ]]; then
      printf '%s\n' "${p}"
      return 0
    fi
  done < <(machine_pids)
  return 0
}

machine_status() {
  if [[ -n "$(nspawn_pid)" && -n "$(leader_pid)" ]]; then
    printf 'running\n'
  elif [[ -d "${M_DIR}" || -e "/run/netns/${M_NETNS}" ]] || ip link show "${M_VETH}" >/dev/null 2>&1; then
    printf 'stopped\n'
  else
    printf 'absent\n'
  fi
}

# in_machine CMD...: runs a command inside the machine (its namespaces and root), clean environment.
in_machine() {
  local leader
  leader=$(leader_pid)
  [[ -n "${leader}" ]] || die "machine ${M_NAME} is not running"
  nsenter --target "${leader}" --mount --uts --ipc --net --pid -- \
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

status_usage() {
  cat <<'EOF'
Usage: COOP_MACHINE=NAME machine.sh status
Prints `running` (nspawn and the machine's systemd are alive), `stopped` (something of the machine
exists but it does not run) or `absent` (nothing of it exists).
  COOP_STATE_DIR   state folder (default /var/lib/socialcoop/local-cloud)
EOF
}

cmd_status() {
  require_name COOP_MACHINE 63
  machine_init "${COOP_MACHINE}"
  machine_status
}
