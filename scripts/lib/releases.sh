# shellcheck shell=bash
# Release folders of the app (sourced after common.sh): each release is a checkout of one tag in
# releases/<tag>, and `current` is a symlink to the one that runs. Switching is one rename, so a reader
# sees the old or the new release, never a missing link.
#
# Environment (defaults in brackets):
#   COOP_APP_ROOT [/home/mastodon]   holds releases/ and current

releases_env_defaults() {
  COOP_APP_ROOT="${COOP_APP_ROOT:-/home/mastodon}"
}

release_dir() { printf '%s/releases/%s' "${COOP_APP_ROOT}" "$1"; }

# The tag `current` points at, or nothing before the first deploy.
release_current() {
  local target
  target=$(readlink "${COOP_APP_ROOT}/current" 2>/dev/null || true)
  [[ -n "${target}" ]] && basename "${target}"
  return 0
}

release_switch() {
  local tag="$1"
  [[ -d "$(release_dir "${tag}")" ]] || die "release ${tag} is not in $(release_dir "${tag}")"
  ln -sfn "releases/${tag}" "${COOP_APP_ROOT}/current.tmp"
  mv -Tf "${COOP_APP_ROOT}/current.tmp" "${COOP_APP_ROOT}/current"
}

# release_fetch REPO TAG: a shallow checkout of TAG into releases/<TAG>, built in a temp folder and
# renamed into place, so a folder under releases/ is always a whole checkout.
release_fetch() {
  local repo="$1" tag="$2"
  local dest tmp
  dest=$(release_dir "${tag}")
  if [[ -d "${dest}" ]]; then
    log_info "release ${tag} already fetched"
    return 0
  fi
  tmp="${dest}.fetching"
  rm -rf "${tmp}"
  mkdir -p "${tmp}"
  git -C "${tmp}" init -q
  git -C "${tmp}" fetch -q --depth 1 "${repo}" "refs/tags/${tag}:refs/tags/${tag}"
  git -C "${tmp}" -c advice.detachedHead=false checkout -q "refs/tags/${tag}"
  mv -T "${tmp}" "${dest}"
}

# release_tag_exists REPO TAG
release_tag_exists() {
  git ls-remote --exit-code --tags "$1" "refs/tags/$2" >/dev/null 2>&1
}

# release_prune KEEP TAG...: remove all but the newest KEEP releases, never the TAGs named.
release_prune() {
  local keep="$1" dir name
  shift
  local -a protected=("$@") all=()
  mapfile -t all < <(find "${COOP_APP_ROOT}/releases" -mindepth 1 -maxdepth 1 -type d ! -name '*.fetching' -printf '%f\n' | sort -V)
  local excess=$((${#all[@]} - keep))
  for name in "${all[@]}"; do
    ((excess > 0)) || break
    [[ " ${protected[*]} " == *" ${name} "* ]] && continue
    dir=$(release_dir "${name}")
    log_info "removing old release ${name}"
    rm -rf "${dir}"
    excess=$((excess - 1))
  done
}
