#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The "local cloud": Debian 12 systemd-nspawn machines that behave like small VPSes, for
# `provider: local` hosts (docs/local-cloud.md). A Pulumi program runs the subcommands through
# command.local.Command; every parameter is a COOP_* environment variable. Run as root.
set -euo pipefail

LOCAL_CLOUD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly LOCAL_CLOUD_DIR
# shellcheck source=lib/base.sh
source "${LOCAL_CLOUD_DIR}/lib/base.sh"
# shellcheck source=lib/image.sh
source "${LOCAL_CLOUD_DIR}/lib/image.sh"
# shellcheck source=lib/network.sh
source "${LOCAL_CLOUD_DIR}/lib/network.sh"
# shellcheck source=lib/machine-state.sh
source "${LOCAL_CLOUD_DIR}/lib/machine-state.sh"
# shellcheck source=lib/machine-boot.sh
source "${LOCAL_CLOUD_DIR}/lib/machine-boot.sh"
# shellcheck source=lib/machine-create.sh
source "${LOCAL_CLOUD_DIR}/lib/machine-create.sh"
# shellcheck source=lib/machine-delete.sh
source "${LOCAL_CLOUD_DIR}/lib/machine-delete.sh"

readonly SUBCOMMANDS=(image network-create network-delete create delete restart status)

usage() {
  cat <<'EOF'
Usage: machine.sh <subcommand> [--help]
Creates and deletes local Debian 12 machines (systemd-nspawn) that behave like small VPSes.
Parameters are environment variables; `machine.sh <subcommand> --help` lists them.

  image            build (once) the cached root filesystem; prints its path
  network-create   the bridge the machines attach to (COOP_NETWORK, COOP_SUBNET4, COOP_SUBNET6)
  network-delete   remove the bridge (refused while machines are attached)
  create           boot a machine and wait for cloud-init and sshd; prints one line of JSON
  delete           power a machine off and remove everything it had (idempotent)
  restart          clean reboot of a machine; waits for sshd
  status           prints running, stopped or absent

Logs go to stderr, prefixed coop[local-cloud]; stdout carries only the result.
EOF
}

main() {
  local sub="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "${sub}" in
    "" | -h | --help | help)
      usage
      [[ -n "${sub}" ]] || exit 2
      return 0
      ;;
  esac
  local known=""
  local s
  for s in "${SUBCOMMANDS[@]}"; do [[ "${s}" == "${sub}" ]] && known=1; done
  [[ -n "${known}" ]] || { usage >&2; die "unknown subcommand '${sub}'"; }
  local fn="cmd_${sub//-/_}"
  if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    "${sub//-/_}_usage"
    return 0
  fi
  [[ $# -eq 0 ]] || die "${sub} takes no arguments (parameters are COOP_* environment variables; see --help)"
  [[ "${EUID}" -eq 0 ]] || die "must run as root (network namespaces, loop devices, systemd-nspawn)"
  "${fn}"
}

main "$@"
