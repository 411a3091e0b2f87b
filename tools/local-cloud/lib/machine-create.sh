# shellcheck shell=bash
# `machine.sh create` and `restart`. Every part of a machine is made by an idempotent ensure_*
# function that checks the kernel first. A create that did not finish (killed at any point, or
# failed) is not resumed: the next create removes what it left and starts again, so no half machine
# survives; a finished machine is marked `complete` and a second create only reports it.
# Sourced by machine.sh.

create_usage() {
  cat <<'EOF'
Usage: machine.sh create   (parameters as environment variables)
  COOP_MACHINE         the machine's name (and hostname, netns name): [a-z0-9-], at most 63 characters
  COOP_NETWORK         the bridge to attach to (machine.sh network-create first)
  COOP_ADDRESS4        e.g. 10.231.7.11/24 (inside the bridge's subnet; the bridge is the gateway)
  COOP_ADDRESS6        e.g. fd42:231:7::11/64
  COOP_VOLUME_GB       size of the data volume (a sparse file, a loop device at /dev/coop-data)
  COOP_USER_DATA       the cloud-init user-data document, verbatim (NoCloud seed)
  COOP_OPEN_TCP_PORTS  the cloud firewall: TCP ports reachable from outside, e.g. "22 80 443"
  COOP_STATE_DIR       state folder (default /var/lib/socialcoop/local-cloud)
  COOP_BOOT_TIMEOUT    seconds to wait for cloud-init and for sshd (default 600)
  COOP_KEEP_FAILED=1   leave a machine whose create failed running, for inspection
Boots the machine, waits until cloud-init has finished and sshd answers, then prints one line:
  {"name":...,"ipv4":...,"ipv6":...,"hostKey":"ssh-ed25519 AAAA...","leaderPid":N}
If the machine already runs, prints the same line without recreating it.
EOF
}

restart_usage() {
  cat <<'EOF'
Usage: COOP_MACHINE=NAME machine.sh restart
A clean reboot: powers the machine off (waiting for it), boots it again with the same root and data
volume, waits for cloud-init and sshd, and prints the same JSON line as create (a new leaderPid).
  COOP_STATE_DIR, COOP_BOOT_TIMEOUT as for create.
EOF
}

validate_create_env() {
  require_name COOP_MACHINE 63
  require_name COOP_NETWORK 15
  require_env COOP_ADDRESS4 COOP_ADDRESS6 COOP_VOLUME_GB COOP_USER_DATA
  [[ "${COOP_ADDRESS4}" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$ ]] || die "COOP_ADDRESS4=${COOP_ADDRESS4}: expected an address with its prefix, e.g. 10.231.7.11/24"
  [[ "${COOP_ADDRESS6}" =~ ^[0-9a-f:]+/[0-9]{1,3}$ ]] || die "COOP_ADDRESS6=${COOP_ADDRESS6}: expected an address with its prefix, e.g. fd42:231:7::11/64"
  [[ "${COOP_VOLUME_GB}" =~ ^[1-9][0-9]*$ ]] || die "COOP_VOLUME_GB=${COOP_VOLUME_GB}: expected a whole number of GB"
  local p
  for p in ${COOP_OPEN_TCP_PORTS//,/ }; do
    if [[ ! "${p}" =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then
      die "COOP_OPEN_TCP_PORTS: '${p}' is not a TCP port"
    fi
  done
  bridge_exists "${COOP_NETWORK}" || die "network ${COOP_NETWORK} does not exist: run machine.sh network-create first"
}

# The parameters a machine was created with; a create with others is refused (delete it first).
create_params() {
  printf 'network=%s\naddress4=%s\naddress6=%s\nvolume_gb=%s\nopen_tcp_ports=%s\nuser_data_sha256=%s\n' \
    "${COOP_NETWORK}" "${COOP_ADDRESS4}" "${COOP_ADDRESS6}" "${COOP_VOLUME_GB}" \
    "$(printf '%s' "${COOP_OPEN_TCP_PORTS//,/ }" | xargs)" "$(printf '%s' "${COOP_USER_DATA}" | sha256sum | cut -d' ' -f1)"
}

ensure_firewall() {
  local -a ports
  read -r -a ports <<<"$(machine_param open_tcp_ports)"
  firewall_apply "${M_TABLE}" "$(machine_param address4 | cut -d/ -f1)" "$(machine_param address6 | cut -d/ -f1)" "${ports[@]}"
}

bridge_gateway() {
  ip -o "-$1" addr show dev "$2" scope global | awk '{ split($4, a, "/"); print a[1]; exit }'
}

# ensure_netns: the machine's network namespace, and a veth pair: eth0 inside with the addresses and
# default routes via the bridge, the host end on the bridge (attached last, behind the firewall).
ensure_netns() {
  local br gw4 gw6
  br=$(machine_param network)
  bridge_exists "${br}" || die "network ${br} does not exist: run machine.sh network-create first"
  gw4=$(bridge_gateway 4 "${br}")
  gw6=$(bridge_gateway 6 "${br}")
  [[ -n "${gw4}" && -n "${gw6}" ]] || die "bridge ${br} has no IPv4 or no global IPv6 address (network-create sets them)"
  [[ -e "/run/netns/${M_NETNS}" ]] || ip netns add "${M_NETNS}"
  ip link show "${M_VETH}" >/dev/null 2>&1 ||
    ip link add "${M_VETH}" address "$(mac_for "host:${M_NAME}")" type veth \
      peer name eth0 address "$(mac_for "${M_NAME}")" netns "${M_NETNS}"
  ip -n "${M_NETNS}" link set lo up
  # Stable MACs keep neighbour caches right when a machine is re-created; should another machine take
  # over the addresses, they are announced when eth0 comes up (after the host end) and flushed here.
  ip netns exec "${M_NETNS}" sysctl -qw net.ipv4.conf.eth0.arp_notify=1 net.ipv6.conf.eth0.ndisc_notify=1
  ip -n "${M_NETNS}" addr replace "$(machine_param address4)" dev eth0
  ip -n "${M_NETNS}" -6 addr replace "$(machine_param address6)" dev eth0 nodad
  ip link set "${M_VETH}" master "${br}" up
  ip -n "${M_NETNS}" link set eth0 up
  ip -n "${M_NETNS}" route replace default via "${gw4}" dev eth0
  ip -n "${M_NETNS}" -6 route replace default via "${gw6}" dev eth0
  ip neigh flush to "$(machine_param address4 | cut -d/ -f1)" dev "${br}"
  ip -6 neigh flush to "$(machine_param address6 | cut -d/ -f1)" dev "${br}"
}

# ensure_root: the machine's writable root, an overlay over the cached image (shared, read-only).
ensure_root() {
  local image
  image=$(machine_param image)
  [[ -d "${image}" ]] || die "machine ${M_NAME}: its image ${image} is gone from the cache"
  mkdir -p "${M_DIR}/upper" "${M_DIR}/work" "${M_ROOT}"
  mountpoint -q "${M_ROOT}" ||
    mount -t overlay overlay -o "lowerdir=${image},upperdir=${M_DIR}/upper,workdir=${M_DIR}/work" "${M_ROOT}"
}

# write_seed: the NoCloud seed: user-data verbatim, a fresh instance-id for every create.
write_seed() {
  local seed="${M_ROOT}/var/lib/cloud/seed/nocloud"
  mkdir -p "${seed}"
  printf '%s' "${COOP_USER_DATA}" >"${seed}/user-data.tmp"
  printf 'instance-id: %s-%s\nlocal-hostname: %s\n' "${M_NAME}" "$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" "${M_NAME}" >"${seed}/meta-data.tmp"
  mv -f "${seed}/user-data.tmp" "${seed}/user-data"
  mv -f "${seed}/meta-data.tmp" "${seed}/meta-data"
}

volume_loops() { [[ -f "${M_VOLUME}" ]] && losetup -n -O NAME -j "${M_VOLUME}"; }

# ensure_volume: prints the loop device of the data volume; never attaches a second one.
ensure_volume() {
  local -a loops
  if [[ ! -f "${M_VOLUME}" ]]; then
    truncate -s "$(machine_param volume_gb)G" "${M_VOLUME}.tmp"
    mv -f "${M_VOLUME}.tmp" "${M_VOLUME}"
  fi
  mapfile -t loops < <(volume_loops)
  if ((${#loops[@]} == 0)); then
    losetup --find --show "${M_VOLUME}"
    return 0
  fi
  local extra
  for extra in "${loops[@]:1}"; do losetup -d "${extra}"; done
  printf '%s\n' "${loops[0]}"
}

machine_json() {
  local key leader
  key=$(host_key)
  leader=$(leader_pid)
  [[ "${key}" == ssh-ed25519\ * && -n "${leader}" ]] || die "machine ${M_NAME}: no running machine or no ed25519 host key"
  printf '{"name":"%s","ipv4":"%s","ipv6":"%s","hostKey":"%s","leaderPid":%s}\n' "${M_NAME}" \
    "$(machine_param address4 | cut -d/ -f1)" "$(machine_param address6 | cut -d/ -f1)" "${key}" "${leader}"
}

# start_machine: everything a machine needs around it (all idempotent), then boot and wait.
start_machine() {
  local loop
  ensure_firewall
  fault_point firewall
  ensure_netns
  fault_point netns
  ensure_root
  loop=$(ensure_volume)
  fault_point volume
  progress "machine ${M_NAME}: root ${M_ROOT}, volume ${loop}, ${M_VETH} on $(machine_param network)"
  boot_machine "${loop}"
  fault_point booted
  wait_cloud_init
  wait_sshd "$(machine_param address4 | cut -d/ -f1)"
}

create_failed() {
  local rc=$?
  ((rc == 0)) && return 0
  if [[ "${COOP_KEEP_FAILED:-}" == 1 ]]; then
    log_warn "create failed; COOP_KEEP_FAILED=1 leaves ${M_NAME} for inspection (machine.sh delete removes it)"
  else
    log_warn "create failed: removing the unfinished machine ${M_NAME} (COOP_KEEP_FAILED=1 keeps it)"
    machine_teardown 10 || true
  fi
  exit "${rc}"
}

cmd_create() {
  validate_create_env
  machine_init "${COOP_MACHINE}"
  lock_wait "${M_LOCK}"
  if [[ -f "${M_DIR}/complete" ]]; then
    if [[ "$(create_params)" != "$(grep -v '^image=' "${M_DIR}/params")" ]]; then
      die "machine ${M_NAME} exists with other parameters ($(diff <(grep -v '^image=' "${M_DIR}/params") <(create_params) | sed -n 's/^[<>] \([^=]*\)=.*/\1/p' | sort -u | paste -sd,)): delete it first (Pulumi: deleteBeforeReplace)"
    fi
    if [[ "$(machine_status)" != running ]]; then
      progress "machine ${M_NAME} exists but is stopped: booting it"
      power_off "${STOP_TIMEOUT}" # whatever half of it may still run (an nspawn without its systemd)
      start_machine
    else
      progress "machine ${M_NAME} already runs"
    fi
    machine_json
    return 0
  fi
  if [[ "$(machine_status)" != absent ]] || nft list table inet "${M_TABLE}" >/dev/null 2>&1; then
    log_warn "machine ${M_NAME}: an unfinished create left parts behind: removing them first"
    machine_teardown 10
  fi
  local image
  image=$(image_path)
  trap create_failed EXIT
  mkdir -p "${M_DIR}"
  { create_params && printf 'image=%s\n' "${image}"; } >"${M_DIR}/params.tmp"
  mv -f "${M_DIR}/params.tmp" "${M_DIR}/params"
  ensure_root
  write_seed
  fault_point seed
  start_machine
  machine_json >"${M_DIR}/created.json"
  fault_point json
  touch "${M_DIR}/complete"
  trap - EXIT
  progress "machine ${M_NAME} created"
  cat "${M_DIR}/created.json"
}

cmd_restart() {
  require_name COOP_MACHINE 63
  machine_init "${COOP_MACHINE}"
  lock_wait "${M_LOCK}"
  [[ -f "${M_DIR}/complete" ]] || die "machine ${M_NAME} does not exist (or its create did not finish): nothing to restart"
  progress "machine ${M_NAME}: restarting"
  power_off "${STOP_TIMEOUT}"
  start_machine
  progress "machine ${M_NAME} restarted"
  machine_json
}
