# shellcheck shell=bash
# The app host's nginx site and the instance's own secrets (sourced after common.sh by deploy-app.sh).
# Renderers print to stdout; deploy-app.sh writes them with put_file.

# render_nginx_site DOMAIN WEB_PORT STREAMING_PORT APP_ROOT MAINTENANCE_DIR [CERT_DIR]: Mastodon's site
# (web, streaming, static files) behind the maintenance switch. With CERT_DIR (certbot's live folder) it
# is served over HTTPS and port 80 only redirects; without, plain HTTP (before the first certificate, or a
# stack without an ACME server). The maintenance include comes before every location, as its header asks.
render_nginx_site() {
  local domain=$1 web=$2 streaming=$3 root=$4 maintenance=$5 cert=${6:-}
  cat <<SITE
# Managed by the social.coop Pulumi program (scripts/deploy-app.sh).
map \$http_upgrade \$connection_upgrade {
  default upgrade;
  ''      close;
}

upstream coop_web { server 127.0.0.1:${web} fail_timeout=0; }
upstream coop_streaming { server 127.0.0.1:${streaming} fail_timeout=0; }
SITE
  if [[ -n "${cert}" ]]; then
    cat <<SITE

server {
  listen 80;
  listen [::]:80;
  server_name ${domain};
  location / { return 301 https://\$host\$request_uri; }
}

server {
  listen 443 ssl http2;
  listen [::]:443 ssl http2;
  server_name ${domain};
  ssl_certificate ${cert}/fullchain.pem;
  ssl_certificate_key ${cert}/privkey.pem;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_prefer_server_ciphers off;
  ssl_session_cache shared:coop_tls:10m;
  ssl_session_tickets off;
  add_header Strict-Transport-Security "max-age=31536000" always;
SITE
  else
    cat <<SITE

server {
  listen 80;
  listen [::]:80;
  server_name ${domain};
SITE
  fi
  cat <<SITE
  root ${root}/live/public;
  client_max_body_size 99m;

  set \$coop_maintenance_dir ${maintenance};
  include /etc/nginx/snippets/coop-maintenance.conf;

  location ^~ /system/ {
    add_header Cache-Control "public, max-age=2419200, immutable";
    try_files \$uri =404;
  }

  location ^~ /api/v1/streaming {
    proxy_set_header Host \$host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto \$scheme;
    proxy_http_version 1.1;
    proxy_set_header Upgrade \$http_upgrade;
    proxy_set_header Connection \$connection_upgrade;
    proxy_buffering off;
    proxy_pass http://coop_streaming;
  }

  location / {
    try_files \$uri @proxy;
  }

  location @proxy {
    proxy_set_header Host \$host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto \$scheme;
    proxy_http_version 1.1;
    proxy_pass http://coop_web;
  }
}
SITE
}

# The instance's own secrets (DESIGN 17), born here on the host: never in Pulumi's state, carried only by
# the encrypted backup. A restored .env.production keeps its own; one from an older deploy gains those it
# lacks (VAPID keys came later), so existing sessions, 2FA and push subscriptions stay valid.
readonly INSTANCE_SECRETS=(SECRET_KEY_BASE OTP_SECRET ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY
  ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY VAPID_PRIVATE_KEY VAPID_PUBLIC_KEY)

# b64url: base64 with the URL-safe alphabet and padding, as Ruby's Base64.urlsafe_encode64 writes it.
b64url() { base64 -w0 | tr '+/' '-_'; }

# render_vapid_keys: a web push key pair as Mastodon's `mastodon:webpush:generate_vapid_key` prints it:
# the P-256 private scalar (32 bytes) and the uncompressed public point (65 bytes), URL-safe base64.
# They are cut from the key's SEC1 DER, whose layout for P-256 is fixed (scalar at 7, point at the end).
render_vapid_keys() {
  local der
  der=$(mktemp)
  openssl ecparam -name prime256v1 -genkey -noout -outform DER >"${der}"
  if [[ "$(stat -c %s "${der}")" != 121 ]]; then
    rm -f "${der}"
    die "openssl made a P-256 key of an unexpected shape; VAPID keys not written"
  fi
  printf 'VAPID_PRIVATE_KEY=%s\n' "$(dd if="${der}" bs=1 skip=7 count=32 status=none | b64url)"
  printf 'VAPID_PUBLIC_KEY=%s\n' "$(tail -c 65 "${der}" | b64url)"
  rm -f "${der}"
}

# render_instance_secret NAME: a new value for one secret (the VAPID pair comes from render_vapid_keys).
render_instance_secret() {
  case "$1" in
    SECRET_KEY_BASE | OTP_SECRET) printf '%s=%s\n' "$1" "$(openssl rand -hex 64)" ;;
    ACTIVE_RECORD_ENCRYPTION_*) printf '%s=%s\n' "$1" "$(openssl rand -base64 24 | tr -d '=+/')" ;;
    *) die "no generator for instance secret $1" ;;
  esac
}

