# shellcheck shell=bash
# Renderers of install-database.sh (sourced after common.sh): PostgreSQL's settings sized to the host,
# its pg_hba, and Redis's settings. They print to stdout; install-database.sh writes them with put_file.

# mem_mb: the host's memory in MiB (a container sees the machine's).
mem_mb() { awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo; }

# min A B
min() { if (($1 < $2)); then printf '%d' "$1"; else printf '%d' "$2"; fi; }

# render_pg_settings MEM_MB CORES: a conf.d drop-in. archive_mode is on from creation, so turning WAL
# archiving on later (install-backup.sh sets archive_command) needs a reload, never a restart; with an
# empty archive_command PostgreSQL keeps the WAL until one is set.
# archive_timeout bounds the RPO: a commit reaches the repository within COOP_ARCHIVE_TIMEOUT seconds
# (60) plus one push, however quiet the instance (a segment is switched only when it holds writes, so an
# idle cluster archives nothing); each switch costs at most one 16 MiB segment, compressed in the repository.
render_pg_settings() {
  local mem=$1 cores=$2
  cat <<CONF
# Managed by the social.coop Pulumi program (scripts/install-database.sh); sized for ${mem} MiB, ${cores} cores.
listen_addresses = ''
max_connections = 200
shared_buffers = $(min $((mem / 4)) 8192)MB
effective_cache_size = $((mem * 3 / 4))MB
maintenance_work_mem = $(min $((mem / 16)) 1024)MB
work_mem = 16MB
max_worker_processes = $((cores > 8 ? cores : 8))
max_parallel_workers = ${cores}
max_parallel_workers_per_gather = $(((cores + 1) / 2))
max_parallel_maintenance_workers = $(((cores + 1) / 2))
random_page_cost = 1.1
wal_level = replica
wal_compression = on
max_wal_size = 2GB
min_wal_size = 256MB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
max_wal_senders = 10
archive_mode = on
archive_timeout = ${COOP_ARCHIVE_TIMEOUT:-60}s
CONF
}

# render_pg_hba APP_USER DB_NAME: sockets only. postgres (backups, maintenance) and the app's own user,
# each by peer authentication, the app only to its own database; nothing over TCP.
render_pg_hba() {
  cat <<HBA
# Managed by the social.coop Pulumi program (scripts/install-database.sh): unix sockets only.
# TYPE  DATABASE     USER       METHOD
local   all          postgres   peer
local   replication  postgres   peer
local   $2           $1         peer
HBA
}

# render_redis_settings DIR: loopback only, the RDB snapshot and the append-only file on the volume.
render_redis_settings() {
  cat <<CONF
# Managed by the social.coop Pulumi program (scripts/install-database.sh).
include /etc/redis/redis.conf
bind 127.0.0.1 -::1
protected-mode yes
port 6379
dir $1
appendonly yes
appendfsync everysec
save 900 1
save 300 10
save 60 10000
CONF
}
