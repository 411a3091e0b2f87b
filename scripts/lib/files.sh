# shellcheck shell=bash
# restic, Redis and manifest helpers for the backup, restore and drill scripts (sourced after common.sh).
#
# Environment (defaults in brackets):
#   COOP_RESTIC_REPOS               space-separated restic repositories (sftp:..., s3:..., a path)
#   COOP_RESTIC_PASSWORD_FILE [/etc/coop/restic-password]  mode 0600; never passed on a command line
#   COOP_RESTIC_SFTP_COMMAND        ssh command restic uses for sftp: repositories (key, known_hosts)
#   COOP_RESTIC_CACHE_DIR [/var/cache/coop-restic]
#   COOP_RESTIC_READ_ONLY [0]       1: the repositories are another stack's, read through a read-only
#                                   credential (grant-repo-reader.sh): no locks are taken or removed
#   COOP_SPOOL_DIR [/srv/backup-spool]  manifests and staged files (Redis dump) live here
#   COOP_MEDIA_DIR [/home/mastodon/live/public/system]
#   COOP_MEDIA_SAMPLE [20]          media files hashed into the manifest and checked by the drill
#   COOP_TEXTFILE_DIR [/var/lib/prometheus/node-exporter]  coop_backup.prom and coop_drill.prom, for
#                                   node_exporter's textfile collector

files_env_defaults() {
  COOP_RESTIC_REPOS="${COOP_RESTIC_REPOS:-}"
  COOP_RESTIC_PASSWORD_FILE="${COOP_RESTIC_PASSWORD_FILE:-/etc/coop/restic-password}"
  COOP_RESTIC_SFTP_COMMAND="${COOP_RESTIC_SFTP_COMMAND:-}"
  COOP_RESTIC_CACHE_DIR="${COOP_RESTIC_CACHE_DIR:-/var/cache/coop-restic}"
  COOP_RESTIC_READ_ONLY="${COOP_RESTIC_READ_ONLY:-0}"
  COOP_SPOOL_DIR="${COOP_SPOOL_DIR:-/srv/backup-spool}"
  COOP_MEDIA_DIR="${COOP_MEDIA_DIR:-/home/mastodon/live/public/system}"
  COOP_MEDIA_SAMPLE="${COOP_MEDIA_SAMPLE:-20}"
  COOP_TEXTFILE_DIR="${COOP_TEXTFILE_DIR:-/var/lib/prometheus/node-exporter}"
}

# restic_at REPO ARGS...
restic_at() {
  local repo="$1"
  shift
  local -a opts=(-r "${repo}" --password-file "${COOP_RESTIC_PASSWORD_FILE}" --cache-dir "${COOP_RESTIC_CACHE_DIR}" --quiet)
  [[ -n "${COOP_RESTIC_SFTP_COMMAND}" && "${repo}" == sftp:* ]] && opts+=(-o "sftp.command=${COOP_RESTIC_SFTP_COMMAND}")
  [[ "${COOP_RESTIC_READ_ONLY:-0}" == 1 ]] && opts+=(--no-lock)
  # restic starts its sftp ssh in a process group of its own: a kill of the script's group leaves that
  # ssh exiting on its own time, and it must not hold the operation's lock meanwhile.
  run_unlocked restic "${opts[@]}" "$@"
}

