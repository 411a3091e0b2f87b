# shellcheck shell=bash
# restic, Redis and manifest helpers for the backup, restore and drill scripts (sourced after common.sh).
#
# Environment (defaults in brackets):
#   COOP_RESTIC_REPOS               space-separated restic repositories (sftp:..., s3:..., a path)
#   COOP_RESTIC_PASSWORD_FILE [/etc/coop/restic-password]  mode 0600; never passed on a command line
#   COOP_RESTIC_SFTP_COMMAND        ssh command restic uses for sftp: repositories (key, known_hosts)
#   COOP_RESTIC_CACHE_DIR [/var/cache/coop-restic]
#   COOP_SPOOL_DIR [/srv/backup-spool]  manifests and staged files (Redis dump) live here
#   COOP_MEDIA_DIR [/home/mastodon/live/public/system]
#   COOP_MEDIA_SAMPLE [20]          media files hashed into the manifest and checked by the drill

files_env_defaults() {
  COOP_RESTIC_REPOS="${COOP_RESTIC_REPOS:-}"
  COOP_RESTIC_PASSWORD_FILE="${COOP_RESTIC_PASSWORD_FILE:-/etc/coop/restic-password}"
  COOP_RESTIC_SFTP_COMMAND="${COOP_RESTIC_SFTP_COMMAND:-}"
  COOP_RESTIC_CACHE_DIR="${COOP_RESTIC_CACHE_DIR:-/var/cache/coop-restic}"
  COOP_SPOOL_DIR="${COOP_SPOOL_DIR:-/srv/backup-spool}"
  COOP_MEDIA_DIR="${COOP_MEDIA_DIR:-/home/mastodon/live/public/system}"
  COOP_MEDIA_SAMPLE="${COOP_MEDIA_SAMPLE:-20}"
}

# restic_at REPO ARGS...
restic_at() {
  local repo="$1"
  shift
  local -a opts=(-r "${repo}" --password-file "${COOP_RESTIC_PASSWORD_FILE}" --cache-dir "${COOP_RESTIC_CACHE_DIR}" --quiet)
  [[ -n "${COOP_RESTIC_SFTP_COMMAND}" && "${repo}" == sftp:* ]] && opts+=(-o "sftp.command=${COOP_RESTIC_SFTP_COMMAND}")
  restic "${opts[@]}" "$@"
}

restic_repos() {
  local -a repos
  read -r -a repos <<<"${COOP_RESTIC_REPOS}"
  ((${#repos[@]} > 0)) || die "COOP_RESTIC_REPOS names no restic repository"
  printf '%s\n' "${repos[@]}"
}

# The first repository is the one restores read from; the others are copies.
restic_primary_repo() { restic_repos | head -n 1; }

restic_ensure_repo() {
  local repo="$1"
  if restic_at "${repo}" cat config >/dev/null 2>&1; then
    return 0
  fi
  log_info "initializing restic repository ${repo}"
  restic_at "${repo}" init >/dev/null
}

# Write to a temp file beside the target, then rename: a kill never leaves half a file.
write_atomic() {
  local target="$1"
  local tmp
  tmp=$(mktemp "${target}.XXXXXX")
  cat >"${tmp}"
  mv -f "${tmp}" "${target}"
}

manifest_dir() { printf '%s/manifests' "${COOP_SPOOL_DIR}"; }

# media_sample DIR COUNT: up to COUNT files spread evenly over the sorted list, as `sha256  relpath` lines.
media_sample() {
  local dir="$1" count="$2"
  local -a files
  [[ -d "${dir}" ]] || return 0
  mapfile -t files < <(cd "${dir}" && find . -type f -printf '%P\n' | LC_ALL=C sort)
  local n="${#files[@]}"
  ((n > 0)) || return 0
  local stride=$(((n + count - 1) / count))
  local i
  for ((i = 0; i < n; i += stride)); do
    (cd "${dir}" && sha256sum -- "${files[i]}")
  done
}

# restic_file_totals REPO SNAPSHOT: the snapshot's regular files as a JSON {files, bytes}
# (restic's own stats count directories as files too).
restic_file_totals() {
  restic_at "$1" ls --json "$2" | jq -s '[.[] | select(.struct_type? == "node" and .type == "file")] | {files: length, bytes: (map(.size) | add // 0)}'
}
