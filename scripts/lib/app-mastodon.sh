# shellcheck shell=bash
# The app adapter for Mastodon and Hometown (sourced after common.sh, pg.sh and releases.sh). The host
# scripts reach the app only through these functions; test/fixtures/app/adapter.sh implements the same
# ones for the tests. It cannot run on the development machine (no RubyGems, no Mastodon checkout):
# the commands follow Mastodon's upgrade notes, and shellcheck is what checks it there.
#
# Interface (every adapter):
#   app_env_defaults                  read COOP_* settings, set defaults
#   app_has_tag TAG                   the upstream repository has this release tag
#   app_fetch TAG                     check TAG out into releases/<TAG> (releases.sh)
#   app_build TAG                     install dependencies and build assets in releases/<TAG>
#   app_migrate_pre TAG               pre-deployment migrations (SKIP_POST_DEPLOYMENT_MIGRATIONS=true)
#   app_migrate_post TAG              all remaining migrations (post-deployment ones included)
#   app_start|app_stop web|streaming|sidekiq|all   idempotent; start runs the release `current` points at
#   app_health                        exit 0 when the web process answers GET /health
# Each may print freely (the caller keeps its output in the step's log) and fails with a non-zero status.
#
# Layout on the host: ${COOP_APP_ROOT}/releases/<tag> (one checkout per release), ${COOP_APP_ROOT}/current
# -> releases/<tag>, and ${COOP_APP_SHARED_DIR} holding what outlives a release: .env.production and
# public/system (media), linked into each release by app_build. The systemd units mastodon-web,
# mastodon-streaming and mastodon-sidekiq must use WorkingDirectory=${COOP_APP_ROOT}/current (Mastodon's
# sample units say /home/mastodon/live: replace `live` by a symlink to `current` once, so paths such as
# backup.sh's /home/mastodon/live/.env.production keep working).
#
# Environment (defaults in brackets):
#   COOP_APP_FLAVOR [mastodon]        mastodon | hometown: which upstream repository releases come from
#   COOP_APP_REPO                     overrides that repository's URL (a mirror)
#   COOP_APP_USER [mastodon]          owns the releases and runs bundle, yarn and rails
#   COOP_APP_SHARED_DIR [${COOP_APP_ROOT}/shared]
#   COOP_APP_WEB_PORT [3000]          Puma's port, for the health check
#   COOP_APP_MIGRATE_DB_PORT          DB_PORT for migrations: PostgreSQL itself when the app uses
#                                     PgBouncer in transaction mode (migrations need session features)
#   COOP_APP_UNIT_PREFIX [mastodon-]  systemd unit names: <prefix>web, <prefix>streaming, <prefix>sidekiq

readonly APP_MASTODON_REPO="https://github.com/mastodon/mastodon.git"
readonly APP_HOMETOWN_REPO="https://github.com/hometown-fork/hometown.git"
readonly APP_ROLES="web streaming sidekiq"

app_env_defaults() {
  COOP_APP_FLAVOR="${COOP_APP_FLAVOR:-mastodon}"
  case "${COOP_APP_FLAVOR}" in
    mastodon) COOP_APP_REPO="${COOP_APP_REPO:-${APP_MASTODON_REPO}}" ;;
    hometown) COOP_APP_REPO="${COOP_APP_REPO:-${APP_HOMETOWN_REPO}}" ;;
    *) die "COOP_APP_FLAVOR must be mastodon or hometown (found '${COOP_APP_FLAVOR}')" ;;
  esac
  COOP_APP_USER="${COOP_APP_USER:-mastodon}"
  COOP_APP_SHARED_DIR="${COOP_APP_SHARED_DIR:-${COOP_APP_ROOT}/shared}"
  COOP_APP_WEB_PORT="${COOP_APP_WEB_PORT:-3000}"
  COOP_APP_MIGRATE_DB_PORT="${COOP_APP_MIGRATE_DB_PORT:-}"
  COOP_APP_UNIT_PREFIX="${COOP_APP_UNIT_PREFIX:-mastodon-}"
}

