#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The first deploy of the app (Mastodon or Hometown through scripts/lib/app-mastodon.sh, the fixture app
# through its adapter on local stacks) on a host where install-database.sh has run: the app user's
# release layout (releases/<tag>, current, live -> current, shared/ with public/system and
# .env.production), the instance's own secrets born here, the release fetched, built and migrated,
# `current` switched, the nginx site with the maintenance switch, the app's systemd units (enabled, so a
# reboot starts them), every process started, and /health checked through nginx. Once `current` exists this only re-checks the site and the processes: later
# releases are upgrade-app.sh's (with its restore point and rollback).
#
# Idempotent and resumable (named steps): killed at any moment, a re-run picks up where it stopped.
#
# Environment (defaults in brackets), besides the adapter's and scripts/lib/pg.sh's:
#   COOP_TARGET_TAG          the release to deploy first (required)
#   COOP_DOMAIN              the instance's name (required)
#   COOP_APP_ADAPTER [scripts/lib/app-mastodon.sh]
#   COOP_APP_ROOT [/home/mastodon]   COOP_APP_USER [mastodon]
#   COOP_APP_WEB_PORT [3000]  COOP_APP_STREAMING_PORT [4000]
#   COOP_MAINTENANCE_DIR [/var/lib/coop/maintenance]
#   COOP_ACME_* and COOP_CLOUDFLARE_API_TOKEN: the certificate (scripts/lib/tls.sh)
#   COOP_ADMIN_EMAIL, COOP_ADMIN_USERNAME   the owner account a new instance gets (stack config adminEmail);
#                            its generated password is written to COOP_ADMIN_PASSWORD_FILE
#                            [/etc/coop/admin-password] (0600), never to the log
#   COOP_MAIL_SMTP_URL, COOP_MAIL_FROM, COOP_MAIL_SMTP_START_TLS [true], COOP_MAIL_SMTP_LOGIN,
#   COOP_MAIL_SMTP_PASSWORD  the instance's mail (stack config mail, secret mailSmtpPassword): SMTP_* in
#                            .env.production's managed block; unset, the block has none
#   COOP_APP_SOURCE_STDIN [0]  1: the app's source comes on stdin, as a base64 tar of app.bundle (its git
#                            repository) and adapter.sh, unpacked into COOP_APP_SOURCE_DIR
#                            [/var/lib/coop/app-source]; for local stacks, whose hosts have no route out
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/pg.sh
source "${SCRIPT_DIR}/lib/pg.sh"
# shellcheck source=lib/releases.sh
source "${SCRIPT_DIR}/lib/releases.sh"
# shellcheck source=lib/app-site.sh
source "${SCRIPT_DIR}/lib/app-site.sh"
# shellcheck source=lib/tls.sh
source "${SCRIPT_DIR}/lib/tls.sh"
# shellcheck source=lib/requirements.sh
source "${SCRIPT_DIR}/lib/requirements.sh"
# shellcheck source=lib/deploy-source.sh
source "${SCRIPT_DIR}/lib/deploy-source.sh"
# shellcheck source=lib/deploy-site.sh
source "${SCRIPT_DIR}/lib/deploy-site.sh"
# shellcheck source=lib/deploy-owner.sh
source "${SCRIPT_DIR}/lib/deploy-owner.sh"

env_defaults() {
  require_env COOP_TARGET_TAG COOP_DOMAIN
  [[ "${COOP_DOMAIN}" =~ ^[a-z0-9.-]+$ ]] || die "COOP_DOMAIN '${COOP_DOMAIN}' is not a host name"
  COOP_APP_USER="${COOP_APP_USER:-mastodon}"
  COOP_APP_WEB_PORT="${COOP_APP_WEB_PORT:-${COOP_APP_PORT:-3000}}"
  COOP_APP_STREAMING_PORT="${COOP_APP_STREAMING_PORT:-4000}"
  COOP_MAINTENANCE_DIR="${COOP_MAINTENANCE_DIR:-/var/lib/coop/maintenance}"
  pg_env_defaults
  releases_env_defaults
  app_env_defaults
  tls_env_defaults
  mail_env_check
  SHARED="${COOP_APP_ROOT}/shared"
  ENV_CHANGED_MARK="${COOP_STATE_DIR}/deploy-app.env-changed"
  MIGRATE_MARK="${COOP_STATE_DIR}/deploy-app.migrate-pending"
}

as_app() { runuser -u "${COOP_APP_USER}" -- "$@"; }

