#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Gives another stack's host (alpha) read access to this repository host's backups, and nothing more:
# an OS user of its own in the repositories' group (pgBackRest makes files 0640 and folders 0750, and
# restic 0.14 gives new files the group bits of the repository's config file), so the kernel refuses
# every write, expire or delete whatever the reader asks for; an SSH key that can only run a read-only
# sftp server (restic, with --no-lock), pgBackRest's info and the remote of a restore or archive-get,
# with the reader's own configuration, which holds the repository's cipher passphrase here, on prod's
# side, or `drill-verified`: which backup the last passing drill verified (drill.sh's last-verified.json). The reader's key is born here, once; stdout carries only what the reading stack needs, for a
# secret output of prod's stack (the Pulumi command must not log stdout):
#   reader-user coop-read-<name>
#   reader-key <the private key, base64 of its OpenSSH file>
#   host-key <this host's ed25519 SSH host key, for the reader's known_hosts>
# Idempotent; run on the repository host.
#
# Usage: grant-repo-reader.sh [--help | --revoke]
#   --revoke: the reader's user, key, configuration, forced command and sshd drop-in go (the repositories
#             and their modes stay); needs only COOP_READER_NAME and the test paths below.
# Environment (defaults in brackets):
#   COOP_READER_NAME               the reading stack, e.g. alpha (user coop-read-<name>); required
#   COOP_READER_FROM               the address it connects from (empty: any; set it on real hosts)
#   COOP_PGBACKREST_CIPHER_PASS    the repository's passphrase (secret, from the environment only)
#   COOP_REPO_OS_USER [coop-backup]  owner of the repositories
#   COOP_REPO_PATH [/srv/backup/pgbackrest]   COOP_RESTIC_REPO_PATH [/srv/backup/restic]
#   COOP_DRILL_RESULTS_DIR [/var/lib/coop/drills]   where drill.sh writes last-verified.json
#   COOP_READER_AUTHORIZED_KEYS [/var/lib/coop-read-<name>/.ssh/authorized_keys]  root-owned: the reader
#                                  cannot change what its key may run
#   For tests: COOP_ETC_DIR [/etc]  COOP_SBIN_DIR [/usr/local/sbin]  COOP_SKIP_SYSTEMCTL (no sshd reload)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"