# missing_instance_secrets ENV_FILE: the names ENV_FILE lacks, one a line (all of them if it is absent).
missing_instance_secrets() {
  local name
  for name in "${INSTANCE_SECRETS[@]}"; do
    grep -Eq "^${name}=.+" "$1" 2>/dev/null || printf '%s\n' "${name}"
  done
}

# What comes from the stack and the layout rather than from the instance: the last block of
# .env.production, rewritten on every deploy. Mastodon's dotenv and its streaming server's (node) both
# keep a key's last value in a file, so these win over an earlier line (an imported file's own DB_HOST).
# The database is reached over its socket by peer authentication: install-database.sh opens no TCP port,
# and Mastodon's own default (localhost) would find nothing there.
readonly MANAGED_BEGIN="# BEGIN settings from the stack config (scripts/deploy-app.sh rewrites this block on every deploy)"
readonly MANAGED_END="# END settings from the stack config"

# mail_env_check: the instance's mail from the stack config (COOP_MAIL_*), checked before anything
# changes. Unset COOP_MAIL_SMTP_URL: no SMTP_* in the managed block (lines above it, by hand, stand).
mail_env_check() {
  # Out of the environment, so nothing deploy-app.sh starts (git, bundle, yarn's scripts, rails) inherits it.
  MAIL_SMTP_PASSWORD="${COOP_MAIL_SMTP_PASSWORD:-}"
  unset COOP_MAIL_SMTP_PASSWORD
  [[ -n "${COOP_MAIL_SMTP_URL:-}" ]] || return 0
  [[ "${COOP_MAIL_SMTP_URL}" =~ ^smtps?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$ ]] ||
    die "COOP_MAIL_SMTP_URL '${COOP_MAIL_SMTP_URL}' must be smtps://host[:port] or smtp://host[:port] (the stack config's mail.smtpUrl)"
  require_env COOP_MAIL_FROM
  [[ "${COOP_MAIL_FROM}" =~ ^[^[:space:]\'\"@]+@[A-Za-z0-9.-]+$ ]] || die "COOP_MAIL_FROM '${COOP_MAIL_FROM}' is not an e-mail address"
  [[ "${COOP_MAIL_SMTP_START_TLS:-true}" =~ ^(true|false)$ ]] || die "COOP_MAIL_SMTP_START_TLS must be true or false"
  if [[ -n "${COOP_MAIL_SMTP_LOGIN:-}" ]]; then
    [[ "${COOP_MAIL_SMTP_LOGIN}" =~ ^[^[:space:]\'\"\\]+$ ]] || die "COOP_MAIL_SMTP_LOGIN must have no spaces or quotes"
    # The password never appears in a message: only whether it is usable.
    [[ -n "${MAIL_SMTP_PASSWORD}" ]] || die "COOP_MAIL_SMTP_LOGIN is set but COOP_MAIL_SMTP_PASSWORD is empty (the stack's secret mailSmtpPassword)"
    [[ "${MAIL_SMTP_PASSWORD}" != *"'"* && "${MAIL_SMTP_PASSWORD}" != *$'\n'* && "${MAIL_SMTP_PASSWORD}" != *$'\r'* ]] ||
      die "COOP_MAIL_SMTP_PASSWORD holds a single quote or a line break, which .env.production cannot keep"
    [[ "${COOP_MAIL_SMTP_URL}" == smtps://* || "${COOP_MAIL_SMTP_START_TLS:-true}" == true ]] ||
      die "COOP_MAIL_SMTP_LOGIN over smtp:// without STARTTLS would send the password in clear"
  fi
}

# render_mail_settings: Mastodon's SMTP_* (config/email.yml) for the checked COOP_MAIL_*. smtps:// is TLS
# from the first byte (SMTP_TLS); smtp:// upgrades with STARTTLS, always unless told it is a plain relay.
render_mail_settings() {
  [[ -n "${COOP_MAIL_SMTP_URL:-}" ]] || return 0
  local url="${COOP_MAIL_SMTP_URL}" scheme host port
  scheme=${url%%://*}
  host=${url#*://}
  port=${host##*:}
  [[ "${host}" == *:* ]] || port=$([[ "${scheme}" == smtps ]] && echo 465 || echo 587)
  host=${host%%:*}
  # Quoted: unquoted, Ruby's dotenv would cut a value at `#` and expand `$name` in it.
  printf '%s\n' "SMTP_SERVER=${host}" "SMTP_PORT=${port}" "SMTP_FROM_ADDRESS='${COOP_MAIL_FROM}'" "SMTP_DELIVERY_METHOD=smtp"
  if [[ "${scheme}" == smtps ]]; then
    printf '%s\n' "SMTP_TLS=true" "SMTP_ENABLE_STARTTLS=never"
  elif [[ "${COOP_MAIL_SMTP_START_TLS:-true}" == true ]]; then
    printf '%s\n' "SMTP_ENABLE_STARTTLS=always"
  else
    printf '%s\n' "SMTP_ENABLE_STARTTLS=never"
  fi
  if [[ -n "${COOP_MAIL_SMTP_LOGIN:-}" ]]; then
    # Single quotes: Ruby's dotenv and node's take what is inside literally (mail_env_check refused a ').
    printf '%s\n' "SMTP_AUTH_METHOD=plain" "SMTP_LOGIN='${COOP_MAIL_SMTP_LOGIN}'" "SMTP_PASSWORD='${MAIL_SMTP_PASSWORD}'"
  else
    printf '%s\n' "SMTP_AUTH_METHOD=none"
  fi
}

# render_managed_settings DOMAIN
render_managed_settings() {
  printf '%s\n' "${MANAGED_BEGIN}" \
    "LOCAL_DOMAIN=$1" \
    "DB_HOST=${COOP_PG_SOCKET:-/var/run/postgresql}" \
    "DB_PORT=${COOP_PG_PORT:-5432}" \
    "DB_NAME=${COOP_DB_NAME:-mastodon_production}" \
    "DB_USER=${COOP_APP_USER:-mastodon}" \
    "DB_PASS=" \
    "REDIS_HOST=127.0.0.1" \
    "REDIS_PORT=6379"
  render_mail_settings
  printf '%s\n' "${MANAGED_END}"
}

# render_instance_env DOMAIN ENV_FILE: ENV_FILE as it is (or a new one's header) plus every secret it
# lacks, then the managed block. A half VAPID pair is useless: both keys are then made again together.
render_instance_env() {
  local domain=$1 file=$2 name
  local -a missing
  mapfile -t missing < <(missing_instance_secrets "${file}")
  local vapid=""
  [[ " ${missing[*]} " == *" VAPID_"* ]] && vapid=1
  if [[ ! -f "${file}" ]]; then
    cat <<ENV
# Made by scripts/deploy-app.sh on $(date -u +%Y-%m-%d); the backup carries it (it holds the instance's
# own keys). The last block holds the settings from the stack config.
ENV
  else
    # The file without its managed block (and without a half VAPID pair, made again below). DATABASE_URL
    # and REDIS_URL go too: Mastodon prefers them to DB_* and REDIS_*, and here they could only point at
    # another host's (an imported instance's old) database or Redis.
    # With the stack's mail, an older hand-written SMTP_* line goes too: the block sets only some keys, and a
    # leftover (SMTP_TLS=true beside STARTTLS, an old SMTP_LOGIN for a relay without one) would mix in.
    awk -v begin="${MANAGED_BEGIN}" -v end="${MANAGED_END}" -v vapid="${vapid}" -v mail="${COOP_MAIL_SMTP_URL:+1}" '
      $0 == begin { skip = 1; n = 0; next }
      $0 == end { skip = 0; n = 0; next }
      skip { held[++n] = $0; next }
      vapid != "" && /^VAPID_(PRIVATE|PUBLIC)_KEY=/ { next }
      mail != "" && /^SMTP_[A-Z_]*=/ { split($0, kv, "="); print "coop: " kv[1] " dropped from .env.production: the stack config sets the mail (mail)" > "/dev/stderr"; next }
      /^(DATABASE_URL|REDIS_URL)=/ { split($0, kv, "="); print "coop: " kv[1] " dropped from .env.production: the stack sets DB_* and REDIS_*" > "/dev/stderr"; next }
      { print }
      # A block whose END line was lost (a hand edit): what followed its BEGIN is kept, not dropped; the
      # new block after it wins where they share a key.
      END { for (i = 1; i <= n; i++) print held[i] }' "${file}"
  fi
  for name in "${missing[@]}"; do
    [[ "${name}" == VAPID_* ]] || render_instance_secret "${name}"
  done
  [[ -z "${vapid}" ]] || render_vapid_keys
  render_managed_settings "${domain}"
}
