#!/usr/bin/env bash
# certbot's DNS-01 hook on local stacks (scripts/lib/tls.sh installs it as /usr/local/lib/coop/acme-dns-hook.sh):
# writes or clears the challenge's TXT record through pebble-challtestsrv's management API, the DNS server
# the test's ACME server asks. Real stacks use certbot's Cloudflare plugin instead.
#   acme-dns-hook.sh set|clear     (certbot sets CERTBOT_DOMAIN and CERTBOT_VALIDATION)
set -euo pipefail

api=$(cat /etc/coop/acme-dns-api)
record="_acme-challenge.${CERTBOT_DOMAIN:?certbot sets CERTBOT_DOMAIN}."
case "${1:-}" in
  set) body=$(printf '{"host":"%s","value":"%s"}' "${record}" "${CERTBOT_VALIDATION:?certbot sets CERTBOT_VALIDATION}"); path=set-txt ;;
  clear) body=$(printf '{"host":"%s"}' "${record}"); path=clear-txt ;;
  --help | -h) sed -n '2,5s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) echo "acme-dns-hook: expected set or clear (found '${1:-}')" >&2; exit 2 ;;
esac
curl -fsS --max-time 10 -X POST -d "${body}" "${api}/${path}"
