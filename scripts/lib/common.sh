# shellcheck shell=bash
# Shared helpers for every host script: logging, a per-operation lock, resumable named steps, fault
# injection, environment checks. Sourced after `set -euo pipefail`; defines functions and nothing runs.
#
# A script is a list of steps:
#   run_begin backup "$COOP_PG_VERSION"; steps_total 3
#   step dump dump_db; step upload upload_dump; step prune prune_old
#   run_finish
# A re-run after a kill skips the steps recorded as done and re-runs the one that was interrupted, so
# every step function must be idempotent: check before acting, write to a temp file then `mv`.
# Call `step` from the script's own shell, not a subshell: the step counter lives in a variable.

COOP_SCRIPT="${COOP_SCRIPT:-$(basename "$0" .sh)}"
COOP_STATE_DIR="${COOP_STATE_DIR:-/var/lib/coop}"
COOP_OPERATION=""
COOP_STATE_FILE=""
COOP_LOCK_FD=""
COOP_CURRENT_STEP=""
COOP_STEP_INDEX=0
COOP_STEPS_TOTAL="?"
COOP_RUN_STARTED_US=0

_log() {
  local level=$1
  shift
  printf 'coop[%s] %-5s %s %s\n' "$COOP_SCRIPT" "$level" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}
log_info() { _log INFO "$@"; }
log_warn() { _log WARN "$@"; }
log_error() { _log ERROR "$@"; }
# The reason is kept in COOP_DIE_REASON for an EXIT trap that records why the run failed.
die() {
  COOP_DIE_REASON="${COOP_CURRENT_STEP:+$COOP_CURRENT_STEP: }$*"
  log_error "${COOP_CURRENT_STEP:+step }${COOP_DIE_REASON}"
  exit 1
}

