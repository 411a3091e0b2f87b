# shellcheck shell=bash
# The local cloud's network: one Linux bridge in the root namespace per stack network (it holds the
# gateway addresses .1 and ::1, so the machine running Pulumi reaches every machine), and per machine
# the cloud firewall, an nftables table in the root namespace where the machine cannot touch it.
# Sourced by machine.sh.

network_usage() {
  cat <<'EOF'
Usage: COOP_NETWORK=NAME COOP_SUBNET4=10.231.7.0/24 COOP_SUBNET6=fd42:231:7::/64 machine.sh network-create
       COOP_NETWORK=NAME machine.sh network-delete
  COOP_NETWORK   the bridge's name (at most 15 characters, [a-z0-9-])
  COOP_SUBNET4   IPv4 subnet; the bridge gets its first address (.1)
  COOP_SUBNET6   IPv6 /64 (a ULA); the bridge gets ::1
network-create is idempotent. network-delete refuses while machines are attached to the bridge.
Traffic is bridged, never routed: machines reach each other and this machine, nothing beyond.
EOF
}
network_create_usage() { network_usage; }
network_delete_usage() { network_usage; }

net_table() { printf 'coop-n-%s' "$1"; }

# gateway4 SUBNET: the first address of an IPv4 subnet, with its prefix.
gateway4() {
  local subnet=$1
  local a b c d prefix n mask
  [[ "${subnet}" =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})/([0-9]{1,2})$ ]] ||
    die "COOP_SUBNET4=${subnet}: expected an IPv4 subnet such as 10.231.7.0/24"
  a=${BASH_REMATCH[1]} b=${BASH_REMATCH[2]} c=${BASH_REMATCH[3]} d=${BASH_REMATCH[4]} prefix=${BASH_REMATCH[5]}
  ((prefix >= 8 && prefix <= 30)) || die "COOP_SUBNET4=${subnet}: the prefix must be between /8 and /30"
  n=$(((a << 24) | (b << 16) | (c << 8) | d))
  mask=$(((0xffffffff << (32 - prefix)) & 0xffffffff))
  ((n & ~mask & 0xffffffff)) && die "COOP_SUBNET4=${subnet}: host bits are set (use the network address)"
  n=$((n + 1))
  printf '%d.%d.%d.%d/%d\n' $((n >> 24 & 255)) $((n >> 16 & 255)) $((n >> 8 & 255)) $((n & 255)) "${prefix}"
}

gateway6() {
  local subnet=$1
  [[ "${subnet}" =~ ^([0-9a-f:]+::)/64$ ]] || die "COOP_SUBNET6=${subnet}: expected an IPv6 /64 ending in '::', such as fd42:231:7::/64"
  printf '%s1/64\n' "${BASH_REMATCH[1]}"
}

bridge_exists() { ip link show "$1" type bridge >/dev/null 2>&1; }

bridge_ports() { ip -o link show master "$1" 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'; }

cmd_network_create() {
  require_name COOP_NETWORK 15
  require_env COOP_SUBNET4 COOP_SUBNET6
  local br=${COOP_NETWORK} gw4 gw6
  gw4=$(gateway4 "${COOP_SUBNET4}")
  gw6=$(gateway6 "${COOP_SUBNET6}")
  lock_wait "network-${br}"
  if ! bridge_exists "${br}"; then
    ip link show "${br}" >/dev/null 2>&1 && die "${br} exists and is not a bridge"
    progress "creating bridge ${br} (${gw4}, ${gw6})"
    ip link add "${br}" type bridge
  fi
  # Bridged IPv4/IPv6 goes through this namespace's nftables (conntrack included) for this bridge
  # only: that is where the machines' firewalls live (bridge-family conntrack is not in every kernel).
  ip link set "${br}" type bridge stp_state 0 nf_call_iptables 1 nf_call_ip6tables 1
  # A bridge left to itself takes the lowest MAC of its ports, which changes as machines come and go.
  ip link set "${br}" address "$(mac_for "bridge:${br}")"
  sysctl -qw "net.ipv6.conf.${br}.disable_ipv6=0" "net.ipv6.conf.${br}.accept_ra=0"
  ip addr replace "${gw4}" dev "${br}"
  ip -6 addr replace "${gw6}" dev "${br}" nodad
  ip link set "${br}" up
  # No route out: nothing is routed between the bridge and any other interface of this machine.
  nft -f - <<EOF
table inet $(net_table "${br}")
delete table inet $(net_table "${br}")
table inet $(net_table "${br}") {
  chain forward {
    type filter hook forward priority -20; policy accept;
    iifname "${br}" oifname != "${br}" drop
    oifname "${br}" iifname != "${br}" drop
  }
}
EOF
  progress "network ${br} ready: ${gw4} ${gw6}"
}

cmd_network_delete() {
  require_name COOP_NETWORK 15
  local br=${COOP_NETWORK}
  local -a ports
  lock_wait "network-${br}"
  if bridge_exists "${br}"; then
    mapfile -t ports < <(bridge_ports "${br}")
    if ((${#ports[@]} > 0)); then
      die "network ${br} still has ${#ports[@]} machine(s) attached (${ports[*]}): delete them first (machine.sh delete)"
    fi
    ip link del "${br}"
    progress "bridge ${br} deleted"
  else
    progress "bridge ${br} is already absent"
  fi
  nft delete table inet "$(net_table "${br}")" 2>/dev/null || true
}

# firewall_apply TABLE ADDR4 ADDR6 PORTS...: the machine's cloud firewall. Inbound, only the listed
# TCP ports, ICMP and replies to the machine's own connections reach it; outbound is not limited.
# It filters both bridged traffic (other machines, other namespaces) and this machine's own.
firewall_apply() {
  local table=$1 a4=$2 a6=$3
  shift 3
  local ports_rule=""
  if (($# > 0)); then
    local IFS=,
    ports_rule="tcp dport { $* } accept"
  fi
  nft -f - <<EOF
table inet ${table}
delete table inet ${table}
table inet ${table} {
  chain inbound {
    ct state established,related accept
    meta l4proto { icmp, ipv6-icmp } accept
    ${ports_rule}
    counter drop
  }
  chain forward {
    type filter hook forward priority -10; policy accept;
    ip daddr ${a4} jump inbound
    ip6 daddr ${a6} jump inbound
  }
  chain output {
    type filter hook output priority -10; policy accept;
    ip daddr ${a4} jump inbound
    ip6 daddr ${a6} jump inbound
  }
}
EOF
}

firewall_remove() { nft delete table inet "$1" 2>/dev/null || true; }
