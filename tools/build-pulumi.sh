#!/usr/bin/env bash
# Builds the Pulumi CLI and the Node.js language host from the Go module proxy into a cache outside the
# repository, keyed by version, and prints the folder to put on PATH (with tools/bin, which holds the
# command provider). Idempotent: a finished build is reused; an unfinished one is rebuilt.
#
#   tools/build-pulumi.sh            build if needed, print the bin folder
#   tools/build-pulumi.sh --print-dir   print the bin folder only
#   tools/build-pulumi.sh --help
#
# Environment: COOP_CACHE (default /var/cache/socialcoop), GOPROXY as usual.
#
# What the module proxy serves here decides the versions (docs/pulumi-engine.md has the measurements):
# - the CLI: github.com/pulumi/pulumi/pkg/v3 at the version of @pulumi/pulumi in package.json;
# - the language host: its own module (sdk/nodejs/cmd/pulumi-language-nodejs/v3) is refused, so it is
#   built from github.com/pulumi/pulumi/sdk/v3 v3.68.0, the newest served release that still carries
#   it inside the sdk module; it only starts `node @pulumi/pulumi/cmd/run` of the installed SDK;
# - the command provider: github.com/pulumi/pulumi-command/provider is refused at every version, so
#   tools/bin/pulumi-resource-command runs the stand-in in tools/command-provider.
set -euo pipefail

readonly PULUMI_VERSION="v3.248.0"
readonly LANGUAGE_HOST_SDK_VERSION="v3.68.0"
# pkg/go.mod replaces this fork in; a replace of a dependency is not inherited, so it is copied here.
readonly CLIPBOARD_REPLACE="github.com/atotto/clipboard=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e"

readonly CACHE_ROOT="${COOP_CACHE:-/var/cache/socialcoop}"
readonly DIR="${CACHE_ROOT}/pulumi-${PULUMI_VERSION}-language-nodejs-${LANGUAGE_HOST_SDK_VERSION}"
readonly BIN="${DIR}/bin"

log() { printf 'build-pulumi: %s\n' "$*" >&2; }
die() { printf 'build-pulumi: error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,19s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

check_version_matches_package_json() {
  local root want
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  want="$(node -p "require('${root}/package.json').dependencies['@pulumi/pulumi']")"
  [[ "v${want}" == "${PULUMI_VERSION}" ]] \
    || die "package.json pins @pulumi/pulumi ${want} but this script builds the CLI ${PULUMI_VERSION}: set PULUMI_VERSION in tools/build-pulumi.sh"
}

built() {
  [[ -f "${DIR}/.complete" && -x "${BIN}/pulumi" && -x "${BIN}/pulumi-language-nodejs" ]]
}

# A wrapper module whose only content is a blank import of the command to build (never compiled itself).
write_module() {
  local dir="$1" name="$2" go_version="$3" pkg="$4"
  rm -rf "${dir}"
  mkdir -p "${dir}"
  printf 'module %s\n\ngo %s\n' "${name}" "${go_version}" >"${dir}/go.mod"
  printf 'package main\n' >"${dir}/main.go"
  printf '//go:build tools\n\npackage main\n\nimport _ "%s"\n' "${pkg}" >"${dir}/tools.go"
}

tidy() {
  local dir="$1" what="$2"
  (cd "${dir}" && go mod tidy) >"${dir}/tidy.log" 2>&1 || {
    tail -n 20 "${dir}/tidy.log" >&2
    die "resolving ${what} from the Go module proxy failed (above; full log ${dir}/tidy.log); GOPROXY=$(go env GOPROXY)"
  }
}

compile() {
  local dir="$1" out="$2" pkg="$3" ldflags="$4"
  local start=${SECONDS}
  (cd "${dir}" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w ${ldflags}" -o "${out}.tmp" "${pkg}") \
    || die "go build of ${pkg} failed (above)"
  mv "${out}.tmp" "${out}"
  log "  ${out##*/} built in $((SECONDS - start)) s"
}

build_cli() {
  local dir="${DIR}/src/cli"
  local pkg="github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
  log "[1/2] pulumi ${PULUMI_VERSION}: resolving modules (about 1 min cold), then compiling (about 3 min on 2 cores)"
  write_module "${dir}" coop.local/pulumi-cli 1.25.11 "${pkg}"
  (
    cd "${dir}"
    go mod edit -replace "${CLIPBOARD_REPLACE}" \
      -require "github.com/pulumi/pulumi/pkg/v3@${PULUMI_VERSION}" -require "github.com/pulumi/pulumi/sdk/v3@${PULUMI_VERSION}"
  )
  tidy "${dir}" "github.com/pulumi/pulumi/pkg/v3@${PULUMI_VERSION}"
  local got
  got="$(cd "${dir}" && go list -m -f '{{.Version}}' github.com/pulumi/pulumi/sdk/v3)"
  [[ "${got}" == "${PULUMI_VERSION}" ]] || die "the module graph moved sdk/v3 to ${got}, expected ${PULUMI_VERSION}"
  compile "${dir}" "${BIN}/pulumi" "${pkg}" "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=${PULUMI_VERSION}"
}

build_language_host() {
  local dir="${DIR}/src/language-nodejs"
  local pkg="github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs"
  log "[2/2] pulumi-language-nodejs from sdk/v3 ${LANGUAGE_HOST_SDK_VERSION} (about 20 s)"
  write_module "${dir}" coop.local/pulumi-language-nodejs 1.20 "${pkg}"
  (cd "${dir}" && go mod edit -require "github.com/pulumi/pulumi/sdk/v3@${LANGUAGE_HOST_SDK_VERSION}")
  tidy "${dir}" "github.com/pulumi/pulumi/sdk/v3@${LANGUAGE_HOST_SDK_VERSION}"
  compile "${dir}" "${BIN}/pulumi-language-nodejs" "${pkg}" "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=${LANGUAGE_HOST_SDK_VERSION}"
}

main() {
  case "${1:-}" in
    -h | --help) usage; return 0 ;;
    --print-dir) printf '%s\n' "${BIN}"; return 0 ;;
    "") ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  # Go's own installer puts it here; a non-login shell (CI) may not have it on PATH.
  if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then PATH="/usr/local/go/bin:${PATH}"; fi
  command -v go >/dev/null || die "go is not on PATH: install Go 1.25 or newer (the build takes its modules from the Go module proxy)"
  command -v node >/dev/null || die "node is not on PATH"
  check_version_matches_package_json
  if built; then
    log "cached: ${BIN}"
    printf '%s\n' "${BIN}"
    return 0
  fi
  local start=${SECONDS}
  rm -f "${DIR}/.complete"
  mkdir -p "${BIN}"
  [[ -x "${BIN}/pulumi" ]] || build_cli
  [[ -x "${BIN}/pulumi-language-nodejs" ]] || build_language_host
  "${BIN}/pulumi" version >/dev/null || die "the built pulumi does not start"
  touch "${DIR}/.complete"
  log "built in $((SECONDS - start)) s: ${BIN}"
  printf '%s\n' "${BIN}"
}

main "$@"
