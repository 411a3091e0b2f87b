#!/usr/bin/env bash
# Mounts the provider's data volume at a mount point. The volume is attached after the server
# boots (it is a separate resource), so this waits for the device, formats it only when it holds
# no filesystem, and mounts it by UUID with `nofail` so a detached volume never blocks boot.
# In a container (local machines: systemd-nspawn, the volume at a fixed path such as /dev/coop-data)
# there is no udev: systemd ignores fstab's device entries there and UUID names never appear, so the
# volume is mounted by its device path, now and at every boot by a mount unit that needs no udev.
# Usage: mount-data-volume.sh <device-glob> <mount-point> [timeout-seconds]
set -euo pipefail

readonly FSTAB="${COOP_FSTAB:-/etc/fstab}"
readonly LABEL="coop-data"
readonly OPTIONS="defaults,nofail,discard"
# Tests point this at a temp folder (which also selects the container mode).
readonly UNIT_DIR="${COOP_MOUNT_UNIT_DIR:-/etc/systemd/system}"

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

# Booted by systemd inside a container: where systemd-fstab-generator skips block devices.
container_mode() {
  [[ -n "${COOP_MOUNT_UNIT_DIR:-}" ]] && return 0
  [[ -d /run/systemd/system ]] && systemd-detect-virt --container --quiet
}

# ensure_mount_unit DEVICE MOUNT_POINT: <mount-point>.mount by device path, wanted by local-fs.target.
# Device units do not exist in containers, so systemd adds no dependency on one: no udev needed.
ensure_mount_unit() {
  local device="$1"
  local mount_point="$2"
  local unit
  local tmp
  unit="$(systemd-escape --path --suffix=mount "${mount_point}")"
  mkdir -p "${UNIT_DIR}/local-fs.target.wants"
  tmp="$(mktemp "${UNIT_DIR}/.${unit}.XXXXXX")"
  printf '%s\n' "# Written by coop-mount-data-volume: in a container systemd ignores fstab's device entries." \
    "[Unit]" "Description=social.coop data volume" "" \
    "[Mount]" "What=${device}" "Where=${mount_point}" "Type=ext4" "Options=${OPTIONS}" "" \
    "[Install]" "WantedBy=local-fs.target" >"${tmp}"
  chmod 0644 "${tmp}"
  mv "${tmp}" "${UNIT_DIR}/${unit}"
  ln -sfn "../${unit}" "${UNIT_DIR}/local-fs.target.wants/${unit}"
  if [[ -z "${COOP_MOUNT_UNIT_DIR:-}" ]]; then
    systemctl daemon-reload
  fi
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
  if container_mode; then
    ensure_mount_unit "${device}" "${mount_point}"
    mount -t ext4 -o "${OPTIONS}" "${device}" "${mount_point}"
  else
    mount --fstab "${FSTAB}" "${mount_point}"
  fi
  log "mounted ${device} (UUID ${uuid}) at ${mount_point}"
}

main "$@"
