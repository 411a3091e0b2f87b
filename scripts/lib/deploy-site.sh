# shellcheck shell=bash
# deploy-app.sh's nginx site (written from app-site.sh's renderer), its TLS certificate (tls.sh) and
# GET /health through it: the site and certificate steps, and the check start_app waits on.

# The site serves HTTPS once the certificate exists, so a re-run after the certificate step keeps TLS.
write_site() {
  local cert=""
  tls_enabled && tls_have_certificate "${COOP_DOMAIN}" && cert=$(tls_live_dir "${COOP_DOMAIN}")
  install -d -m 0755 "${COOP_MAINTENANCE_DIR}"
  put_file /etc/nginx/snippets/coop-maintenance.conf 0644 root root <"${SCRIPT_DIR}/nginx/maintenance.conf"
  render_nginx_site "${COOP_DOMAIN}" "${COOP_APP_WEB_PORT}" "${COOP_APP_STREAMING_PORT}" "${COOP_APP_ROOT}" "${COOP_MAINTENANCE_DIR}" "${cert}" |
    put_file /etc/nginx/sites-available/coop-mastodon 0644 root root
  ln -sfn ../sites-available/coop-mastodon /etc/nginx/sites-enabled/coop-mastodon
  rm -f /etc/nginx/sites-enabled/default
  nginx -t -q 2>&1 || die "nginx refuses the site: $(nginx -t 2>&1 | tail -n 3)"
  systemctl enable --quiet nginx
  if systemctl is-active --quiet nginx; then systemctl reload nginx; else systemctl start nginx; fi
}

certificate() {
  if ! tls_enabled; then
    log_warn "no ACME server configured: ${COOP_DOMAIN} is served over plain HTTP"
    return 0
  fi
  tls_certificate "${COOP_DOMAIN}"
  write_site
}

# GET /health through nginx under the instance's name, over HTTPS (verified) once there is a certificate.
site_health() {
  if tls_enabled && tls_have_certificate "${COOP_DOMAIN}"; then
    curl -fsS --max-time 5 --resolve "${COOP_DOMAIN}:443:127.0.0.1" "https://${COOP_DOMAIN}/health"
  else
    curl -fsS --max-time 5 -H "Host: ${COOP_DOMAIN}" http://127.0.0.1/health
  fi
}
