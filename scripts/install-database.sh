#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Installs the app host's PostgreSQL and Redis in the one layout every script uses (DESIGN decision 16):
# Debian's `<major> main` cluster with its data on the volume at /srv/postgresql/<major>/main, data
# checksums on, run by postgresql@<major>-main. The cluster is registered with its data directory as
# /srv/postgresql/main, a symlink to the live <major>/main: PostgreSQL reports that path, which is
# pgBackRest's pg1-path (it must match), and a major upgrade moves only the link. Settings are sized to the host; archive_mode is on from
# creation and archive_timeout bounds how long a commit waits to be archived; pg_hba admits postgres and the app's own user on the unix socket and nothing else. Redis
# listens on loopback only and persists (RDB + AOF) under /srv/redis.
#
# Idempotent and safe to kill at any moment: a cluster whose creation was interrupted (no PG_VERSION
# yet, so it never held data) is dropped and made again; every file is written through a temp file.
#
# Environment (defaults in brackets):
#   COOP_PG_VERSION [15]   COOP_APP_DB_USER [mastodon]   COOP_DB_NAME [mastodon_production]
#   COOP_DATA_MOUNT [/srv]  COOP_SKIP_APT (1: never call apt-get)
#   COOP_ARCHIVE_TIMEOUT [60]  seconds: the bound on how long a commit waits to reach the repository (RPO)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/database-install.sh
source "${SCRIPT_DIR}/lib/database-install.sh"

env_defaults() {
  COOP_PG_VERSION="${COOP_PG_VERSION:-15}"
  COOP_APP_DB_USER="${COOP_APP_DB_USER:-mastodon}"
  COOP_DB_NAME="${COOP_DB_NAME:-mastodon_production}"
  COOP_DATA_MOUNT="${COOP_DATA_MOUNT:-/srv}"
  [[ "${COOP_PG_VERSION}" =~ ^[0-9]+$ ]] || die "COOP_PG_VERSION must be a major version number, found '${COOP_PG_VERSION}'"
  [[ "${COOP_APP_DB_USER}" =~ ^[a-z_][a-z0-9_]*$ ]] || die "COOP_APP_DB_USER must be a plain identifier"
  [[ "${COOP_DB_NAME}" =~ ^[a-z_][a-z0-9_]*$ ]] || die "COOP_DB_NAME must be a plain identifier"
  PG_ROOT="${COOP_DATA_MOUNT}/postgresql"
  PG_DATA="${PG_ROOT}/${COOP_PG_VERSION}/main"
  PG_LINK="${PG_ROOT}/main"
  PG_ETC="/etc/postgresql/${COOP_PG_VERSION}/main"
  PG_UNIT="postgresql@${COOP_PG_VERSION}-main"
  REDIS_DIR="${COOP_DATA_MOUNT}/redis"
}

psql_postgres() {
  runuser -u postgres -- "/usr/lib/postgresql/${COOP_PG_VERSION}/bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d postgres "$@"
}

ensure_packages() {
  mountpoint -q "${COOP_DATA_MOUNT}" || die "${COOP_DATA_MOUNT} is not mounted: the data volume must be there before PostgreSQL is"
  # Debian's package would make its own cluster in /var/lib/postgresql: this host's lives on the volume.
  printf 'create_main_cluster = false\n' | put_file /etc/postgresql-common/createcluster.d/50-coop.conf 0644 root root
  install_missing --required "postgresql-${COOP_PG_VERSION}" postgresql-contrib redis-server
}