restic_repos() {
  local -a repos
  read -r -a repos <<<"${COOP_RESTIC_REPOS}"
  ((${#repos[@]} > 0)) || die "COOP_RESTIC_REPOS names no restic repository"
  printf '%s\n' "${repos[@]}"
}

# The first repository is the one restores read from; the others are copies.
restic_primary_repo() { restic_repos | head -n 1; }

# restic_repo_state REPO: prints `present` or `absent`; dies when the repository cannot be read (host
# unreachable, wrong password). --no-lock: whether a repository exists must not depend on its locks, or a
# killed run's stale lock reads as "no repository" and a backup tries `restic init` over the real one.
restic_repo_state() {
  local repo="$1" out
  if out=$(restic_at "${repo}" --no-lock cat config 2>&1 >/dev/null); then
    printf 'present\n'
  elif grep -q "Is there a repository at the following location" <<<"${out}"; then
    printf 'absent\n'
  else
    die "restic repository ${repo%%:*} cannot be read: $(error_lines "${out}")"
  fi
}

# restic_dead_locks REPO: how many of the repository's locks belong to a process of this host that has
# exited or is a zombie not yet reaped (restic counts a zombie as running, so its lock is not stale yet).
restic_dead_locks() {
  local repo="$1" id lock pid n=0 host
  host=$(hostname)
  while read -r id; do
    [[ -n "${id}" ]] || continue
    lock=$(restic_at "${repo}" --no-lock cat lock "${id}" 2>/dev/null) || continue
    [[ "$(jq -r .hostname <<<"${lock}")" == "${host}" ]] || continue
    pid=$(jq -r .pid <<<"${lock}")
    if [[ ! -e "/proc/${pid}" ]] || grep -q '^State:[[:space:]]*Z' "/proc/${pid}/status" 2>/dev/null; then
      n=$((n + 1))
    fi
  done < <(restic_at "${repo}" --no-lock list locks 2>/dev/null || true)
  printf '%s\n' "${n}"
}

# restic_unlock_stale REPO: remove the locks a killed restic left behind (a kill during `check` leaves an
# exclusive one that refuses every later command). restic 0.14's `unlock` removes only stale locks (of a
# process of this host that no longer runs, or older than 30 minutes), never a running one's; never
# --remove-all, which would also remove the lock of a backup or check running right now. A run re-started
# right after a kill may find the killed restic still a zombie: wait (30 s at most) until it is reaped.
restic_unlock_stale() {
  local repo="$1" out waited=0
  # A reader of another stack's repositories takes no locks and may remove none.
  [[ "${COOP_RESTIC_READ_ONLY:-0}" != 1 ]] || return 0
  while true; do
    out=$(restic_at "${repo}" unlock 2>&1) || die "restic unlock of ${repo%%:*} failed: $(error_lines "${out}")"
    (($(restic_dead_locks "${repo}") == 0)) && return 0
    if ((waited >= 30)); then
      log_warn "restic repository ${repo%%:*} still holds locks of exited processes after ${waited}s"
      return 0
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

# restic_open REPO: the repository exists (else die) and holds no stale lock.
restic_open() {
  [[ "$(restic_repo_state "$1")" == present ]] || die "no restic repository at ${1%%:*}"
  restic_unlock_stale "$1"
}

# restic_ensure_repo REPO: like restic_open, but a missing repository is created.
restic_ensure_repo() {
  local repo="$1"
  if [[ "$(restic_repo_state "${repo}")" == absent ]]; then
    log_info "initializing restic repository ${repo%%:*}"
    restic_at "${repo}" init >/dev/null
  fi
  restic_unlock_stale "${repo}"
}

# restic_fetch_manifest REPO TAGS OUT: the backup manifest of the newest config snapshot carrying every
# tag of TAGS (a comma list) into OUT; prints the snapshot's id, or nothing when no snapshot matches.
restic_fetch_manifest() {
  local repo="$1" tags="$2" out="$3" snap path
  snap=$(restic_at "${repo}" snapshots --json --tag "${tags}" | jq -r 'sort_by(.time) | .[-1].short_id // empty')
  [[ -n "${snap}" ]] || return 0
  path=$(restic_at "${repo}" ls --json "${snap}" | jq -r 'select(.name? == "manifest.json") | .path' | head -n 1)
  [[ -n "${path}" ]] || die "restic snapshot ${snap} holds no manifest.json"
  restic_at "${repo}" dump "${snap}" "${path}" | write_atomic "${out}"
  printf '%s\n' "${snap}"
}

# write_atomic TARGET [MODE]: to a temp file beside the target, then renamed: a kill never leaves half a
# file. mktemp makes it 0600; MODE (e.g. 0644 for the metrics node_exporter reads as its own user) is set
# before the rename, so the target never has the wrong mode.
write_atomic() {
  local target="$1" mode="${2:-}"
  local tmp
  tmp=$(mktemp "${target}.XXXXXX")
  cat >"${tmp}"
  [[ -z "${mode}" ]] || chmod "${mode}" "${tmp}"
  mv -f "${tmp}" "${target}"
}

manifest_dir() { printf '%s/manifests' "${COOP_SPOOL_DIR}"; }

# manifest_set_among LABELS MANIFEST: the pgBackRest backup set a restore to the manifest's restore point
# starts from: the manifest's own, by the first repository (in number order) of those LABELS (a JSON
# array, pgbr_labels) still holds; nothing when none does, and the manifest can no longer be restored.
manifest_set_among() {
  jq -r --argjson have "$1" \
    '[(.backupLabels // {} | to_entries | sort_by(.key | tonumber) | .[].value), .backupLabel] | map(select(. as $l | $have | index($l))) | .[0] // empty' "$2"
}

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
