# shellcheck shell=bash
# Maintenance mode (sourced after common.sh, files.sh and an app adapter): nginx answers 503 while the
# flag file exists (scripts/nginx/maintenance.conf), and the app's background processes, which write to
# the database without going through nginx, are stopped.
#
# Environment (defaults in brackets):
#   COOP_MAINTENANCE_FLAG [/var/lib/coop/maintenance/on]   its folder is nginx's $coop_maintenance_dir

MAINTENANCE_PAGE_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/nginx/maintenance.html"
readonly MAINTENANCE_PAGE_SRC

maintenance_env_defaults() {
  COOP_MAINTENANCE_FLAG="${COOP_MAINTENANCE_FLAG:-/var/lib/coop/maintenance/on}"
}

maintenance_is_on() { [[ -f "${COOP_MAINTENANCE_FLAG}" ]]; }

# maintenance_on [REASON]: the flag first, so nginx stops sending requests before anything stops.
maintenance_on() {
  local reason="${1:-maintenance}"
  local dir
  dir=$(dirname "${COOP_MAINTENANCE_FLAG}")
  mkdir -p "${dir}"
  # nginx's workers run as an unprivileged user: the folder must be searchable and the page readable.
  chmod 755 "${dir}"
  if ! cmp -s "${MAINTENANCE_PAGE_SRC}" "${dir}/maintenance.html"; then
    write_atomic "${dir}/maintenance.html" <"${MAINTENANCE_PAGE_SRC}"
    chmod 644 "${dir}/maintenance.html"
  fi
  if maintenance_is_on; then
    log_info "maintenance already on ($(head -n 1 "${COOP_MAINTENANCE_FLAG}"))"
  else
    printf '%s since %s\n' "${reason}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" | write_atomic "${COOP_MAINTENANCE_FLAG}"
    chmod 644 "${COOP_MAINTENANCE_FLAG}"
    log_info "maintenance on: nginx answers 503"
  fi
  app_stop streaming
  app_stop sidekiq
}

# maintenance_off: the background processes first, then the flag, so users come back to a whole app.
maintenance_off() {
  app_start streaming
  app_start sidekiq
  if maintenance_is_on; then
    rm -f "${COOP_MAINTENANCE_FLAG}"
    log_info "maintenance off: nginx serves the app again"
  else
    log_info "maintenance already off"
  fi
}

maintenance_status() {
  if maintenance_is_on; then
    printf 'on: %s\n' "$(head -n 1 "${COOP_MAINTENANCE_FLAG}")"
  else
    printf 'off\n'
  fi
}
