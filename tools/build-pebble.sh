#!/usr/bin/env bash
# Builds pebble (Let's Encrypt's small ACME server for tests) and pebble-challtestsrv (its DNS server
# with an HTTP API for TXT records) from the Go module proxy into a cache outside the repository, keyed
# by version, and prints the folder holding both. Local stacks get their certificates from these
# (tools/acme-server.ts): certbot on the hosts runs the same DNS-01 issuance as on a real stack.
#
#   tools/build-pebble.sh               build if needed, print the bin folder
#   tools/build-pebble.sh --print-dir   print the bin folder only
#   tools/build-pebble.sh --help
#
# Environment: COOP_CACHE (default /var/cache/socialcoop), GOPROXY as usual. About 20 s cold.
set -euo pipefail

readonly PEBBLE_VERSION="v2.10.3"
readonly CACHE_ROOT="${COOP_CACHE:-/var/cache/socialcoop}"
readonly DIR="${CACHE_ROOT}/pebble-${PEBBLE_VERSION}"
readonly BIN="${DIR}/bin"

log() { printf 'build-pebble: %s\n' "$*" >&2; }
die() { printf 'build-pebble: error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

built() { [[ -f "${DIR}/.complete" && -x "${BIN}/pebble" && -x "${BIN}/pebble-challtestsrv" ]]; }

main() {
  case "${1:-}" in
    --help | -h) usage; return 0 ;;
    --print-dir) printf '%s\n' "${BIN}"; return 0 ;;
    "") ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  if built; then
    printf '%s\n' "${BIN}"
    return 0
  fi
  command -v go >/dev/null || die "go is not installed (Go 1.25 or newer, with the module proxy)"
  rm -rf "${DIR}"
  mkdir -p "${BIN}"
  log "building pebble ${PEBBLE_VERSION} and pebble-challtestsrv from the Go module proxy"
  local started=${SECONDS}
  GOBIN="${BIN}" GOFLAGS=-mod=mod go install \
    "github.com/letsencrypt/pebble/v2/cmd/pebble@${PEBBLE_VERSION}" \
    "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@${PEBBLE_VERSION}" ||
    die "go install of pebble ${PEBBLE_VERSION} failed (output above)"
  touch "${DIR}/.complete"
  log "built in $((SECONDS - started)) s into ${BIN}"
  printf '%s\n' "${BIN}"
}

main "$@"