require_env() {
  local var
  local -a missing=()
  for var in "$@"; do
    [[ -n "${!var:-}" ]] || missing+=("$var")
  done
  ((${#missing[@]} == 0)) || die "missing required environment: ${missing[*]}"
}

# error_lines TEXT: the lines of a tool's output that say what went wrong (else its last lines), for die.
error_lines() {
  local found
  found=$(grep -iE 'error|fatal|missing|not found|does not exist|mismatch|invalid' <<<"$1" | head -n 5 || true)
  printf '%s' "${found:-$(tail -n 5 <<<"$1")}"
}

require_cmd() {
  local cmd
  local -a missing=()
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  ((${#missing[@]} == 0)) || die "missing required commands: ${missing[*]}"
}

# with_retry ATTEMPTS DELAY_SECONDS cmd [args...]: the delay doubles after each failure. The command
# runs in a condition, where bash ignores `set -e`, so pass a command that reports its own failure.
with_retry() {
  local attempts=$1 delay=$2 n=1
  shift 2
  until "$@"; do
    ((n < attempts)) || { log_error "gave up after $n attempts: $*"; return 1; }
    log_warn "attempt $n/$attempts failed, retrying in ${delay}s: $*"
    sleep "$delay"
    n=$((n + 1)) delay=$((delay * 2))
  done
}

# The lock is an flock on an open fd, so the kernel drops it when the last holder exits (SIGKILL
# included). Children inherit the fd: start long-lived daemons with run_unlocked, or they keep the lock.
lock_acquire() {
  local lock_file="$COOP_STATE_DIR/$1.lock"
  local holder
  mkdir -p "$COOP_STATE_DIR"
  _close_inherited_locks
  exec {COOP_LOCK_FD}>>"$lock_file"
  if ! flock -n "$COOP_LOCK_FD"; then
    holder=$(cat "$lock_file" 2>/dev/null || true)
    die "another '$1' run holds $lock_file (pid ${holder:-unknown}); refusing to overlap"
  fi
  printf '%s\n' "$$" >"$lock_file"
}

# A script run by another (upgrade-postgres.sh runs backup.sh and drill.sh) inherits the parent's lock
# fd, and run_unlocked closes only this script's own: a scratch cluster the child starts would keep the
# parent's lock after a kill. Closing the inherited copies here leaves the parent's lock intact.
_close_inherited_locks() {
  local link fd target dir
  dir=$(realpath -m "$COOP_STATE_DIR")
  for link in /proc/"$BASHPID"/fd/*; do
    fd=${link##*/}
    target=$(readlink "$link" 2>/dev/null) || continue
    [[ "$target" == "$dir"/*.lock ]] || continue
    exec {fd}>&-
  done
}

# run_unlocked cmd [args...], also as `run_unlocked cmd &`: in a subshell (`&` runs the function in
# one) this closes the subshell's copy of the fd, which leaves the script's own copy, and its lock, intact.
run_unlocked() {
  if [[ -z "$COOP_LOCK_FD" ]]; then
    "$@"
  elif [[ "$BASHPID" != "$$" ]]; then
    exec {COOP_LOCK_FD}>&-
    "$@"
  else
    "$@" {COOP_LOCK_FD}>&-
  fi
}

_state_write() {
  local tmp
  tmp=$(mktemp "$COOP_STATE_FILE.XXXXXX")
  printf '%s\n' "$@" >"$tmp"
  mv -f "$tmp" "$COOP_STATE_FILE"
}

_step_done() { [[ -f "$COOP_STATE_FILE" ]] && grep -Fqx "done=$1" "$COOP_STATE_FILE"; }

# run_begin OPERATION [RUN_KEY]: lock, then resume the recorded run unless its key differs.
run_begin() {
  local key="${2:-}"
  local stored
  COOP_OPERATION=$1
  COOP_STATE_FILE="$COOP_STATE_DIR/$1.state"
  COOP_RUN_STARTED_US=${EPOCHREALTIME//[^0-9]/}
  lock_acquire "$1"
  # A kill between _state_write's write and its rename leaves the temp file; under the lock none is live.
  rm -f "$COOP_STATE_FILE".??????
  log_info "begin '$1'${key:+ (run key $key)}"
  if [[ -f "$COOP_STATE_FILE" ]]; then
    stored=$(sed -n 's/^run_key=//p' "$COOP_STATE_FILE")
    if [[ "$stored" != "$key" ]]; then
      log_warn "run key changed ('$stored' -> '$key'): discarding the interrupted run and starting fresh"
      rm -f "$COOP_STATE_FILE"
    else
      log_info "resuming interrupted '$1' run; done: $(sed -n 's/^done=//p' "$COOP_STATE_FILE" | paste -sd ' ')"
    fi
  fi
  [[ -f "$COOP_STATE_FILE" ]] || _state_write "run_key=$key"
  # A command failing under `set -e` ends the script without a word; this names the step it died in.
  # Scripts with an EXIT trap of their own (drill, upgrades) replace it and report for themselves.
  trap _report_silent_exit EXIT
}

_report_silent_exit() {
  local rc=$?
  if ((rc != 0)) && [[ -n "${COOP_CURRENT_STEP:-}" && -z "${COOP_DIE_REASON:-}" ]]; then
    log_error "step '${COOP_CURRENT_STEP}' failed: a command in it exited ${rc} (its output is above; a re-run resumes at this step)"
  fi
}

steps_total() { COOP_STEPS_TOTAL=$1; }

_elapsed() { printf '%d.%01ds' $((($2 - $1) / 1000000)) $((($2 - $1) % 1000000 / 100000)); }

# SIGKILL the script's whole process tree, as an OOM kill or `systemctl kill` would: $$ alone would leave
# subshells and background children running (and holding the lock fd).
_fault_kill() {
  local self=$BASHPID
  local -a tree
  mapfile -t tree < <(ps -e -o pid= -o ppid= | awk -v root="$$" -v self="$self" '
    { parent[$1] = $2 }
    END {
      found[root] = 1
      do { grew = 0; for (p in parent) if (!(p in found) && (parent[p] in found)) { found[p] = 1; grew = 1 } } while (grew)
      for (p in found) if (p != root && p != self) print p
    }')
  ((${#tree[@]} == 0)) || kill -9 "${tree[@]}" 2>/dev/null || true
  kill -9 "$$" "$self"
}

# step NAME FUNCTION [ARGS...]
step() {
  local name=$1 fn=$2
  local started label
  local -a lines
  shift 2
  [[ -n "$COOP_STATE_FILE" ]] || die "step '$name' before run_begin"
  COOP_STEP_INDEX=$((COOP_STEP_INDEX + 1))
  label="step $COOP_STEP_INDEX/$COOP_STEPS_TOTAL $name"
  if _step_done "$name"; then
    log_info "$label: done in an earlier run, skipping"
    return 0
  fi
  if [[ "${FAULT_AT:-}" == "$name" ]]; then
    log_warn "$label: FAULT_AT=$name, killing the script"
    _fault_kill
  fi
  log_info "$label"
  COOP_CURRENT_STEP=$name
  started=${EPOCHREALTIME//[^0-9]/}
  "$fn" "$@"
  mapfile -t lines <"$COOP_STATE_FILE"
  _state_write "${lines[@]}" "done=$name"
  COOP_CURRENT_STEP=""
  log_info "$label done in $(_elapsed "$started" "${EPOCHREALTIME//[^0-9]/}")"
}

run_finish() {
  rm -f "$COOP_STATE_FILE"
  log_info "'$COOP_OPERATION' finished in $(_elapsed "$COOP_RUN_STARTED_US" "${EPOCHREALTIME//[^0-9]/}")"
}

# put_file TARGET MODE OWNER GROUP < content: writes only when content, mode or owner differ, through a
# temp file created private (umask 077) beside the target and renamed, so a kill never leaves half a
# file or a moment where a secret is readable by others.
put_file() {
  local target="$1" mode="$2" owner="$3" group="$4"
  local tmp
  mkdir -p "$(dirname "${target}")"
  # A kill between mktemp and mv leaves a 0600 copy (a key, a passphrase) beside the target: gone here.
  rm -f "${target}".??????
  tmp=$(umask 077 && mktemp "${target}.XXXXXX")
  cat >"${tmp}"
  if [[ -f "${target}" ]] && cmp -s "${tmp}" "${target}" &&
    [[ "$(stat -c '%a %U %G' "${target}")" == "${mode#0} ${owner} ${group}" ]]; then
    rm -f "${tmp}"
    return 0
  fi
  chown "${owner}:${group}" "${tmp}"
  chmod "${mode}" "${tmp}"
  mv -f "${tmp}" "${target}"
  log_info "wrote ${target} (mode ${mode}, ${owner}:${group})"
}

# install_scripts_from FROM DIR NEEDED: the uploaded scripts folder FROM (which must hold NEEDED, the
# installing script) into DIR, where the hosts' units run them: top-level scripts 0755, lib/ 0644, root's.
install_scripts_from() {
  local from="$1" dir="$2" needed="$3" f
  [[ -f "${from}/${needed}" ]] || die "COOP_SCRIPTS_FROM=${from} holds no ${needed}"
  for f in "${from}"/*.sh; do put_file "${dir}/${f##*/}" 0755 root root <"${f}"; done
  for f in "${from}"/lib/*.sh; do put_file "${dir}/lib/${f##*/}" 0644 root root <"${f}"; done
}

# The install a `pulumi up` made last, by COOP_INSTALL_ID (the ID of its command resource's inputs). A
# replacement creates the new install before it deletes the old one; the old one's delete then finds a
# newer ID recorded and must leave the new install alone.
# install_id_record FILE: records this run's ID.  install_id_superseded FILE: true (and says so) when
# another install's ID is recorded there.
install_id_record() { printf '%s\n' "${COOP_INSTALL_ID:-}" | put_file "$1" 0644 root root; }

install_id_superseded() {
  local recorded=""
  [[ -f "$1" ]] && recorded=$(<"$1")
  [[ -n "${COOP_INSTALL_ID:-}" && -n "${recorded}" && "${recorded}" != "${COOP_INSTALL_ID}" ]] || return 1
  log_info "a newer install (${recorded}) replaced ${COOP_INSTALL_ID}: nothing to remove"
}

# version_lt A B: A is an older version than B, in sort -V's order (v4.3.8 < v4.4.0 < v4.4.0+hometown-1).
version_lt() { [[ "$1" != "$2" && "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" == "$1" ]]; }

# missing_packages PKG...: prints the ones dpkg does not have installed, one a line.
missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q "install ok installed" || printf '%s\n' "${p}"
  done
}

# install_missing [--required] PKG...: installs those of PKG not installed yet. COOP_SKIP_APT=1 (tests,
# images built with everything) never calls apt-get: it warns, or with --required stops, naming them.
install_missing() {
  local required=no
  if [[ "${1:-}" == --required ]]; then required=yes; shift; fi
  local -a missing=()
  mapfile -t missing < <(missing_packages "$@")
  if ((${#missing[@]} == 0)); then
    log_info "packages present: $*"
  elif [[ "${COOP_SKIP_APT:-}" == 1 ]]; then
    [[ "${required}" == no ]] || die "missing packages ${missing[*]} and COOP_SKIP_APT=1"
    log_warn "COOP_SKIP_APT=1: not installing ${missing[*]}"
  else
    log_info "installing ${missing[*]}"
    apt_install "${missing[@]}"
  fi
}

# apt_install PKG...: a fresh host's unattended-upgrades can hold dpkg's lock for minutes after boot,
# so wait for it (10 min) rather than fail after a few retries.
apt_install() {
  local -a lock_wait=(-o DPkg::Lock::Timeout=600)
  with_retry 3 10 apt-get "${lock_wait[@]}" update -q
  DEBIAN_FRONTEND=noninteractive with_retry 3 10 apt-get "${lock_wait[@]}" install -y -q --no-install-recommends "$@"
}
