#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Gives another stack's host (alpha) read access to this repository host's backups, and nothing more:
# an OS user of its own in the repositories' group (pgBackRest makes files 0640 and folders 0750, and
# restic 0.14 gives new files the group bits of the repository's config file), so the kernel refuses
# every write, expire or delete whatever the reader asks for; an SSH key that can only run a read-only
# sftp server (restic, with --no-lock) or pgBackRest's info and the remote of a restore or archive-get,
# with the reader's own configuration, which holds the repository's cipher passphrase here, on prod's
# side. Idempotent; run on the repository host.
#
# Usage: grant-repo-reader.sh [--help]
# Environment (defaults in brackets):
#   COOP_READER_NAME               the reading stack, e.g. alpha (user coop-read-<name>); required
#   COOP_READER_PUBLIC_KEY         its backup user's ed25519 public key line; required
#   COOP_READER_FROM               the address it connects from (empty: any; set it on real hosts)
#   COOP_PGBACKREST_CIPHER_PASS    the repository's passphrase (secret, from the environment only)
#   COOP_REPO_OS_USER [coop-backup]  owner of the repositories   COOP_STANZA [main]
#   COOP_REPO_PATH [/srv/backup/pgbackrest]   COOP_RESTIC_REPO_PATH [/srv/backup/restic]
#   COOP_READER_AUTHORIZED_KEYS [/var/lib/coop-read-<name>/.ssh/authorized_keys]  root-owned: the reader
#                                  cannot change what its key may run
#   For tests: COOP_ETC_DIR [/etc]  COOP_SBIN_DIR [/usr/local/sbin]  COOP_SKIP_SYSTEMCTL (no sshd reload)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

CIPHER_PASS=""

reader_env() {
  require_env COOP_READER_NAME COOP_READER_PUBLIC_KEY COOP_PGBACKREST_CIPHER_PASS
  [[ "${COOP_READER_NAME}" =~ ^[a-z][a-z0-9-]{0,15}$ ]] || die "COOP_READER_NAME '${COOP_READER_NAME}' must be a short lower-case name (a stack: alpha)"
  [[ "${COOP_READER_PUBLIC_KEY}" =~ ^ssh-ed25519\ [A-Za-z0-9+/=]+(\ [^\"]*)?$ ]] || die "COOP_READER_PUBLIC_KEY is not an ed25519 public key line"
  COOP_READER_FROM="${COOP_READER_FROM:-}"
  [[ -z "${COOP_READER_FROM}" || "${COOP_READER_FROM}" =~ ^[0-9a-fA-F.:]+$ ]] || die "COOP_READER_FROM '${COOP_READER_FROM}' is not an IP address"
  CIPHER_PASS="${COOP_PGBACKREST_CIPHER_PASS}"
  unset COOP_PGBACKREST_CIPHER_PASS
  COOP_REPO_OS_USER="${COOP_REPO_OS_USER:-coop-backup}"
  COOP_STANZA="${COOP_STANZA:-main}"
  COOP_REPO_PATH="${COOP_REPO_PATH:-/srv/backup/pgbackrest}"
  COOP_RESTIC_REPO_PATH="${COOP_RESTIC_REPO_PATH:-/srv/backup/restic}"
  COOP_ETC_DIR="${COOP_ETC_DIR:-/etc}"
  COOP_SBIN_DIR="${COOP_SBIN_DIR:-/usr/local/sbin}"
  READER="coop-read-${COOP_READER_NAME}"
  READER_CONFIG="${COOP_ETC_DIR}/pgbackrest/reader-${COOP_READER_NAME}.conf"
  WRAPPER="${COOP_SBIN_DIR}/coop-repo-reader-${COOP_READER_NAME}"
  COOP_READER_AUTHORIZED_KEYS="${COOP_READER_AUTHORIZED_KEYS:-/var/lib/${READER}/.ssh/authorized_keys}"
  id -u "${COOP_REPO_OS_USER}" >/dev/null 2>&1 || die "no user ${COOP_REPO_OS_USER}: install-backup.sh (repo side) must run on this host first"
  REPO_GROUP=$(id -gn "${COOP_REPO_OS_USER}")
}

ensure_reader() {
  if ! id -u "${READER}" >/dev/null 2>&1; then
    useradd --system --create-home --home-dir "/var/lib/${READER}" --shell /bin/sh --user-group "${READER}"
  fi
  usermod -a -G "${REPO_GROUP}" "${READER}"
}

# Read for the group, never write: existing files once, and restic's config so its new files follow.
repository_modes() {
  local path
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

# The forced command of the reader's key: a read-only sftp server, or pgBackRest's remote with this
# host's reader configuration. The command's words are split, never evaluated by a shell.
render_wrapper() {
  cat <<WRAPPER
#!/bin/bash
# Managed by grant-repo-reader.sh: all ${READER}'s key may run.
set -euo pipefail
read -ra words <<<"\${SSH_ORIGINAL_COMMAND:-}"
case "\${words[0]:-}" in
  internal-sftp | */sftp-server) exec /usr/lib/openssh/sftp-server -R ;;
  pgbackrest)
    args=()
    for w in "\${words[@]:1}"; do
      case "\${w}" in
        --config=* | --config-path=* | --config-include-path=* | --repo*-path=*) ;;
        --*) args+=("\${w}") ;;
        restore:remote | archive-get:remote | info:remote | info) args+=("\${w}") ;;
        *) echo "coop-repo-reader: refused argument '\${w}'" >&2; exit 1 ;;
      esac
    done
    [[ "\${args[-1]:-}" =~ ^(restore:remote|archive-get:remote|info:remote|info)\$ ]] ||
      { echo "coop-repo-reader: only pgBackRest's info and the remote of a restore or archive-get may run" >&2; exit 1; }
    exec pgbackrest --config=${READER_CONFIG} "\${args[@]}" ;;
  *) echo "coop-repo-reader: ${READER} may only read the backups (sftp, pgbackrest remote)" >&2; exit 1 ;;
