# shellcheck shell=bash
# deploy-app.sh's app source on stdin (COOP_APP_SOURCE_STDIN=1: local stacks, whose hosts have no route
# out), unpacked before the adapter is chosen. Apart from the deploy because real stacks never use it.

# unpack_source: stdin → COOP_APP_SOURCE_DIR/{repo.git,adapter.sh}, replaced whole (temp folder, rename)
# only when its content changed, so a kill leaves the old source or the new one.
unpack_source() {
  local dir="${COOP_APP_SOURCE_DIR:-/var/lib/coop/app-source}"
  local tmp sum
  mkdir -p "$(dirname "${dir}")"
  tmp=$(mktemp -d "${dir}.XXXXXX")
  base64 -d >"${tmp}/source.tgz" || die "the app source on stdin is not base64"
  sum=$(sha256sum "${tmp}/source.tgz" | cut -d' ' -f1)
  if [[ -f "${dir}/.sha256" && "$(cat "${dir}/.sha256")" == "${sum}" ]]; then
    rm -rf "${tmp}"
  else
    tar -C "${tmp}" -xzf "${tmp}/source.tgz" app.bundle adapter.sh || die "the app source on stdin is not the expected tar"
    git clone -q --mirror "${tmp}/app.bundle" "${tmp}/repo.git"
    rm -f "${tmp}/app.bundle" "${tmp}/source.tgz"
    printf '%s\n' "${sum}" >"${tmp}/.sha256"
    chmod 0755 "${tmp}"
    rm -rf "${dir}.old"
    if [[ -d "${dir}" ]]; then mv -T "${dir}" "${dir}.old"; fi
    mv -T "${tmp}" "${dir}"
    rm -rf "${dir}.old"
    log_info "app source unpacked into ${dir}"
  fi
  # shellcheck disable=SC2034 # read by deploy-app.sh, which sources the adapter from it
  COOP_APP_ADAPTER="${dir}/adapter.sh"
  # shellcheck disable=SC2034 # read by the adapter
  COOP_APP_REPO="${dir}/repo.git"
}
