#!/usr/bin/env bash
# Mounts the provider's data volume at a mount point. The volume is attached after the server
# boots (it is a separate resource), so this waits for the device, formats it only when it holds
# no filesystem, and mounts it by UUID with `nofail` so a detached volume never blocks boot.
# Usage: mount-data-volume.sh <device-glob> <mount-point> [timeout-seconds]
set -euo pipefail

readonly FSTAB="${COOP_FSTAB:-/etc/fstab}"
readonly LABEL="coop-data"

log() { printf 'coop[mount-data-volume] %s\n' "$*" >&2; }
die() { log "ERROR $*"; exit 1; }

wait_for_device() {
  local pattern="$1"
  local timeout="$2"
  local waited=0
  local -a found
  while true; do
    # The glob is expanded here, on purpose, against the provider's /dev/disk/by-id names.
    mapfile -t found < <(compgen -G "${pattern}" || true)
    if [[ "${#found[@]}" -eq 1 ]]; then
      readlink -f "${found[0]}"
      return 0
    fi
    [[ "${#found[@]}" -gt 1 ]] && die "more than one device matches ${pattern}: ${found[*]}"
    [[ "${waited}" -ge "${timeout}" ]] && die "no device matched ${pattern} after ${timeout}s"
    log "waiting for a device matching ${pattern} (${waited}s)"
    sleep 5
    waited=$((waited + 5))
  done
}

ensure_filesystem() {
  local device="$1"
  if [[ -z "$(blkid -o value -s TYPE "${device}" || true)" ]]; then
    log "formatting ${device} as ext4"
    mkfs.ext4 -q -L "${LABEL}" "${device}"
  fi
}

ensure_fstab_entry() {
  local uuid="$1"
  local mount_point="$2"
  local tmp
  grep -q "^UUID=${uuid} " "${FSTAB}" 2>/dev/null && return 0
  tmp="$(mktemp "${FSTAB}.XXXXXX")"
  { cat "${FSTAB}" 2>/dev/null || true; printf 'UUID=%s %s ext4 defaults,nofail,discard 0 2\n' "${uuid}" "${mount_point}"; } >"${tmp}"
  chmod 0644 "${tmp}"
  mv "${tmp}" "${FSTAB}"
}

main() {
  [[ $# -ge 2 ]] || die "usage: mount-data-volume.sh <device-glob> <mount-point> [timeout-seconds]"
  local pattern="$1"
  local mount_point="$2"
  local timeout="${3:-600}"
  local device
  local uuid
  if mountpoint -q "${mount_point}"; then
    log "${mount_point} is already mounted"
    return 0
  fi
  device="$(wait_for_device "${pattern}" "${timeout}")"
  ensure_filesystem "${device}"
  uuid="$(blkid -o value -s UUID "${device}")"
  [[ -n "${uuid}" ]] || die "${device} has no filesystem UUID"
  ensure_fstab_entry "${uuid}" "${mount_point}"
  mkdir -p "${mount_point}"
  mount --fstab "${FSTAB}" "${mount_point}"
  log "mounted ${device} (UUID ${uuid}) at ${mount_point}"
}

main "$@"
