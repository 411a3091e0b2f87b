#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Gives this host (alpha's primary) the way into another stack's backups that grant-repo-reader.sh made
# on that stack's repository host, and nothing else: the reader's key, the repository host's pinned key,
# pgBackRest's database-side config with the reader as the repository host's user, and the backup
# environment file restore.sh and restore-instance.sh read (restic over read-only SFTP, without locks).
# No WAL archiving and no backup timers: this host writes to no repository. Idempotent (every file is
# written only when it differs); run before restore-instance.sh with COOP_RESTORE_FROM=reader.
#
# Usage: install-reader.sh [--help]
# Environment (defaults in brackets); the secrets arrive here only and go only into root-only files:
#   COOP_READER_HOST  COOP_READER_PORT [22]   the repository host (prod's secondary)
#   COOP_READER_USER                 the grant's user, coop-read-<name>
#   COOP_READER_KEY                  the grant's private key, base64 of its OpenSSH file (secret)
#   COOP_READER_HOST_KEY             the repository host's SSH host key, `type base64`
#   COOP_READER_RESTIC_PATH          the restic repository's path there
#   COOP_RESTIC_PASSWORD             that repository's passphrase (secret)
#   COOP_STANZA [main]  COOP_PG_VERSION [15]  COOP_PG_DATA [/srv/postgresql/main]  COOP_PG_PORT [5432]
#   COOP_PG_SOCKET [/var/run/postgresql]  COOP_DB_NAME [mastodon_production]  COOP_PG_OS_USER [postgres]
#   COOP_BACKUP_HOME [/var/lib/coop-backup]   pgBackRest's lock, log and spool folders on this side
#   For tests: COOP_ETC_DIR [/etc]  COOP_SKIP_APT
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/backup-install.sh
source "${SCRIPT_DIR}/lib/backup-install.sh"