ensure_cluster() {
  if [[ -d "${PG_ETC}" && ! -f "${PG_DATA}/PG_VERSION" ]]; then
    log_warn "cluster ${COOP_PG_VERSION}/main was not finished (no ${PG_DATA}/PG_VERSION): dropping it to make it again"
    pg_dropcluster --stop "${COOP_PG_VERSION}" main || true
    rm -rf "${PG_ETC}" "${PG_DATA}"
  fi
  if [[ ! -d "${PG_ETC}" ]]; then
    [[ -z "$(ls -A "${PG_DATA}" 2>/dev/null)" ]] || die "${PG_DATA} holds files but no cluster is registered for it; move it away first"
    install -d -m 0700 -o postgres -g postgres "${PG_ROOT}" "${PG_ROOT}/${COOP_PG_VERSION}" "${PG_DATA}"
    link_data
    log_info "creating cluster ${COOP_PG_VERSION}/main in ${PG_DATA} as ${PG_LINK} (data checksums on)"
    pg_createcluster "${COOP_PG_VERSION}" main -d "${PG_LINK}" --start-conf=auto -- --data-checksums --auth-local=peer >/dev/null
  fi
  link_data
}

link_data() {
  ln -sfn "${PG_DATA}" "${PG_LINK}.tmp"
  mv -Tf "${PG_LINK}.tmp" "${PG_LINK}"
}

write_settings() {
  render_pg_settings "$(mem_mb)" "$(nproc)" | put_file "${PG_ETC}/conf.d/50-coop.conf" 0644 postgres postgres
  render_pg_hba "${COOP_APP_DB_USER}" "${COOP_DB_NAME}" | put_file "${PG_ETC}/pg_hba.conf" 0640 postgres postgres
}

start_postgres() {
  systemctl enable --quiet "${PG_UNIT}"
  if ! systemctl is-active --quiet "${PG_UNIT}"; then
    systemctl start "${PG_UNIT}"
  else
    systemctl reload "${PG_UNIT}"
    local pending
    pending=$(psql_postgres -c "select string_agg(name, ', ') from pg_settings where pending_restart")
    if [[ -n "${pending}" ]]; then
      log_warn "restarting PostgreSQL: ${pending} changed and take effect only on restart"
      systemctl restart "${PG_UNIT}"
    fi
  fi
  with_retry 10 1 psql_postgres -c 'select 1' >/dev/null
  [[ "$(psql_postgres -c 'show data_checksums')" == on ]] || log_warn "data checksums are off in this cluster (made before this script); pgBackRest cannot verify its pages"
}

ensure_app_database() {
  id -u "${COOP_APP_DB_USER}" >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash "${COOP_APP_DB_USER}"
  psql_postgres -v user="${COOP_APP_DB_USER}" <<'SQL'
select format('create role %I login createdb', :'user') where not exists (select from pg_roles where rolname = :'user') \gexec
SQL
  psql_postgres -v user="${COOP_APP_DB_USER}" -v db="${COOP_DB_NAME}" <<'SQL'
select format('create database %I owner %I', :'db', :'user') where not exists (select from pg_database where datname = :'db') \gexec
SQL
}

ensure_redis() {
  install -d -m 0750 -o redis -g redis "${REDIS_DIR}"
  render_redis_settings "${REDIS_DIR}" | put_file /etc/redis/coop.conf 0640 redis redis
  printf '[Service]\nExecStart=\nExecStart=/usr/bin/redis-server /etc/redis/coop.conf --supervised systemd --daemonize no\nReadWritePaths=%s\n' "${REDIS_DIR}" |
    put_file /etc/systemd/system/redis-server.service.d/50-coop.conf 0644 root root
  systemctl daemon-reload
  systemctl enable --quiet redis-server
  systemctl restart redis-server
  with_retry 10 1 redis-cli -h 127.0.0.1 ping >/dev/null
}

main() {
  env_defaults
  run_begin install-database "${COOP_PG_VERSION}"
  steps_total 6
  step packages ensure_packages
  step cluster ensure_cluster
  step settings write_settings
  step postgres start_postgres
  step app-database ensure_app_database
  step redis ensure_redis
  run_finish
  printf 'database: PostgreSQL %s at %s (checksums %s), %s owned by %s; Redis on 127.0.0.1:6379 persisting to %s\n' \
    "${COOP_PG_VERSION}" "${PG_DATA}" "$(psql_postgres -c 'show data_checksums')" "${COOP_DB_NAME}" "${COOP_APP_DB_USER}" "${REDIS_DIR}"
}

main "$@"
