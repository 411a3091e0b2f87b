#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The daily check a host makes of itself (coop-check.timer), so that a problem nobody looked at reaches
# the operators: this host's facts (status.sh) judged against the thresholds `coopctl status` uses, each
# problem sent through alert.sh (at most once a day each). What a unit failure already tells (OnFailure=)
# is told again here only while it lasts: a drill that failed yesterday and was not fixed, say.
#
#   check.sh                  collect, judge, alert; exit 0 when nothing needs a person, 3 when problems
#                             were found and told, 1 when the check or a destination failed
#   check.sh --judge FILE     the problems of the facts in FILE (status.sh's JSON), one JSON object a line
#                             ({kind, key, what}); sends nothing (the tests compare it with coopctl status)
#   check.sh --help
#
# The judging is per host: the backup is judged where its manifest is (the database host), the drill where
# it runs (the repository host), a missed security release where the app runs: a final release of the
# app's upstream (COOP_CHECK_UPSTREAM_REPO, e.g. mastodon/mastodon; status.sh fetches its newest 100 from
# COOP_CHECK_RELEASES_API [https://api.github.com]) newer than the deployed one, whose notes mention
# security, published more than COOP_CHECK_SECURITY_GRACE_HOURS ago (problem security-release); a list
# that could not be fetched or read is a problem of its own (upstream-unreachable), never "nothing newer".
# What only all hosts together can tell (no drill anywhere) is coopctl status's. Thresholds and the
# upstream (install-alerts.sh writes them into alert.env from stack config; the environment wins):
#   COOP_CHECK_BACKUP_MAX_AGE_HOURS [26]  COOP_CHECK_DRILL_MAX_AGE_HOURS [26]  COOP_CHECK_WAL_MAX_LAG_SECONDS [300]
#   COOP_CHECK_DISK_MAX_PERCENT [85]      COOP_CHECK_CERT_MIN_DAYS [14]       COOP_CHECK_SECURITY_GRACE_HOURS [72]
#   COOP_CHECK_UPSTREAM_REPO [none: no comparison]  COOP_CHECK_RELEASES_API [https://api.github.com]
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/alerts.sh
source "${SCRIPT_DIR}/lib/alerts.sh"

readonly USAGE="usage: check.sh [--judge FACTS_FILE] [--help]"

