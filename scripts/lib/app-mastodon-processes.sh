# shellcheck shell=bash
# The Mastodon adapter's processes: the systemd units web, streaming and sidekiq run as, their start and
# stop, and the health check. Sourced by app-mastodon.sh (interface and environment in its header).

readonly APP_ROLES="web streaming sidekiq"

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

app_unit_name() { printf '%s%s.service' "${COOP_APP_UNIT_PREFIX}" "$1"; }

# app_unit ROLE: the unit for ROLE, after Mastodon's dist/mastodon-*.service (the same processes,
# restart policy and sandboxing), on `current` and with rbenv's shims.
app_unit() {
  local role="$1" home exec env
  home=$(getent passwd "${COOP_APP_USER}" | cut -d: -f6)
  case "${role}" in
    web)
      env="RAILS_ENV=production PORT=${COOP_APP_WEB_PORT}"
      exec="${home}/.rbenv/shims/bundle exec puma -C config/puma.rb"
      ;;
    streaming)
      env="NODE_ENV=production PORT=${COOP_APP_STREAMING_PORT:-4000} STREAMING_CLUSTER_NUM=1"
      exec="/usr/bin/node ./streaming/index.js"
      ;;
    sidekiq)
      env="RAILS_ENV=production DB_POOL=25 MALLOC_ARENA_MAX=2 LD_PRELOAD=libjemalloc.so"
      exec="${home}/.rbenv/shims/bundle exec sidekiq -c 25"
      ;;
    *) die "unknown app process '${role}' (expected web, streaming or sidekiq)" ;;
  esac
  cat <<UNIT
# Managed by the social.coop Pulumi program (deploy-app.sh), after Mastodon's dist/mastodon-${role}.service.
[Unit]
Description=${COOP_APP_FLAVOR} ${role}
After=network.target postgresql.service redis-server.service

[Service]
Type=simple
User=${COOP_APP_USER}
WorkingDirectory=${COOP_APP_ROOT}/current
Environment=${env}
ExecStart=${exec}
TimeoutSec=15
Restart=always
NoNewPrivileges=true
ProtectSystem=strict
ReadWritePaths=${COOP_APP_ROOT} ${COOP_APP_SHARED_DIR}
PrivateTmp=true
PrivateDevices=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectControlGroups=true
RestrictSUIDSGID=true
LockPersonality=true

[Install]
WantedBy=multi-user.target
UNIT
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
