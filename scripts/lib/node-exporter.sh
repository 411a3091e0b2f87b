# shellcheck shell=bash
# prometheus-node-exporter (Debian's package) for co-ops that run Prometheus: the host's own metrics and,
# through its textfile collector, those backup.sh and drill.sh write (coop_backup.prom, coop_drill.prom).
# It listens on COOP_METRICS_LISTEN alone, a loopback address (Prometheus reaches it through SSH), never
# on every interface as the package would: one setting serves both hosts, which share no private
# address. Sourced by install-backup.sh after common.sh.
#
# Environment: COOP_METRICS_LISTEN [127.0.0.1:9100]  COOP_TEXTFILE_DIR [/var/lib/prometheus/node-exporter]
#   COOP_SYSTEMD_DIR [/etc/systemd/system]

readonly NODE_EXPORTER_UNIT=prometheus-node-exporter

node_exporter_env() {
  COOP_METRICS_LISTEN="${COOP_METRICS_LISTEN:-127.0.0.1:9100}"
  COOP_TEXTFILE_DIR="${COOP_TEXTFILE_DIR:-/var/lib/prometheus/node-exporter}"
  local ip="${COOP_METRICS_LISTEN%:*}" port="${COOP_METRICS_LISTEN##*:}"
  if [[ "${COOP_METRICS_LISTEN}" != *:* || ! "${port}" =~ ^[0-9]{1,5}$ ]] || ((port == 0 || port > 65535)); then
    die "COOP_METRICS_LISTEN must be ADDRESS:PORT (found '${COOP_METRICS_LISTEN}')"
  fi
  [[ "${ip}" =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] ||
    die "COOP_METRICS_LISTEN must be a loopback address (found '${ip}'): node_exporter's metrics are not for the public"
}

node_exporter_dropin() { printf '%s/%s.service.d/50-coop.conf' "${COOP_SYSTEMD_DIR}" "${NODE_EXPORTER_UNIT}"; }

# The package's unit reads ARGS from /etc/default, empty by default: all interfaces. A drop-in replaces
# its command instead of that file, which the package owns (a conffile dpkg would ask about).
render_node_exporter_dropin() {
  printf '%s\n' "# Managed by install-backup.sh; edits are overwritten." "[Service]" "ExecStart=" \
    "ExecStart=/usr/bin/prometheus-node-exporter --web.listen-address=${COOP_METRICS_LISTEN} --collector.textfile.directory=${COOP_TEXTFILE_DIR}"
}

# Before the package: its postinst starts the service, which then already listens where it should.
node_exporter_install() {
  render_node_exporter_dropin | put_file "$(node_exporter_dropin)" 0644 root root
  if [[ "${COOP_SKIP_SYSTEMCTL:-}" == 1 ]]; then
    log_warn "COOP_SKIP_SYSTEMCTL=1: not starting ${NODE_EXPORTER_UNIT}"
    return 0
  fi
  install -d -m 0755 "${COOP_TEXTFILE_DIR}"
  systemctl daemon-reload
  install_missing prometheus-node-exporter
  # Unconditional: a run killed after the drop-in was written must still apply it.
  systemctl enable "${NODE_EXPORTER_UNIT}"
  systemctl restart "${NODE_EXPORTER_UNIT}"
  # A simple service: restart returns before it binds, and one that cannot bind exits after it.
  local waited=0
  until curl -fsS --max-time 2 -o /dev/null "http://${COOP_METRICS_LISTEN}/metrics"; do
    ((waited < 15)) || die "${NODE_EXPORTER_UNIT} does not serve http://${COOP_METRICS_LISTEN}/metrics: $(journalctl -u "${NODE_EXPORTER_UNIT}" -n 3 --no-pager -o cat 2>/dev/null | paste -sd ' ')"
    sleep 1
    waited=$((waited + 1))
  done
  log_info "${NODE_EXPORTER_UNIT} serves http://${COOP_METRICS_LISTEN}/metrics (textfile collector: ${COOP_TEXTFILE_DIR})"
}

# Removing the backups stops what showed them.
node_exporter_uninstall() {
  local dropin
  dropin=$(node_exporter_dropin)
  [[ -f "${dropin}" ]] || return 0
  if [[ "${COOP_SKIP_SYSTEMCTL:-}" != 1 ]] && systemctl cat "${NODE_EXPORTER_UNIT}" >/dev/null 2>&1; then
    systemctl disable --now "${NODE_EXPORTER_UNIT}"
  fi
  rm -f "${dropin}"
  rmdir "$(dirname "${dropin}")" 2>/dev/null || true
}
