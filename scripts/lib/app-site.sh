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

# render_instance_env DOMAIN: the .env.production of a new instance. Its secrets are born here, on the
# host (DESIGN 17): never in Pulumi's state, carried only by the encrypted backup.
render_instance_env() {
  local domain=$1
  cat <<ENV
# Made once by scripts/deploy-app.sh on $(date -u +%Y-%m-%d); the backup carries it (it holds the
# instance's own keys). Settings that come from stack config are in .env.coop, rewritten on every deploy.
LOCAL_DOMAIN=${domain}
SECRET_KEY_BASE=$(openssl rand -hex 64)
OTP_SECRET=$(openssl rand -hex 64)
ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY=$(openssl rand -base64 24 | tr -d '=+/')
ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT=$(openssl rand -base64 24 | tr -d '=+/')
ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=$(openssl rand -base64 24 | tr -d '=+/')
ENV
}