# The same rules as evaluateStatus in src/reports/status.ts, for one host (test/integration/check.test.ts
# holds the two to the same answers on the same facts).
# shellcheck disable=SC2016 # jq's own $variables
readonly JUDGE='
def hours: (. / 3600 * 10 | round) / 10;
# Release tags as src/reports/versions.ts reads them: v4.3.8, v4.4.0-beta.1 (pre), v4.5.11+hometown-1.2.1.
def vparse: [capture("^v?(?<a>[0-9]+)\\.(?<b>[0-9]+)(?:\\.(?<c>[0-9]+))?(?:-?(?<pre>(?:alpha|beta|rc|pre)[0-9A-Za-z.-]*))?$"; "i")] | first |
  if . == null then null else {n: [(.a | tonumber), (.b | tonumber), (.c // "0" | tonumber)], pre} end;
def hparse: [capture("^v?(?<base>[^+]+)\\+hometown-(?<fork>.+)$")] | first |
  if . == null then null else {base: (.base | vparse), fork: (.fork | vparse)} | if .base == null or .fork == null then null else . end end;
# A final version (what it is compared with may be a pre-release, which sorts before its final).
def vcmp($b): if .n != $b.n then (if .n > $b.n then 1 else -1 end) elif .pre == $b.pre then 0 elif .pre == null then 1 else -1 end;
# Hometown: by its own part, then its Mastodon base.
def hcmp($b): (.fork | vcmp($b.fork)) as $f | if $f != 0 then $f else .base | vcmp($b.base) end;
def cannot($repo; $dep; $why):
  {kind: "upstream-unreachable", key: "upstream-unreachable", what: "cannot check \($repo) for a security release missed by the deployed \($dep): \($why)"};
(if .drill == null then empty else
  (if .drill.ok then empty else {kind: "drill-failed", key: "drill-failed", what: "restore drill failed: \(.drill.reason // "no reason recorded")"} end),
  (if .drill.ageSeconds == null or .drill.ageSeconds > $drill * 3600
   then {kind: "drill-old", key: "drill-old", what: "last restore drill is \(if .drill.ageSeconds == null then "of unknown age" else "\(.drill.ageSeconds | hours) h old" end) (at most \($drill) h, backup.drillMaxAgeHours): upgrades refuse it"}
   else empty end)
 end),
(if .backup == null or .backup.ageSeconds <= $backup * 3600 then empty else
  {kind: "backup-old", key: "backup-old", what: "last backup is \(.backup.ageSeconds | hours) h old (at most \($backup) h)"} end),
(if .walArchive == null then empty else .walArchive as $w |
  (if $w.archiveMode == "off" then {kind: "wal-off", key: "wal-off", what: "WAL archiving is off: no point-in-time recovery since the last backup"}
   elif $w.failedSinceLastSuccess then {kind: "wal-failing", key: "wal-failing", what: "WAL archiving fails: \($w.failedCount) failures, the last at \($w.lastFailedAt // "?") after the last success at \($w.lastArchivedAt // "never")"}
   else empty end),
  (if $w.lagSeconds > $lag then {kind: "wal-lag", key: "wal-lag", what: "WAL archive lag \($w.lagSeconds) s, \($w.pendingSegments) segments waiting (at most \($lag) s)"} else empty end)
 end),
(.disks | group_by(.mount)[] | (map(.usePercent) | max) as $use | select($use > $disk) |
  {kind: "disk", key: "disk-\(.[0].mount)", what: "disk \(.[0].mount) (\(map("\(.what) \(.path)") | join(", "))) is \($use)% full (at most \($disk)%)"}),
(if .upstream == null or .appVersion == null then empty else
  .upstream as $u | .appVersion as $dep | ($dep | hparse) as $h | (if $h == null then $dep | vparse else null end) as $v |
  if $u.error != null or $u.releases == null then cannot($u.repo; $dep; $u.error // "no releases list")
  elif $h == null and $v == null then cannot($u.repo; $dep; "the deployed \($dep) is not a release tag like v4.3.8 or v4.5.11+hometown-1.2.1")
  else
    [$u.releases[] | select((.draft or .prerelease) | not) | . as $r |
      (if $h != null then .tag | hparse | select(. != null and .base.pre == null and .fork.pre == null)
       else .tag | vparse | select(. != null and .pre == null) end) | {r: $r, p: .}] as $finals |
    if ($finals | length) == 0 then
      cannot($u.repo; $dep; "none of the \($u.releases | length) releases listed is a final release with a version tag, so there is nothing to compare \($dep) with (missing data, not \"nothing newer\")")
    else
      [$finals[] | select(if $h != null then (.p | hcmp($h)) > 0 else (.p | vcmp($v)) > 0 end)] |
      sort_by(if $h != null then [.p.fork.n, .p.base.n] else .p.n end) |
      map(.r | select(.security and .ageSeconds != null and .ageSeconds > $grace * 3600)) |
      if length == 0 then empty else (length == 1) as $one |
        {kind: "security-release", key: "security-release-\(.[-1].tag)",
         what: "missed security release\(if $one then "" else "s" end) of \($u.repo): \(map("\(.tag) (published \(.publishedAt[0:10]))") | join(", ")) \(if $one then "is" else "are" end) newer than the deployed \($dep) and out for more than \($grace) h (alerts.securityGraceHours)"}
      end
    end
  end
 end),
(.certificates[] |
  if .daysLeft == null then {kind: "certificate", key: "certificate-\(.path)", what: "certificate \(.path) cannot be read"}
  elif .daysLeft < $cert then {kind: "certificate", key: "certificate-\(.path)",
    what: "certificate \(.subject // .path) \(if .daysLeft < 0 then "expired \(-.daysLeft) days ago" else "expires in \(.daysLeft) days" end) (\(.notAfter); at least \($cert) days)"}
  else empty end)
'

# judge FACTS_FILE: the problems, one JSON object a line.
judge() {
  jq -c --argjson backup "${COOP_CHECK_BACKUP_MAX_AGE_HOURS}" --argjson drill "${COOP_CHECK_DRILL_MAX_AGE_HOURS}" \
    --argjson lag "${COOP_CHECK_WAL_MAX_LAG_SECONDS}" --argjson disk "${COOP_CHECK_DISK_MAX_PERCENT}" \
    --argjson cert "${COOP_CHECK_CERT_MIN_DAYS}" --argjson grace "${COOP_CHECK_SECURITY_GRACE_HOURS}" "${JUDGE}" "$1" ||
    die "cannot judge $1: not status.sh's facts"
}

check() {
  local facts problems line key what found=0 failed=0
  facts=$(mktemp)
  problems=$(mktemp)
  # shellcheck disable=SC2064 # the paths are fixed now
  trap "rm -f '${facts}' '${problems}'" EXIT
  bash "${SCRIPT_DIR}/status.sh" >"${facts}" || die "status.sh failed: this host's facts could not be collected"
  judge "${facts}" >"${problems}"
  while IFS= read -r line; do
    found=$((found + 1))
    key=$(jq -r .key <<<"${line}")
    what=$(jq -r .what <<<"${line}")
    log_warn "${what}"
    printf 'The daily check (check.sh) found: %s\n\nThis host'"'"'s facts:\n%s\n' "${what}" "$(jq . "${facts}")" |
      bash "${SCRIPT_DIR}/alert.sh" send "${key}" "${what}" || failed=1
  done <"${problems}"
  if ((found == 0)); then
    log_info "nothing needs a person on $(alert_host)"
    return 0
  fi
  if ((failed != 0)); then
    log_error "${found} problem(s) on $(alert_host); a destination could not be told (the next check tries again)"
    return 1
  fi
  log_warn "${found} problem(s) on $(alert_host): told through alert.sh"
  return 3
}

main() {
  case "${1:-}" in
    --help | -h) printf '%s\n' "${USAGE}" ;;
    --judge)
      (($# == 2)) || die "${USAGE}"
      alerts_env
      check_thresholds_env
      judge "$2"
      ;;
    "")
      alerts_env
      check_thresholds_env
      check
      ;;
    *) die "${USAGE}" ;;
  esac
}

main "$@"
