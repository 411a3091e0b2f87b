#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Maintenance mode: `on` makes nginx answer every request with 503 and Retry-After (the API as JSON,
# /health as "maintenance", the rest with the maintenance page) and stops streaming and Sidekiq; `off`
# starts them again and reopens the site; `status` prints the mode. Both are idempotent.
#   maintenance.sh on|off|status
#
# nginx: copy scripts/nginx/maintenance.conf to /etc/nginx/snippets/coop-maintenance.conf and, in the
# Mastodon site's HTTPS server block, before its first `location`:
#     set $coop_maintenance_dir /var/lib/coop/maintenance;     # the folder of COOP_MAINTENANCE_FLAG
#     include /etc/nginx/snippets/coop-maintenance.conf;
# then `nginx -t && systemctl reload nginx`. No reload is needed to switch modes: nginx checks the
# flag on every request. `on` copies scripts/nginx/maintenance.html into that folder.
#
# `off` refuses while upgrade-app.sh runs or has an interrupted run to finish (re-run it instead: it
# decides whether the site may open); COOP_FORCE=1 overrides.
#
# Environment: see scripts/lib/maintenance.sh, and
#   COOP_APP_ADAPTER [scripts/lib/app-mastodon.sh]   how to start and stop the app's processes
#   COOP_STATE_DIR [/var/lib/coop]   COOP_FORCE [0]
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/pg.sh
source "${SCRIPT_DIR}/lib/pg.sh"
# shellcheck source=lib/files.sh
source "${SCRIPT_DIR}/lib/files.sh"
# shellcheck source=lib/releases.sh
source "${SCRIPT_DIR}/lib/releases.sh"
# shellcheck source=lib/app-mastodon.sh
source "${COOP_APP_ADAPTER:-${SCRIPT_DIR}/lib/app-mastodon.sh}"
# shellcheck source=lib/maintenance.sh
source "${SCRIPT_DIR}/lib/maintenance.sh"

readonly USAGE="usage: maintenance.sh on|off|status"

# Opening the site in the middle of an upgrade would serve a half-migrated database.
refuse_during_upgrade() {
  [[ "${COOP_FORCE:-0}" == "1" ]] && return 0
  local lock="${COOP_STATE_DIR}/upgrade-app.lock"
  if [[ -f "${lock}" ]] && ! flock -n "${lock}" true; then
    die "upgrade-app.sh is running (pid $(cat "${lock}")); it turns maintenance off itself"
  fi
  if [[ -f "${COOP_STATE_DIR}/upgrade-app.state" || -f "${COOP_STATE_DIR}/upgrade-app.journal" ]]; then
    die "an interrupted upgrade-app.sh run is not finished: re-run it (it completes or rolls back, then opens the site), or set COOP_FORCE=1"
  fi
}

main() {
  local action="${1:-}"
  [[ "${action}" =~ ^(on|off|status)$ ]] || die "${USAGE}"
  pg_env_defaults
  releases_env_defaults
  app_env_defaults
  maintenance_env_defaults
  if [[ "${action}" == "status" ]]; then
    maintenance_status
    return 0
  fi
  lock_acquire maintenance
  case "${action}" in
    on) run_unlocked maintenance_on "${COOP_MAINTENANCE_REASON:-maintenance}" ;;
    off)
      refuse_during_upgrade
      run_unlocked maintenance_off
      ;;
  esac
}

main "$@"
