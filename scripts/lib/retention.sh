# shellcheck shell=bash
# What backup.sh keeps (its `expire` step; sourced after common.sh, pg.sh and files.sh).
#
# pgBackRest expires by its own retention (repo*-retention-full). restic keeps, per kind (media,
# config), what COOP_RESTIC_KEEP says, and on top of that every snapshot whose manifest can still be
# restored: a manifest names a restore point, and the pgBackRest backup set a restore to that point
# starts from; while that set is in a repository, the drill (media snapshot tagged with the manifest's
# id) and a restore to the point (the manifest, read from the config snapshot so tagged) need that id's
# snapshots.
#
# Environment: COOP_RESTIC_KEEP (backup.sh validates it), and those of pg.sh and files.sh.

# The kinds of snapshot a run leaves, each tagged `coop`, the kind and the run's manifest id.
readonly RESTIC_KINDS="media config"

# live_manifests LABELS: the manifest files of manifest_dir as `id live|dead`, by whether a backup set
# among LABELS (pgbr_labels) still restores them. A file jq cannot read counts as live: the spool's
# manifests are only this host's index of the copies in restic, and an unreadable one must not make its
# snapshots forgettable.
live_manifests() {
  local labels="$1" f id set
  for f in "$(manifest_dir)"/coop-*.json; do
    [[ -f "${f}" ]] || continue
    id=$(basename "${f}" .json)
    if ! set=$(manifest_set_among "${labels}" "${f}" 2>/dev/null); then
      log_warn "manifest ${f} cannot be read: keeping its snapshots"
      set=unreadable
    fi
    if [[ -n "${set}" ]]; then printf '%s live\n' "${id}"; else printf '%s dead\n' "${id}"; fi
  done
}

# restic_forget_kind REPO KIND KEEP_ARGS...: forgets the KIND snapshots the rules do not keep, grouped by
# host only (restic's default groups by host and paths; grouped by tags, every snapshot, its manifest id
# tag unique, would be a group of one that every rule keeps). Prints how many it forgot.
restic_forget_kind() {
  local repo="$1" kind="$2"
  shift 2
  # `--tag coop,KIND`: one comma list means every tag of it. -s: no snapshot of the kind prints nothing.
  restic_at "${repo}" forget --json --tag "coop,${kind}" --group-by host "$@" |
    jq -s '[.[][]? | .remove // [] | length] | add // 0'
}

# The step. Publish runs before it, so the manifest a restore or the drill picks (the newest) is one
# whose snapshots exist, and a kill anywhere in here leaves nothing a re-run does not redo: pgBackRest
# expire, forget and prune are each idempotent, and a manifest goes only once nothing it names is needed.
expire_old() {
  local labels latest repo kind id state forgot mark pending bad
  local -a keep live=() dead=() keep_tags=()
  read -r -a keep <<<"${COOP_RESTIC_KEEP}"
  # pgBackRest first: what it keeps decides what restic must keep.
  pgbr_repo expire
  # With a repository that info cannot read (it still exits 0), its sets would look expired.
  bad=$(pgbr_repo --output=json info | jq -r '[.[0].repo[]? | select(.status.code != 0) | "repo\(.key): \(.status.message)"] | join("; ")')
  [[ -z "${bad}" ]] || die "pgBackRest cannot read every repository (${bad}): not forgetting anything by what it lists"
  labels=$(pgbr_labels)
  while read -r id state; do
    if [[ "${state}" == live ]]; then live+=("${id}"); else dead+=("${id}"); fi
  done < <(live_manifests "${labels}")
  # The published manifest's set is the newest, which pgBackRest never expires: one found dead means
  # `info` listed less than the repositories hold, and forgetting by that list could lose a restore point.
  latest=$(jq -r .id "$(manifest_dir)/latest.json") || die "no published manifest ($(manifest_dir)/latest.json) to expire against"
  [[ " ${live[*]} " == *" ${latest} "* ]] ||
    die "pgBackRest info lists no backup set of the published manifest ${latest}: not forgetting anything by it"
  for id in "${live[@]}"; do keep_tags+=(--keep-tag "${id}"); done
  while read -r repo; do
    # forget and prune lock exclusively: a drill killed since the files step may have left a stale lock.
    restic_unlock_stale "${repo}"
    # prune reads the whole repository (all of it on S3): only after a forget that removed something. The
    # mark is on disk before the forget, so a run killed between a forget and its prune prunes on its re-run.
    mark="${COOP_SPOOL_DIR}/restic-prune-pending.$(printf '%s' "${repo}" | sha256sum | cut -c1-12)"
    pending=0
    [[ -f "${mark}" ]] && pending=1
    : >"${mark}"
    for kind in ${RESTIC_KINDS}; do
      forgot=$(restic_forget_kind "${repo}" "${kind}" "${keep[@]}" "${keep_tags[@]}")
      log_info "restic ${repo%%:*}: forgot ${forgot} ${kind} snapshots (kept: ${COOP_RESTIC_KEEP}, and those of ${#live[@]} restorable manifests)"
      ((forgot == 0)) || pending=1
    done
    if ((pending)); then
      restic_at "${repo}" prune >/dev/null
      log_info "restic ${repo%%:*}: pruned"
    fi
    rm -f "${mark}"
  done < <(restic_repos)
  # A manifest whose backup set pgBackRest has expired can no longer be restored (the drill and a restore
  # to its point refuse it): it protects nothing, and kept, the spool would grow with every run. Its copy
  # stays in its config snapshot for as long as the keep rules keep that.
  for id in "${dead[@]}"; do
    rm -f "$(manifest_dir)/${id}.json"
    log_info "manifest ${id} removed: pgBackRest has expired its backup set"
  done
}
