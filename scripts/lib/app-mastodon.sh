# shellcheck shell=bash source-path=SCRIPTDIR/..
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
#   app_unit_name ROLE, app_unit ROLE the systemd unit (name, file) ROLE runs as; deploy-app.sh installs them
#   app_requirements TAG              "postgres=<major> redis=<version>": the oldest the release runs on
#   app_account_exists USER          exit 0 when the local account exists
#   app_account_create_owner USER EMAIL   a confirmed, approved account with the Owner role; prints
#                                     "New password: <generated>" on stdout
#   app_account_reset_password USER  a new generated password, printed the same way
#   app_health                        exit 0 when the web process answers GET /health
# Each may print freely (the caller keeps its output in the step's log) and fails with a non-zero status.
# The processes' part (app_unit_name, app_unit, app_start, app_stop, app_health) is in
# app-mastodon-processes.sh, which this file sources: the adapter stays one file to name in COOP_APP_ADAPTER.
#
# Layout on the host: ${COOP_APP_ROOT}/releases/<tag> (one checkout per release), ${COOP_APP_ROOT}/current
# -> releases/<tag>, and ${COOP_APP_SHARED_DIR} holding what outlives a release: .env.production and
# public/system (media), linked into each release by app_build. The systemd units (app_unit) run
# ${COOP_APP_ROOT}/current, where Mastodon's sample units say /home/mastodon/live: `live` is a symlink to
# `current`, so paths such as /home/mastodon/live/.env.production keep working.
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

# shellcheck source=lib/app-mastodon-processes.sh
source "${SCRIPT_DIR}/lib/app-mastodon-processes.sh"

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

# app_run DIR cmd [args...]: as the app user in DIR, with rbenv's Ruby first on PATH and RAILS_ENV set.
# NODE_ENV is left out: `yarn install` under NODE_ENV=production skips the devDependencies the asset
# build needs (Mastodon's install guide sets it only for assets:precompile and streaming).
app_run() {
  local dir="$1" home
  shift
  home=$(getent passwd "${COOP_APP_USER}" | cut -d: -f6)
  [[ -n "${home}" ]] || die "user ${COOP_APP_USER} does not exist"
  runuser -u "${COOP_APP_USER}" -- env -C "${dir}" HOME="${home}" \
    PATH="${home}/.rbenv/shims:${home}/.rbenv/bin:/usr/local/bin:/usr/bin:/bin" \
    RAILS_ENV=production "$@"
}

# app_requirements TAG: from the upgrade notes of each series (docs/mastodon-adapter.md): 4.3 needs
# PostgreSQL 12 and Redis 4; 4.4 PostgreSQL 13 and Redis 6.2; 4.5 and later PostgreSQL 14. Hometown's
# tags carry their Mastodon base first (v4.5.11+hometown-1.2.1).
app_requirements() {
  local base=${1#v} major minor
  base=${base%%+*}
  major=${base%%.*}
  minor=${base#*.}
  minor=${minor%%.*}
  [[ "${major}" =~ ^[0-9]+$ && "${minor}" =~ ^[0-9]+$ ]] || die "'$1' is not a release tag (vMAJOR.MINOR.PATCH)"
  if ((major > 4 || (major == 4 && minor >= 5))); then
    echo "postgres=14 redis=6.2"
  elif ((major == 4 && minor == 4)); then
    echo "postgres=13 redis=6.2"
  else
    echo "postgres=12 redis=4.0"
  fi
}

# The release's Ruby (its .ruby-version) through rbenv and ruby-build, as Mastodon's install guide
# does, installed once per version; its Node.js major (package.json engines) checked against the host's.
app_runtime() {
  local dir="$1" home ruby want_node have_node
  home=$(getent passwd "${COOP_APP_USER}" | cut -d: -f6)
  if [[ ! -x "${home}/.rbenv/bin/rbenv" ]]; then
    app_run "${home}" git clone -q https://github.com/rbenv/rbenv.git "${home}/.rbenv"
  fi
  if [[ ! -d "${home}/.rbenv/plugins/ruby-build" ]]; then
    app_run "${home}" git clone -q https://github.com/rbenv/ruby-build.git "${home}/.rbenv/plugins/ruby-build"
  else
    # ruby-build learns of new Ruby releases only by being updated.
    app_run "${home}" git -C "${home}/.rbenv/plugins/ruby-build" pull -q --ff-only
  fi
  ruby=$(tr -d '[:space:]' <"${dir}/.ruby-version")
  [[ "${ruby}" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "${dir}/.ruby-version holds '${ruby}', not a Ruby version"
  app_run "${dir}" env RUBY_CONFIGURE_OPTS=--with-jemalloc rbenv install --skip-existing "${ruby}"
  app_run "${dir}" gem install --conservative bundler
  want_node=$(jq -r '.engines.node // empty' "${dir}/package.json" | grep -o '[0-9]\+' | head -n 1)
  have_node=$(node --version | sed 's/^v\([0-9]*\).*/\1/')
  if [[ -n "${want_node}" ]] && ((have_node < want_node)); then
    die "$(basename "${dir}") needs Node.js ${want_node} or newer (package.json engines: $(jq -r .engines.node "${dir}/package.json")); this host has ${have_node}. Install it first (nodesource, as Mastodon's install guide does)"
  fi
  corepack enable
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
  app_runtime "${dir}"
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
  app_run "${dir}" env NODE_ENV=production bundle exec rails assets:precompile
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

app_tootctl() { app_run "${COOP_APP_ROOT}/current" bin/tootctl "$@"; }

# `accounts modify` with no option changes nothing and fails only when there is no such user.
app_account_exists() { app_tootctl accounts modify "$1" >/dev/null 2>&1; }

app_account_create_owner() { app_tootctl accounts create "$1" --email "$2" --confirmed --approve --role Owner; }

app_account_reset_password() { app_tootctl accounts modify "$1" --reset-password; }

# app_set_registrations open|approved|closed: Mastodon's own words are open, approved and close.
app_set_registrations() {
  local mode="$1"
  [[ "${mode}" == "closed" ]] && mode=close
  app_tootctl settings registrations "${mode}" >/dev/null
}