make_layout() {
  id -u "${COOP_APP_USER}" >/dev/null 2>&1 || useradd --create-home --home-dir "${COOP_APP_ROOT}" --shell /bin/bash "${COOP_APP_USER}"
  install -d -m 0755 -o "${COOP_APP_USER}" -g "${COOP_APP_USER}" "${COOP_APP_ROOT}" "${COOP_APP_ROOT}/releases" "${SHARED}" "${SHARED}/public"
  install -d -m 0755 -o "${COOP_APP_USER}" -g "${COOP_APP_USER}" "${SHARED}/public/system"
  # live -> current: Mastodon's paths (/home/mastodon/live/...) stay valid across releases.
  [[ -L "${COOP_APP_ROOT}/live" ]] || { as_app ln -sfn current "${COOP_APP_ROOT}/live.tmp" && mv -Tf "${COOP_APP_ROOT}/live.tmp" "${COOP_APP_ROOT}/live"; }
  # Rendered whole before it is written: a renderer that fails half-way must not replace the file. Every
  # deploy: the managed block follows the stack config (put_file writes only a changed file).
  local env_file before
  env_file=$(render_instance_env "${COOP_DOMAIN}" "${SHARED}/.env.production")
  before=$(sha256sum "${SHARED}/.env.production" 2>/dev/null || true)
  # Running processes read the file only when they start: a change restarts them (start_app). The mark is
  # on disk first, so a run killed after the write still restarts them on its re-run.
  if deployed && [[ "$(printf '%s\n' "${env_file}" | sha256sum | cut -d' ' -f1)" != "${before%% *}" ]]; then
    : >"${ENV_CHANGED_MARK}"
  fi
  printf '%s\n' "${env_file}" | put_file "${SHARED}/.env.production" 0600 "${COOP_APP_USER}" "${COOP_APP_USER}"
}

deployed() { [[ -n "$(release_current)" ]]; }

first_release() {
  if deployed; then
    # restore-instance.sh replaced the database under a deployed release (alpha's refresh: prod's data,
    # maybe an older schema than alpha's release): the release's migrations bring it level first.
    if [[ -f "${MIGRATE_MARK}" ]]; then
      log_info "the database was restored under current ($(release_current)): running its migrations"
      app_migrate_post "$(release_current)"
      rm -f "${MIGRATE_MARK}"
    fi
    log_info "already deployed: current is $(release_current); later releases are upgrade-app.sh's"
    return 0
  fi
  requirements_check "${COOP_TARGET_TAG}"
  app_fetch "${COOP_TARGET_TAG}"
  chown -R "${COOP_APP_USER}:${COOP_APP_USER}" "$(release_dir "${COOP_TARGET_TAG}")"
  app_build "${COOP_TARGET_TAG}"
  # Only an instance born here gets an owner account made for it (one restored or imported has its own,
  # and a password reset would lock its owner out): the mark is set while the database is still empty,
  # before the schema is loaded, so a kill in between still leaves it.
  local tables
  tables=$(pg_app_tables) ||
    die "cannot read ${COOP_DB_NAME}: install-database.sh must run first"
  if ((tables == 0)); then
    touch "${COOP_STATE_DIR}/deploy-app.admin-pending"
  else
    log_info "${COOP_DB_NAME} already holds ${tables} tables (a restored or imported instance): no owner account is made"
  fi
  # A new instance gets every migration at once (there is no old release serving during it).
  app_migrate_post "${COOP_TARGET_TAG}"
  release_switch "${COOP_TARGET_TAG}"
  rm -f "${MIGRATE_MARK}"
}

link_shared() {
  local dir
  dir=$(release_dir "$(release_current)")
  mkdir -p "${dir}/public"
  [[ -L "${dir}/public/system" ]] || ln -sfn "${SHARED}/public/system" "${dir}/public/system"
  [[ -L "${dir}/.env.production" ]] || ln -sfn "${SHARED}/.env.production" "${dir}/.env.production"
}

# The app's processes as systemd units on `current` (from the adapter), enabled so a reboot starts them;
# a unit whose file changed restarts if it runs.
install_units() {
  local role unit file
  local -a units=() changed=()
  for role in web streaming sidekiq; do
    unit=$(app_unit_name "${role}")
    units+=("${unit}")
    file=$(app_unit "${role}")
    if ! cmp -s <(printf '%s\n' "${file}") "/etc/systemd/system/${unit}"; then
      printf '%s\n' "${file}" | put_file "/etc/systemd/system/${unit}" 0644 root root
      changed+=("${unit}")
    fi
  done
  systemctl daemon-reload
  systemctl enable --quiet "${units[@]}"
  ((${#changed[@]} == 0)) || systemctl try-restart "${changed[@]}"
}

start_app() {
  if [[ -f "${ENV_CHANGED_MARK}" ]]; then
    log_info ".env.production changed: restarting the app's processes"
    app_stop all
  fi
  app_start all
  rm -f "${ENV_CHANGED_MARK}"
  local waited=0
  until site_health >/dev/null 2>&1; do
    ((waited < 60)) || die "the app does not answer /health through nginx after 60 s: $(site_health 2>&1 | head -c 300)"
    sleep 1
    waited=$((waited + 1))
  done
}

main() {
  # The adapter decides everything after this point; with the source on stdin, it comes from there.
  [[ "${COOP_APP_SOURCE_STDIN:-0}" == 1 ]] && unpack_source
  # shellcheck source=lib/app-mastodon.sh
  source "${COOP_APP_ADAPTER:-${SCRIPT_DIR}/lib/app-mastodon.sh}"
  env_defaults
  run_begin deploy-app "${COOP_TARGET_TAG}"
  steps_total 8
  step layout make_layout
  step release first_release
  step shared link_shared
  step site write_site
  step certificate certificate
  step units install_units
  step start start_app
  step admin admin_account
  run_finish
  local scheme=http
  tls_enabled && scheme=https
  printf 'app: %s serving %s://%s through nginx (current -> %s)\n' "${COOP_APP_FLAVOR:-app}" "${scheme}" "${COOP_DOMAIN}" "$(release_current)"
}

main "$@"
