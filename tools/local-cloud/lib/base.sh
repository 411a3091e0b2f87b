# shellcheck shell=bash
# Shared by every local-cloud subcommand: paths, names, locks, timers, mount clean-up. Sourced by
# machine.sh after `set -euo pipefail`; defines functions and constants, runs nothing.
# Logging and `die` come from the host scripts' helpers (scripts/lib/common.sh), prefixed coop[local-cloud].

# Read before common.sh, which gives COOP_STATE_DIR a default of its own.
# shellcheck disable=SC2034 # used by machine-state.sh
readonly STATE_ROOT="${COOP_STATE_DIR:-/var/lib/socialcoop/local-cloud}"
# shellcheck disable=SC2034 # read by scripts/lib/common.sh: its log prefix
COOP_SCRIPT=local-cloud
# shellcheck source=scripts/lib/common.sh
source "${LOCAL_CLOUD_DIR}/../../scripts/lib/common.sh"

# Machines, namespaces and bridges are names the whole kernel shares: their locks are machine-wide,
# whatever COOP_STATE_DIR says (the image's lock lives in its cache).
readonly LOCK_ROOT=/run/lock/socialcoop-local-cloud
readonly LOCK_WAIT_SECONDS="${COOP_LOCK_WAIT:-1800}"
STARTED_US=${EPOCHREALTIME//[^0-9]/}

# elapsed: seconds since the subcommand started, one decimal.
elapsed() {
  local now=${EPOCHREALTIME//[^0-9]/}
  printf '%d.%01d' $(((now - STARTED_US) / 1000000)) $(((now - STARTED_US) % 1000000 / 100000))
}

progress() { log_info "[$(elapsed)s] $*"; }

# lock_wait NAME|PATH: an flock that waits (a second create of the same machine, or a second image
# build, waits for the first); NAME is a lock in LOCK_ROOT. The kernel drops it when the holder dies,
# SIGKILL included, so no lock is stale. Long-lived children must not inherit LOCK_FD.
LOCK_FD=""
lock_wait() {
  local file="${LOCK_ROOT}/$1.lock"
  [[ "$1" == /* ]] && file=$1
  mkdir -p "$(dirname "${file}")"
  exec {LOCK_FD}>>"${file}"
  if ! flock -n "${LOCK_FD}"; then
    log_info "waiting for the lock ${file} (held by another run)"
    flock -w "${LOCK_WAIT_SECONDS}" "${LOCK_FD}" || die "the lock ${file} is still held after ${LOCK_WAIT_SECONDS}s"
  fi
}

# require_name VAR MAX: a name used for interfaces, namespaces and folders: [a-z0-9-], bounded length.
require_name() {
  local var=$1 max=$2
  local value="${!var:-}"
  [[ -n "${value}" ]] || die "missing required environment: ${var}"
  [[ "${value}" =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "${var}=${value}: use lower-case letters, digits and '-'"
  ((${#value} <= max)) || die "${var}=${value}: at most ${max} characters (it names a network interface or namespace)"
}

# fault_point NAME: with COOP_FAULT_AT=NAME, SIGKILLs this run here, as a kill of the caller would:
# its whole process group when it leads one (tests start it so), else its process tree.
fault_point() {
  [[ "${COOP_FAULT_AT:-}" == "$1" ]] || return 0
  log_warn "COOP_FAULT_AT=$1: killing this run"
  if [[ "$(ps -o pgid= -p "$$" | tr -d ' ')" == "$$" ]]; then
    kill -KILL -- "-$$"
  fi
  _fault_kill
}

short_hash() { printf '%s' "$1" | sha256sum | cut -c1-"$2"; }

# mac_for NAME: a stable, locally administered MAC address. A machine re-created under its name keeps
# its MAC, so the neighbour caches of this machine and the other machines stay right.
mac_for() { short_hash "$1" 10 | sed -e 's/../:&/g' -e 's/^/02/'; }

# unmount_below DIR: unmounts DIR and everything mounted beneath it, deepest first (a killed image
# build leaves /proc and /dev mounted in its chroot; a machine leaves its overlay root).
unmount_below() {
  local dir=$1
  local -a targets
  [[ -e "${dir}" ]] || return 0
  dir=$(realpath "${dir}")
  mapfile -t targets < <(findmnt -rn -o TARGET | awk -v d="${dir}" '$0 == d || index($0, d "/") == 1' | sort -r)
  local t
  for t in "${targets[@]}"; do
    umount "${t}" 2>/dev/null || umount -l "${t}" || die "cannot unmount ${t}"
  done
}

# remove_tree DIR: rm -rf that never crosses into a mount (a still-mounted /proc or overlay).
remove_tree() {
  [[ -e "$1" ]] || return 0
  unmount_below "$1"
  rm -rf --one-file-system "$1"
}