usage() { sed -n '/^# shellcheck /d; 2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# Secrets, moved out of the environment so no child process inherits them.
READER_KEY=""
RESTIC_PASSWORD=""

reader_env() {
  require_env COOP_READER_HOST COOP_READER_USER COOP_READER_KEY COOP_READER_HOST_KEY COOP_READER_RESTIC_PATH COOP_RESTIC_PASSWORD
  COOP_READER_PORT="${COOP_READER_PORT:-22}"
  # shellcheck disable=SC2153 # required above
  [[ "${COOP_READER_HOST}" =~ ^[0-9A-Za-z.-]+$ ]] ||
    die "COOP_READER_HOST '${COOP_READER_HOST}' must be a host name or an IPv4 address (the repositories' URLs take no IPv6 address yet)"
  [[ "${COOP_READER_PORT}" =~ ^[0-9]+$ ]] || die "COOP_READER_PORT '${COOP_READER_PORT}' is not a port"
  [[ "${COOP_READER_USER}" =~ ^coop-read-[a-z0-9-]+$ ]] || die "COOP_READER_USER '${COOP_READER_USER}' is not a grant's user (coop-read-<name>)"
  [[ "${COOP_READER_HOST_KEY}" =~ ^ssh-ed25519\ [A-Za-z0-9+/=]+$ ]] || die "COOP_READER_HOST_KEY must be 'ssh-ed25519 <base64>'"
  [[ "${COOP_READER_RESTIC_PATH}" == /* ]] || die "COOP_READER_RESTIC_PATH '${COOP_READER_RESTIC_PATH}' must be an absolute path"
  READER_KEY=$(base64 -d <<<"${COOP_READER_KEY}" 2>/dev/null) || die "COOP_READER_KEY is not base64"
  [[ "${READER_KEY}" == "-----BEGIN OPENSSH PRIVATE KEY-----"* ]] || die "COOP_READER_KEY is not an OpenSSH private key"
  RESTIC_PASSWORD="${COOP_RESTIC_PASSWORD}"
  unset COOP_READER_KEY COOP_RESTIC_PASSWORD
  COOP_STANZA="${COOP_STANZA:-main}"
  COOP_PG_VERSION="${COOP_PG_VERSION:-15}"
  COOP_PG_DATA="${COOP_PG_DATA:-/srv/postgresql/main}"
  COOP_PG_PORT="${COOP_PG_PORT:-5432}"
  COOP_PG_SOCKET="${COOP_PG_SOCKET:-/var/run/postgresql}"
  COOP_DB_NAME="${COOP_DB_NAME:-mastodon_production}"
  COOP_PG_OS_USER="${COOP_PG_OS_USER:-postgres}"
  COOP_BACKUP_HOME="${COOP_BACKUP_HOME:-/var/lib/coop-backup}"
  COOP_ETC_DIR="${COOP_ETC_DIR:-/etc}"
  SSH_DIR="${COOP_ETC_DIR}/coop/reader-ssh"
  SSH_WRAPPER="${SSH_DIR}/ssh"
  PGBR_CONFIG="${COOP_ETC_DIR}/pgbackrest/pgbackrest.conf"
  RESTIC_PASSWORD_FILE="${COOP_ETC_DIR}/coop/restic-password"
  # The grant's forced command picks the repository host's config; pgBackRest still sends one.
  REMOTE_CONFIG="/etc/pgbackrest/reader.conf"
  id -u "${COOP_PG_OS_USER}" >/dev/null 2>&1 || die "no OS user ${COOP_PG_OS_USER}: install-database.sh must run on this host first"
}

install_packages() { install_missing pgbackrest restic jq redis-tools openssh-client; }

# The key is the PostgreSQL user's (pgBackRest's restore runs as it); root reads it for restic's SFTP.
ssh_access() {
  local d
  for d in "${COOP_BACKUP_HOME}" "${COOP_BACKUP_HOME}/lock" "${COOP_BACKUP_HOME}/log" "${COOP_BACKUP_HOME}/spool"; do
    install -d -m 0750 -o "${COOP_PG_OS_USER}" -g "${COOP_PG_OS_USER}" "${d}"
  done
  install -d -m 0750 -o root -g "${COOP_PG_OS_USER}" "${SSH_DIR}"
  printf '%s\n' "${READER_KEY}" | put_file "${SSH_DIR}/id_ed25519" 0600 "${COOP_PG_OS_USER}" "${COOP_PG_OS_USER}"
  local known="${COOP_READER_HOST} ${COOP_READER_HOST_KEY}"
  [[ "${COOP_READER_PORT}" == 22 ]] || known="[${COOP_READER_HOST}]:${COOP_READER_PORT} ${COOP_READER_HOST_KEY}"
  printf '%s\n' "${known}" | put_file "${SSH_DIR}/known_hosts" 0644 root root
  printf '#!/bin/sh\n# Managed by install-reader.sh: the ssh client of pgBackRest (cmd-ssh) and restic (sftp) into the backups this host reads.\nexec ssh -F /dev/null -i %s -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null "$@"\n' \
    "${SSH_DIR}/id_ed25519" "${SSH_DIR}/known_hosts" | put_file "${SSH_WRAPPER}" 0755 root root
}

render_pgbr_reader() {
  printf '%s\n' "# Managed by install-reader.sh: restores from another stack's repository, read-only; edits are overwritten." "[global]" \
    "repo1-host=${COOP_READER_HOST}" \
    "repo1-host-port=${COOP_READER_PORT}" \
    "repo1-host-user=${COOP_READER_USER}" \
    "repo1-host-config=${REMOTE_CONFIG}" \
    "cmd-ssh=${SSH_WRAPPER}" \
    "lock-path=${COOP_BACKUP_HOME}/lock" \
    "spool-path=${COOP_BACKUP_HOME}/spool"
  render_pgbr_common
  printf '\n'
  render_pg_section
}

render_reader_env() {
  printf '# Managed by install-reader.sh; read by restore.sh and restore-instance.sh. The repositories are another stack'"'"'s, read-only.\n'
  render_pg_env
  env_line COOP_PGBACKREST_CONFIG "${PGBR_CONFIG}"
  env_line COOP_REPO_SSH "${COOP_READER_USER}@${COOP_READER_HOST}:${COOP_READER_PORT}"
  env_line COOP_REPO_SSH_COMMAND "${SSH_WRAPPER}"
  env_line COOP_REPO_CONFIG "${REMOTE_CONFIG}"
  env_line COOP_RESTIC_REPOS "sftp:${COOP_READER_USER}@${COOP_READER_HOST}:${COOP_READER_RESTIC_PATH}"
  env_line COOP_RESTIC_PASSWORD_FILE "${RESTIC_PASSWORD_FILE}"
  env_line COOP_RESTIC_SFTP_COMMAND "${SSH_WRAPPER} -p ${COOP_READER_PORT} ${COOP_READER_USER}@${COOP_READER_HOST} -s sftp"
  env_line COOP_RESTIC_READ_ONLY 1
}

write_configs() {
  render_pgbr_reader | put_file "${PGBR_CONFIG}" 0640 root "${COOP_PG_OS_USER}"
  printf '%s\n' "${RESTIC_PASSWORD}" | put_file "${RESTIC_PASSWORD_FILE}" 0600 root root
  render_reader_env | put_file "${COOP_ETC_DIR}/coop/backup.env" 0600 root root
  log_info "this host reads ${COOP_READER_USER}@${COOP_READER_HOST}'s backups (stanza ${COOP_STANZA}), read-only"
}

main() {
  case "${1:-}" in
    -h | --help) usage; return 0 ;;
    "") ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
  reader_env
  lock_acquire install-reader
  install_packages
  ssh_access
  write_configs
}

main "$@"