# app_run DIR cmd [args...]: as the app user in DIR, with rbenv's Ruby first on PATH and production env.
app_run() {
  local dir="$1" home
  shift
  home=$(getent passwd "${COOP_APP_USER}" | cut -d: -f6)
  [[ -n "${home}" ]] || die "user ${COOP_APP_USER} does not exist"
  runuser -u "${COOP_APP_USER}" -- env -C "${dir}" HOME="${home}" \
    PATH="${home}/.rbenv/shims:${home}/.rbenv/bin:/usr/local/bin:/usr/bin:/bin" \
    RAILS_ENV=production NODE_ENV=production "$@"
}

app_has_tag() { release_tag_exists "${COOP_APP_REPO}" "$1"; }

app_fetch() {
  local tag="$1"
  release_fetch "${COOP_APP_REPO}" "${tag}"
  chown -R "${COOP_APP_USER}:" "$(release_dir "${tag}")"
}

# Shared files are links, so a release folder never holds the instance's secrets or media itself.
app_link_shared() {
  local dir="$1" path
  for path in .env.production public/system; do
    [[ -e "${COOP_APP_SHARED_DIR}/${path}" ]] || die "${COOP_APP_SHARED_DIR}/${path} is missing (move it there from the old live folder)"
    if [[ ! -L "${dir}/${path}" ]]; then
      rm -rf "${dir:?}/${path}"
      ln -s "${COOP_APP_SHARED_DIR}/${path}" "${dir}/${path}"
      chown -h "${COOP_APP_USER}:" "${dir}/${path}"
    fi
  done
}

# Build once per release: the marker is written last, so a killed build runs again in full.
app_build() {
  local tag="$1"
  local dir
  dir=$(release_dir "${tag}")
  [[ -f "${dir}/.coop-built" ]] && { log_info "release ${tag} already built"; return 0; }
  app_link_shared "${dir}"
  app_run "${dir}" bundle config set --local deployment true
  app_run "${dir}" bundle config set --local without 'development test'
  app_run "${dir}" bundle install -j"$(nproc)"
  # Mastodon 4.3 moved to Yarn 4 (through corepack, enabled once as root at install time), which
  # spells the frozen lockfile --immutable.
  if [[ -f "${dir}/.yarnrc.yml" ]]; then
    app_run "${dir}" yarn install --immutable
  else
    app_run "${dir}" yarn install --frozen-lockfile
  fi
  app_run "${dir}" bundle exec rails assets:precompile
  app_run "${dir}" touch .coop-built
}

app_rails_migrate() {
  local tag="$1"
  shift
  local -a env=("$@")
  [[ -n "${COOP_APP_MIGRATE_DB_PORT}" ]] && env+=("DB_PORT=${COOP_APP_MIGRATE_DB_PORT}")
  app_run "$(release_dir "${tag}")" env "${env[@]}" bundle exec rails db:migrate
}

app_migrate_pre() { app_rails_migrate "$1" SKIP_POST_DEPLOYMENT_MIGRATIONS=true; }

app_migrate_post() { app_rails_migrate "$1"; }

# app_units web|streaming|sidekiq|all: sets APP_UNITS to the systemd units named.
app_units() {
  local role
  local -a roles
  case "$1" in
    all) read -r -a roles <<<"${APP_ROLES}" ;;
    web | streaming | sidekiq) roles=("$1") ;;
    *) die "unknown app process '$1' (expected web, streaming, sidekiq or all)" ;;
  esac
  APP_UNITS=()
  for role in "${roles[@]}"; do APP_UNITS+=("${COOP_APP_UNIT_PREFIX}${role}.service"); done
}

app_start() {
  app_units "$1"
  systemctl start "${APP_UNITS[@]}"
}

app_stop() {
  app_units "$1"
  systemctl stop "${APP_UNITS[@]}"
}

app_health() {
  curl -fsS --max-time 5 "http://127.0.0.1:${COOP_APP_WEB_PORT}/health"
}