esac
WRAPPER
}

write_files() {
  render_reader_config | put_file "${READER_CONFIG}" 0640 root "${READER}"
  render_wrapper | put_file "${WRAPPER}" 0755 root root
  mkdir -p "$(dirname "${COOP_READER_AUTHORIZED_KEYS}")"
  printf '%srestrict,command="%s" %s\n' "${COOP_READER_FROM:+from=\"${COOP_READER_FROM}\",}" "${WRAPPER}" "${COOP_READER_PUBLIC_KEY}" |
    put_file "${COOP_READER_AUTHORIZED_KEYS}" 0644 root root
  printf '# Managed by grant-repo-reader.sh: %s reads the backups.\nAllowUsers %s%s\n' "${COOP_READER_NAME}" "${READER}" "${COOP_READER_FROM:+@${COOP_READER_FROM}}" |
    put_file "${COOP_ETC_DIR}/ssh/sshd_config.d/61-coop-reader-${COOP_READER_NAME}.conf" 0644 root root
  if [[ "${COOP_SKIP_SYSTEMCTL:-}" != 1 ]]; then
    sshd -t || die "sshd rejects ${COOP_ETC_DIR}/ssh/sshd_config.d/61-coop-reader-${COOP_READER_NAME}.conf"
    systemctl reload ssh
  fi
  log_info "${READER} may read ${COOP_REPO_PATH} and ${COOP_RESTIC_REPO_PATH}${COOP_READER_FROM:+ from ${COOP_READER_FROM}} and change nothing"
}

main() {
  case "${1:-}" in
    -h | --help) usage; return 0 ;;
    "") ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
  reader_env
  run_begin grant-repo-reader "${COOP_READER_NAME}"
  steps_total 3
  step user ensure_reader
  step modes repository_modes
  step files write_files
  run_finish
}

main "$@"
