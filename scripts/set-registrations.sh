#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Who may sign up on the instance (Mastodon's registrations_mode setting, through the adapter): open,
# approved (each sign-up waits for a moderator) or closed. The program runs it after the first deploy and
# again only when the stack config's `registrations` changes, so an admin's own choice in the admin
# settings stands until the config says otherwise. alpha never runs it: sanitize-alpha.sh closes sign-ups.
# Idempotent (it sets one value); killed at any moment, the setting is the old value or the new one.
#
# Usage: set-registrations.sh [--help]
# Environment (defaults in brackets), besides the adapter's and scripts/lib/pg.sh's:
#   COOP_REGISTRATIONS       open | approved | closed (required)
#   COOP_APP_ADAPTER [scripts/lib/app-mastodon.sh]
#   COOP_APP_ROOT [/home/mastodon]
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/pg.sh
source "${SCRIPT_DIR}/lib/pg.sh"
# shellcheck source=lib/releases.sh
source "${SCRIPT_DIR}/lib/releases.sh"
# shellcheck source=lib/app-mastodon.sh
source "${COOP_APP_ADAPTER:-${SCRIPT_DIR}/lib/app-mastodon.sh}"

usage() { sed -n '/^# shellcheck /d; 2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

main() {
  [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; return 0; }
  [[ $# -eq 0 ]] || die "unexpected argument '$1' (see --help)"
  require_env COOP_REGISTRATIONS
  [[ "${COOP_REGISTRATIONS}" =~ ^(open|approved|closed)$ ]] ||
    die "COOP_REGISTRATIONS must be open, approved or closed (found '${COOP_REGISTRATIONS}'); the stack config's registrations sets it"
  pg_env_defaults
  releases_env_defaults
  app_env_defaults
  [[ -L "${COOP_APP_ROOT}/current" ]] || die "no release deployed in ${COOP_APP_ROOT} (deploy-app.sh runs first)"
  app_set_registrations "${COOP_REGISTRATIONS}"
  log_info "registrations: ${COOP_REGISTRATIONS}"
}

main "$@"
