# shellcheck shell=bash
# `machine.sh delete`: power off, then remove every part of the machine, each step checking the
# kernel first, so a delete killed anywhere and run again finishes the job. Sourced by machine.sh.

readonly STOP_TIMEOUT="${COOP_STOP_TIMEOUT:-60}"

delete_usage() {
  cat <<'EOF'
Usage: COOP_MACHINE=NAME machine.sh delete
Powers the machine off (SIGTERM to nspawn, waiting; SIGKILL after COOP_STOP_TIMEOUT, default 60 s),
checks that no process of the machine is left, then removes its firewall table, veth, network
namespace, mounts, loop device and state folder (the data volume with it). Deleting a machine that
does not exist succeeds. Other COOP_* variables are ignored.
  COOP_STATE_DIR   state folder (default /var/lib/socialcoop/local-cloud)
EOF
}

detach_volume() {
  local loop
  local -a loops
  mapfile -t loops < <(volume_loops || true)
  for loop in "${loops[@]}"; do
    losetup -d "${loop}" 2>/dev/null || log_warn "losetup -d ${loop} failed; retrying"
  done
  # A loop device whose filesystem is still being released is only marked for auto-clear: wait.
  wait_until 20 no_volume_loops || die "machine ${M_NAME}: loop device(s) still attached: $(volume_loops | paste -sd' ')"
}

no_volume_loops() { [[ -z "$(volume_loops || true)" ]]; }

# machine_teardown STOP_TIMEOUT: (an unfinished machine is discarded with a shorter wait).
machine_teardown() {
  power_off "$1"
  fault_point powered-off
  firewall_remove "${M_TABLE}"
  if ip link show "${M_VETH}" >/dev/null 2>&1; then ip link del "${M_VETH}"; fi
  if [[ -e "/run/netns/${M_NETNS}" ]]; then ip netns del "${M_NETNS}"; fi
  fault_point unlinked
  unmount_below "${M_DIR}"
  detach_volume
  remove_tree "${M_DIR}"
}

cmd_delete() {
  require_name COOP_MACHINE 63
  machine_init "${COOP_MACHINE}"
  lock_wait "${M_LOCK}"
  if [[ "$(machine_status)" == absent ]] && ! nft list table inet "${M_TABLE}" >/dev/null 2>&1; then
    progress "machine ${M_NAME} is already absent"
    return 0
  fi
  machine_teardown "${STOP_TIMEOUT}"
  progress "machine ${M_NAME} deleted"
}
