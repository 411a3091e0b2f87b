#!/usr/bin/env bash
# Run on the operator's machine during every `pulumi preview` and `pulumi up` of alpha (a
# command.local.runOutput in components/restore.ts): prod's backup sets (pgBackRest's JSON info) and
# the one its last passing drill verified, through prod's read-only grant, whose forced command allows
# these and nothing that writes. Prints {"info": [...], "verified": {...} | null}. The key comes in the
# environment and lives in a 0700 folder only while ssh runs; the host key is pinned.
# Environment: COOP_READER_HOST, COOP_READER_PORT, COOP_READER_USER, COOP_READER_KEY (base64 of the
# OpenSSH private key), COOP_READER_HOST_KEY (`ssh-ed25519 <base64>`), COOP_STANZA.
set -euo pipefail

for v in COOP_READER_HOST COOP_READER_PORT COOP_READER_USER COOP_READER_KEY COOP_READER_HOST_KEY COOP_STANZA; do
  [[ -n "${!v:-}" ]] || { echo "read-prod-backups: ${v} is empty" >&2; exit 2; }
done
dir=$(mktemp -d)
trap 'rm -rf "${dir}"' EXIT
umask 077
printf '%s' "${COOP_READER_KEY}" | base64 -d >"${dir}/key"
known="${COOP_READER_HOST} ${COOP_READER_HOST_KEY}"
[[ "${COOP_READER_PORT}" == 22 ]] || known="[${COOP_READER_HOST}]:${COOP_READER_PORT} ${COOP_READER_HOST_KEY}"
printf '%s\n' "${known}" >"${dir}/known_hosts"
on_prod() {
  ssh -F /dev/null -i "${dir}/key" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="${dir}/known_hosts" -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=20 \
    -p "${COOP_READER_PORT}" "${COOP_READER_USER}@${COOP_READER_HOST}" "$@"
}
info=$(on_prod "pgbackrest --stanza=${COOP_STANZA} --output=json info")
verified=$(on_prod drill-verified)
printf '{"info": %s, "verified": %s}\n' "${info}" "${verified}"