usage() { sed -n '/^# shellcheck /d; 2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

CIPHER_PASS=""

# Names and paths of one reader; enough for --revoke.
reader_paths() {
  require_env COOP_READER_NAME
  [[ "${COOP_READER_NAME}" =~ ^[a-z][a-z0-9-]{0,15}$ ]] || die "COOP_READER_NAME '${COOP_READER_NAME}' must be a short lower-case name (a stack: alpha)"
  COOP_ETC_DIR="${COOP_ETC_DIR:-/etc}"
  COOP_SBIN_DIR="${COOP_SBIN_DIR:-/usr/local/sbin}"
  READER="coop-read-${COOP_READER_NAME}"
  READER_CONFIG="${COOP_ETC_DIR}/pgbackrest/reader-${COOP_READER_NAME}.conf"
  READER_KEY="${COOP_ETC_DIR}/coop/readers/${COOP_READER_NAME}/id_ed25519"
  WRAPPER="${COOP_SBIN_DIR}/coop-repo-reader-${COOP_READER_NAME}"
  SSHD_DROPIN="${COOP_ETC_DIR}/ssh/sshd_config.d/61-coop-reader-${COOP_READER_NAME}.conf"
  COOP_READER_AUTHORIZED_KEYS="${COOP_READER_AUTHORIZED_KEYS:-/var/lib/${READER}/.ssh/authorized_keys}"
}

reader_env() {
  reader_paths
  require_env COOP_PGBACKREST_CIPHER_PASS
  COOP_READER_FROM="${COOP_READER_FROM:-}"
  [[ -z "${COOP_READER_FROM}" || "${COOP_READER_FROM}" =~ ^[0-9a-fA-F.:]+$ ]] || die "COOP_READER_FROM '${COOP_READER_FROM}' is not an IP address"
  CIPHER_PASS="${COOP_PGBACKREST_CIPHER_PASS}"
  unset COOP_PGBACKREST_CIPHER_PASS
  COOP_REPO_OS_USER="${COOP_REPO_OS_USER:-coop-backup}"
  COOP_REPO_PATH="${COOP_REPO_PATH:-/srv/backup/pgbackrest}"
  COOP_RESTIC_REPO_PATH="${COOP_RESTIC_REPO_PATH:-/srv/backup/restic}"
  COOP_DRILL_RESULTS_DIR="${COOP_DRILL_RESULTS_DIR:-/var/lib/coop/drills}"
  id -u "${COOP_REPO_OS_USER}" >/dev/null 2>&1 || die "no user ${COOP_REPO_OS_USER}: install-backup.sh (repo side) must run on this host first"
  REPO_GROUP=$(id -gn "${COOP_REPO_OS_USER}")
}

ensure_reader() {
  if ! id -u "${READER}" >/dev/null 2>&1; then
    useradd --system --create-home --home-dir "/var/lib/${READER}" --shell /bin/sh --user-group "${READER}"
  fi
  usermod -a -G "${REPO_GROUP}" "${READER}"
}

# Made once, beside the grant (root only): a re-run hands out the same key.
reader_key() {
  [[ -f "${READER_KEY}" && -f "${READER_KEY}.pub" ]] && return 0
  install -d -m 0700 "$(dirname "${READER_KEY}")"
  rm -f "${READER_KEY}.tmp" "${READER_KEY}.tmp.pub"
  ssh-keygen -q -t ed25519 -N '' -C "coop-read-${COOP_READER_NAME}" -f "${READER_KEY}.tmp"
  mv -f "${READER_KEY}.tmp.pub" "${READER_KEY}.pub"
  mv -f "${READER_KEY}.tmp" "${READER_KEY}"
}

# Read for the group, never write: existing files once, and restic's config so its new files follow.
repository_modes() {
  local path
  # restic gives new files its config's group bits: a repository made after the grant would shut the reader out.
  [[ -f "${COOP_RESTIC_REPO_PATH}/config" ]] ||
    die "no restic repository in ${COOP_RESTIC_REPO_PATH} yet: grant a reader after the first backup (backup.sh) has made it"
  for path in "${COOP_REPO_PATH}" "${COOP_RESTIC_REPO_PATH}"; do
    [[ -d "${path}" ]] || die "${path} is missing: no repository to grant"
    chgrp -R "${REPO_GROUP}" "${path}"
    chmod -R g+rX,g-w,o-rwx "${path}"
    # (runuser starts a session of its own, so the group just added counts.)
    runuser -u "${READER}" -- test -r "${path}" -a -x "${path}" ||
      die "${READER} cannot reach ${path}: a folder above it shuts out its group (${REPO_GROUP}); give it g+x or o+x"
  done
}

render_reader_config() {
  cat <<CONF
# Managed by grant-repo-reader.sh: what ${READER} reads through pgBackRest's remote. Read-only by the
# kernel's word: ${READER} may read the repository's files and write none of them.
[global]
repo1-path=${COOP_REPO_PATH}
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=${CIPHER_PASS}
log-level-console=warn
log-level-file=off
lock-path=/tmp/${READER}-lock
CONF
}

# The forced command of the reader's key: a read-only sftp server, pgBackRest's remote with this host's
# reader configuration, or the last verified backup (JSON, `null` before any drill passed). The
# command's words are split, never evaluated by a shell.
render_wrapper() {
  local allowed='restore:remote|archive-get:remote|info:remote|info'
  cat <<WRAPPER
#!/bin/bash
# Managed by grant-repo-reader.sh: all ${READER}'s key may run.
set -euo pipefail
read -ra words <<<"\${SSH_ORIGINAL_COMMAND:-}"
case "\${words[0]:-}" in
  internal-sftp | */sftp-server) exec /usr/lib/openssh/sftp-server -R ;;
  drill-verified) cat ${COOP_DRILL_RESULTS_DIR}/last-verified.json 2>/dev/null || echo null ;;
  pgbackrest)
    args=()
    for w in "\${words[@]:1}"; do
      case "\${w}" in
        --config=* | --config-path=* | --config-include-path=* | --repo*-path=*) ;;
        --*) args+=("\${w}") ;;
        *) [[ "\${w}" =~ ^(${allowed})\$ ]] || { echo "coop-repo-reader: refused argument '\${w}'" >&2; exit 1; }
          args+=("\${w}") ;;
      esac
    done
    [[ "\${args[-1]:-}" =~ ^(${allowed})\$ ]] ||
      { echo "coop-repo-reader: only pgBackRest's info and the remote of a restore or archive-get may run" >&2; exit 1; }
    exec pgbackrest --config=${READER_CONFIG} "\${args[@]}" ;;
  *) echo "coop-repo-reader: ${READER} may only read the backups (sftp, pgbackrest remote, drill-verified)" >&2; exit 1 ;;
