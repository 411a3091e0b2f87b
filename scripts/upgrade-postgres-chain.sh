#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The PostgreSQL link of the `pulumi up` upgrade chain (components/upgrade.ts): given only the target
# major, works out the rest on the host, once, and records it, so a re-run after a kill resumes the
# same upgrade even after the data link has moved to the new cluster. Nothing to do when the live
# cluster already runs the target major. The instance is in maintenance while its database is down;
# maintenance stays on if the upgrade fails past its point of no return (see the runbook).
#
# Environment:
#   COOP_PG_TARGET_MAJOR            the configured major (required)
#   COOP_PG_DATA_LINK [/srv/postgresql/main]   symlink to the live data directory (pgBackRest's pg1-path)
#   COOP_PG_DATA_ROOT [/srv/postgresql]        new clusters go to <root>/<major>/main
#   and everything upgrade-postgres.sh and maintenance.sh read.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"

main() {
  require_env COOP_PG_TARGET_MAJOR
  [[ "${COOP_PG_TARGET_MAJOR}" =~ ^[0-9]+$ ]] || die "COOP_PG_TARGET_MAJOR must be a major version number"
  local link="${COOP_PG_DATA_LINK:-/srv/postgresql/main}"
  local root="${COOP_PG_DATA_ROOT:-/srv/postgresql}"
  local recorded="${COOP_STATE_DIR}/upgrade-postgres-${COOP_PG_TARGET_MAJOR}.env"
  local live
  mkdir -p "${COOP_STATE_DIR}"
  if [[ ! -f "${recorded}" ]]; then
    live=$(cat "${link}/PG_VERSION" 2>/dev/null) || die "${link} is not a PostgreSQL data directory (or link to one)"
    if [[ "${live}" == "${COOP_PG_TARGET_MAJOR}" ]]; then
      log_info "PostgreSQL ${live} is live at ${link}: nothing to upgrade"
      return 0
    fi
    ((live < COOP_PG_TARGET_MAJOR)) || die "the live cluster runs PostgreSQL ${live}, newer than the configured ${COOP_PG_TARGET_MAJOR}: lower versions.postgres only by restoring a backup"
    # Recorded before anything changes: after the switch the link no longer says where the old cluster is.
    printf 'COOP_PG_DATA_LINK=%q\nCOOP_PG_OLD_DATA=%q\nCOOP_PG_OLD_BIN=%q\nCOOP_PG_NEW_DATA=%q\n' \
      "${link}" "$(readlink -f "${link}")" "/usr/lib/postgresql/${live}/bin" "${root}/${COOP_PG_TARGET_MAJOR}/main" |
      { tmp=$(mktemp "${recorded}.XXXXXX") && cat >"${tmp}" && mv -f "${tmp}" "${recorded}"; }
  fi
  set -a
  # shellcheck source=/dev/null
  source "${recorded}"
  set +a
  log_info "upgrading ${COOP_PG_OLD_DATA} (${COOP_PG_OLD_BIN}) to PostgreSQL ${COOP_PG_TARGET_MAJOR} at ${COOP_PG_NEW_DATA}"
  bash "${SCRIPT_DIR}/maintenance.sh" on
  if ! bash "${SCRIPT_DIR}/upgrade-postgres.sh" upgrade; then
    # Rolled back before the point of no return: the old cluster serves again, so may the instance.
    if [[ "$(readlink -f "${COOP_PG_DATA_LINK}")" == "${COOP_PG_OLD_DATA}" ]] && pg_isready -q -h "${COOP_PG_SOCKET:-/var/run/postgresql}" -p "${COOP_PG_PORT:-5432}"; then
      bash "${SCRIPT_DIR}/maintenance.sh" off
    fi
    die "PostgreSQL upgrade failed; see its STATE line above and docs/runbooks/upgrade-postgres.md"
  fi
  bash "${SCRIPT_DIR}/maintenance.sh" off
  rm -f "${recorded}"
}

main "$@"
