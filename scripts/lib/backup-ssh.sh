# shellcheck shell=bash
# The SSH trust between the database host and the repository host (sourced by install-backup.sh after
# install_env): this side's key and ssh wrapper, the other side's pinned host key and authorized key.
# Reads SSH_DIR, SSH_WRAPPER, BACKUP_USER and the COOP_PEER_* parameters.

# One key per side for pgBackRest's SSH (and restic's sftp from the database host), pinned host keys,
# and the other side's key authorized only from its address, with no shell features beyond commands.
ssh_trust() {
  install -d -m 0750 -o root -g "${BACKUP_USER}" "${SSH_DIR}"
  if [[ ! -f "${SSH_DIR}/id_ed25519" ]]; then
    rm -f "${SSH_DIR}/id_ed25519.tmp" "${SSH_DIR}/id_ed25519.tmp.pub"
    ssh-keygen -q -t ed25519 -N '' -C "coop-backup-${COOP_BACKUP_ROLE}@$(hostname -s)" -f "${SSH_DIR}/id_ed25519.tmp"
    chown "${BACKUP_USER}:" "${SSH_DIR}/id_ed25519.tmp"
    mv -f "${SSH_DIR}/id_ed25519.tmp.pub" "${SSH_DIR}/id_ed25519.pub"
    mv -f "${SSH_DIR}/id_ed25519.tmp" "${SSH_DIR}/id_ed25519"
  fi
  printf '#!/bin/sh\n# Managed by install-backup.sh: the ssh client of pgBackRest (cmd-ssh) and restic (sftp).\nexec ssh -F /dev/null -i %s -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null "$@"\n' \
    "${SSH_DIR}/id_ed25519" "${SSH_DIR}/known_hosts" | put_file "${SSH_WRAPPER}" 0755 root root
  local known=""
  if [[ -n "${COOP_PEER_HOST_KEY}" ]]; then
    if [[ "${COOP_PEER_SSH_PORT}" == 22 ]]; then known="${COOP_PEER_HOST} ${COOP_PEER_HOST_KEY}"; else known="[${COOP_PEER_HOST}]:${COOP_PEER_SSH_PORT} ${COOP_PEER_HOST_KEY}"; fi
  fi
  printf '%s\n' "${known}" | put_file "${SSH_DIR}/known_hosts" 0644 root root
  local home
  home=$(getent passwd "${BACKUP_USER}" | cut -d: -f6)
  [[ -n "${home}" ]] || die "no home directory for ${BACKUP_USER}"
  install -d -m 0700 -o "${BACKUP_USER}" -g "${BACKUP_USER}" "${home}/.ssh"
  if [[ -n "${COOP_PEER_PUBLIC_KEY}" ]]; then
    [[ "${COOP_PEER_PUBLIC_KEY}" =~ ^ssh-ed25519\ [A-Za-z0-9+/=]+(\ [^\"]*)?$ ]] || die "COOP_PEER_PUBLIC_KEY is not an ed25519 public key line"
    printf 'from="%s",restrict %s\n' "${COOP_PEER_HOST}" "${COOP_PEER_PUBLIC_KEY}" |
      put_file "${home}/.ssh/authorized_keys" 0600 "${BACKUP_USER}" "${BACKUP_USER}"
  else
    log_info "the other host's key is not known yet: it is authorized on the next pass"
  fi
  # The hosts' sshd allows only the admin user (cloud-init); AllowUsers lines add up across files.
  printf '# Managed by install-backup.sh: the other host'\''s backup traffic.\nAllowUsers %s@%s\n' "${BACKUP_USER}" "${COOP_PEER_HOST}" |
    put_file "${COOP_ETC_DIR}/ssh/sshd_config.d/60-coop-backup.conf" 0644 root root
}

# What install-backup.sh prints for the other host: this side's backup key and host key.
print_keys() {
  local host_key="${COOP_ETC_DIR}/ssh/ssh_host_ed25519_key.pub"
  [[ -f "${host_key}" ]] || die "no ${host_key}: the other host could not pin this host's key"
  printf 'backup-user-key %s\n' "$(cut -d' ' -f1,2 "${SSH_DIR}/id_ed25519.pub")"
  printf 'host-key %s\n' "$(cut -d' ' -f1,2 "${host_key}")"
}