esac
WRAPPER
}

write_files() {
  render_reader_config | put_file "${READER_CONFIG}" 0640 root "${READER}"
  render_wrapper | put_file "${WRAPPER}" 0755 root root
  mkdir -p "$(dirname "${COOP_READER_AUTHORIZED_KEYS}")"
  printf '%srestrict,command="%s" %s\n' "${COOP_READER_FROM:+from=\"${COOP_READER_FROM}\",}" "${WRAPPER}" "$(cut -d' ' -f1,2 "${READER_KEY}.pub")" |
    put_file "${COOP_READER_AUTHORIZED_KEYS}" 0644 root root
  printf '# Managed by grant-repo-reader.sh: %s reads the backups.\nAllowUsers %s%s\n' "${COOP_READER_NAME}" "${READER}" "${COOP_READER_FROM:+@${COOP_READER_FROM}}" |
    put_file "${SSHD_DROPIN}" 0644 root root
  reload_sshd
  log_info "${READER} may read ${COOP_REPO_PATH} and ${COOP_RESTIC_REPO_PATH}${COOP_READER_FROM:+ from ${COOP_READER_FROM}} and change nothing"
}

reload_sshd() {
  [[ "${COOP_SKIP_SYSTEMCTL:-}" == 1 ]] && return 0
  sshd -t || die "sshd rejects its configuration with ${SSHD_DROPIN}"
  systemctl reload ssh
}

# What the grant made goes; a reader that was never granted leaves nothing to do.
revoke() {
  reader_paths
  lock_acquire grant-repo-reader
  # Its sessions end first, so no restore keeps reading through a key that is gone.
  if id -u "${READER}" >/dev/null 2>&1; then
    pkill -KILL -u "${READER}" 2>/dev/null || true
    userdel --remove "${READER}" 2>/dev/null || userdel "${READER}"
  fi
  rm -f "${SSHD_DROPIN}" "${WRAPPER}" "${READER_CONFIG}" "${COOP_READER_AUTHORIZED_KEYS}"
  rm -rf "$(dirname "${READER_KEY}")" "${COOP_STATE_DIR}/grant-repo-reader.state"
  reload_sshd
  log_info "${READER} can no longer read this host's backups"
}

main() {
  case "${1:-}" in
    -h | --help) usage; return 0 ;;
    --revoke) revoke; return 0 ;;
    "") ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
  reader_env
  run_begin grant-repo-reader "${COOP_READER_NAME}"
  steps_total 4
  step user ensure_reader
  step key reader_key
  step modes repository_modes
  step files write_files
  run_finish
  print_grant
}

print_grant() {
  local host_key="${COOP_ETC_DIR}/ssh/ssh_host_ed25519_key.pub"
  [[ -f "${host_key}" ]] || die "no ${host_key}: the reader could not pin this host's key"
  printf 'reader-user %s\n' "${READER}"
  printf 'reader-key %s\n' "$(base64 -w0 "${READER_KEY}")"
  printf 'host-key %s\n' "$(cut -d' ' -f1,2 "${host_key}")"
}

main "$@"
