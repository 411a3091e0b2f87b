# shellcheck shell=bash
# Whether this host can run a release: the adapter's app_requirements TAG names the oldest PostgreSQL
# major and Redis version the release supports (Mastodon's upgrade notes); the host's are read from the
# running servers. Sourced after common.sh and pg.sh; deploy-app.sh and upgrade-app.sh call it before
# anything changes, so a release the host cannot run is refused before maintenance.
#
# Environment: scripts/lib/pg.sh's, and COOP_REDIS_PORT [6379] (`none`: no Redis to check, as in the test
# rigs, which run PostgreSQL only).

# The running PostgreSQL's major (15 from 150004).
host_pg_major() {
  local num
  num=$(psql_at "${COOP_PG_SOCKET}" "${COOP_PG_PORT}" postgres "show server_version_num") || return 1
  printf '%d\n' $((num / 10000))
}

# The running Redis's version (7.0.15).
host_redis_version() {
  redis-cli -h 127.0.0.1 -p "${COOP_REDIS_PORT:-6379}" INFO server 2>/dev/null | tr -d '\r' | sed -n 's/^redis_version://p'
}

# requirements_check TAG: dies naming the release, what it needs, what the host has and what to do.
requirements_check() {
  local tag=$1 need pg_need redis_need pg_have redis_have
  need=$(app_requirements "${tag}") || die "cannot tell what ${tag} needs (the adapter's app_requirements failed)"
  pg_need=$(sed -n 's/.*postgres=\([0-9]*\).*/\1/p' <<<"${need}")
  redis_need=$(sed -n 's/.*redis=\([0-9.]*\).*/\1/p' <<<"${need}")
  [[ -n "${pg_need}" && -n "${redis_need}" ]] || die "app_requirements ${tag} printed '${need}' (expected postgres=<major> redis=<version>)"
  pg_have=$(host_pg_major) || die "PostgreSQL does not answer on ${COOP_PG_SOCKET}:${COOP_PG_PORT}: cannot check what ${tag} needs"
  if [[ "${COOP_REDIS_PORT:-6379}" == none ]]; then
    redis_have="${redis_need}"
    log_warn "COOP_REDIS_PORT=none: ${tag}'s Redis requirement (${redis_need}) is not checked"
  else
    redis_have=$(host_redis_version)
    [[ -n "${redis_have}" ]] || die "Redis does not answer on 127.0.0.1:${COOP_REDIS_PORT:-6379}: cannot check what ${tag} needs"
  fi
  if ((pg_have < pg_need)); then
    die "${tag} needs PostgreSQL ${pg_need} or newer; this host runs ${pg_have}. Upgrade PostgreSQL first (set versions.postgres to ${pg_need} or newer and run pulumi up; docs/runbooks/upgrade-postgres.md), then this release"
  fi
  if version_lt "${redis_have}" "${redis_need}"; then
    die "${tag} needs Redis ${redis_need} or newer; this host runs ${redis_have}. Upgrade Redis on the host first, then this release"
  fi
  log_info "${tag} runs here: it needs PostgreSQL ${pg_need}+ and Redis ${redis_need}+, the host has ${pg_have} and ${redis_have}"
}
