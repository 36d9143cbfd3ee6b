#!/bin/sh
# configmap-reload.sh: a polling reload sidecar for metrics-governor.
#
# Every WATCH_INTERVAL seconds it computes the SHA-256 of every watched file.
# When a file's content differs from the content the governor was last
# signalled about, it finds the governor by name and sends it SIGNAL (SIGHUP
# by default), which makes the governor reload its configuration.
#
# POSIX sh; runs on busybox (ash and its applets), dash and bash.
#
# Environment:
#   WATCH_FILES      space-separated files to watch (required). Paths with
#                    spaces are not supported.
#   WATCH_INTERVAL   seconds between checks (default 10; fractions such as 0.5
#                    work where `sleep` accepts them, as busybox's and GNU's do)
#   SIGNAL           signal to send, e.g. HUP, SIGHUP or 1 (default HUP)
#   PROCESS_NAME     name of the process to signal (default metrics-governor)
#   CONFIRM_URL      optional: the governor's /metrics URL, e.g.
#                    http://127.0.0.1:9090/metrics. After each signal the
#                    script waits for metrics_governor_config_reload_attempts_total
#                    to move and logs the outcome and metrics_governor_config_version.
#   CONFIRM_TIMEOUT  seconds to wait for that confirmation (default 10)
#
# Guarantees:
#   - The new hashes are recorded only after the signal was delivered. A change
#     made while the governor is not running (or cannot be signalled) is
#     signalled on a later interval, once it can be.
#   - It signals single process IDs only, never 0 or a negative ID (a process
#     group). It never signals itself, its parent, its children, or a process
#     in its own process group. Before each kill it checks that
#     /proc/PID/cmdline (argv[0], or its base name) or /proc/PID/comm is
#     PROCESS_NAME. Run it in its own process group (its own container, or
#     `setsid`) when it is started from the same shell as the governor.
#   - A missing or unreadable watched file is logged, never fatal, and is no
#     reason to signal.
#   - SIGTERM or SIGINT ends it promptly with exit status 0.
#
# Logs: one JSON object per line on stdout,
#   {"ts":"...","level":"info","message":"...","fields":{...}}
#
# Exit status: 0 after SIGTERM/SIGINT, 2 for an invalid setting.

set -f

WATCH_FILES=${WATCH_FILES:-}
WATCH_INTERVAL=${WATCH_INTERVAL:-10}
SIGNAL=${SIGNAL:-HUP}
PROCESS_NAME=${PROCESS_NAME:-metrics-governor}
CONFIRM_URL=${CONFIRM_URL:-}
CONFIRM_TIMEOUT=${CONFIRM_TIMEOUT:-10}

sleep_pid=

# ---------------------------------------------------------------------------
# Logging

# json_str VALUE: VALUE as a JSON string (quotes, backslashes escaped; control
# characters dropped).
json_str() {
  case $1 in
    *[\\\"]* | *[![:print:]]*)
      printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\000-\037')"
      ;;
    *) printf '"%s"' "$1" ;;
  esac
}

# log LEVEL MESSAGE [KEY VALUE]...: one JSON line on stdout. A KEY ending in
# ":n" is written as a number (null when VALUE is not one).
log() {
  _lvl=$1
  _msg=$2
  shift 2
  _fields=
  while [ $# -ge 2 ]; do
    _k=$1
    _v=$2
    shift 2
    case $_k in
      *:n)
        _k=${_k%:n}
        case $_v in
          '' | *[!0-9.]* | *.*.* | '.'* | *'.' | 0[0-9]*) _jv=null ;;
          *) _jv=$_v ;;
        esac
        ;;
      *) _jv=$(json_str "$_v") ;;
    esac
    _fields="$_fields${_fields:+,}\"$_k\":$_jv"
  done
  printf '{"ts":"%s","level":"%s","message":%s,"fields":{%s}}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$_lvl" "$(json_str "$_msg")" "$_fields"
}

fatal() {
  log error "$@"
  exit 2
}

# ---------------------------------------------------------------------------
# Settings

[ -n "$WATCH_FILES" ] || fatal "WATCH_FILES is empty: nothing to watch"
case $WATCH_INTERVAL in
  '' | *[!0-9.]* | *.*.* | '.' | *'.') fatal "WATCH_INTERVAL must be a positive number of seconds" value "$WATCH_INTERVAL" ;;
  *[1-9]*) ;;
  *) fatal "WATCH_INTERVAL must be a positive number of seconds" value "$WATCH_INTERVAL" ;;
esac
case $WATCH_INTERVAL in
  '.'*) WATCH_INTERVAL=0$WATCH_INTERVAL ;;
esac
case $CONFIRM_TIMEOUT in
  '' | *[!0-9]* | 0) fatal "CONFIRM_TIMEOUT must be a positive whole number of seconds" value "$CONFIRM_TIMEOUT" ;;
esac
# The signal as a name without SIG, for `kill -s`.
_sig=$(printf '%s' "$SIGNAL" | tr '[:lower:]' '[:upper:]')
_sig=${_sig#SIG}
case $_sig in
  '' | 0 | *[!A-Z0-9+-]*) fatal "SIGNAL is not a signal name or number" value "$SIGNAL" ;;
  *[!0-9]*) ;;
  *) _sig=$(kill -l "$_sig" 2>/dev/null) || fatal "SIGNAL is not a signal name or number" value "$SIGNAL" ;;
esac
if [ "$_sig" = 0 ] || ! kill -l | awk -v s="$_sig" '
  { for (i = 1; i <= NF; i++) { w = $i; sub(/^SIG/, "", w); if (w == s) found = 1 } }
  END { exit !found }'; then
  fatal "SIGNAL is not a signal name or number" value "$SIGNAL"
fi
SIGNAL=$_sig
case $PROCESS_NAME in
  '' | */*) fatal "PROCESS_NAME must be a process name (no slash)" value "$PROCESS_NAME" ;;
esac
command -v sha256sum >/dev/null 2>&1 || fatal "sha256sum not found"

# All PID checks below read /proc. It must describe this PID namespace, or a
# PID read there would name another process than the one kill reaches.
_self=
{ read -r _self </proc/self/stat; } 2>/dev/null
[ "${_self%% *}" = "$$" ] ||
  fatal "/proc does not show this shell as PID $$: mount the proc file system of this PID namespace"
# This script's process group; 0 when its leader is outside this PID namespace.
_rest=${_self##*") "}
# shellcheck disable=SC2086 # split into the stat fields
set -- $_rest
MY_PGID=${3:-0}

# ---------------------------------------------------------------------------
# Hashing

# hash_file FILE: prints the SHA-256 of FILE's content; fails when FILE is
# missing or unreadable.
hash_file() {
  [ -f "$1" ] && [ -r "$1" ] || return 1
  _h=$(sha256sum 2>/dev/null <"$1") || return 1
  _h=${_h%% *}
  case $_h in
    '' | *[!0-9a-f]*) return 1 ;;
  esac
  [ ${#_h} -eq 64 ] || return 1
  printf '%s' "$_h"
}

# File number i (1, 2, ...) of WATCH_FILES has:
#   rec_i   the hash the governor was last signalled about (or had at start)
#   seen_i  the hash last seen (to log each change once)
#   miss_i  1 while the file is missing or unreadable
#   cur_i   the hash to record once the signal for this round is delivered

# check: hashes every file; sets `changed` to 1 when a file differs from its
# recorded hash.
check() {
  changed=0
  _i=0
  for _f in $WATCH_FILES; do
    _i=$((_i + 1))
    _rec='' _seen='' _miss=''
    eval "_rec=\$rec_$_i _seen=\$seen_$_i _miss=\$miss_$_i"
    if _h=$(hash_file "$_f"); then
      if [ "$_miss" = 1 ]; then
        log info "watched file is readable again" path "$_f"
        _miss=0
      fi
      if [ "$_h" != "$_seen" ]; then
        log info "watched file changed" path "$_f" sha256 "$_h" previous_sha256 "$_seen"
        _seen=$_h
      fi
      [ "$_h" = "$_rec" ] || changed=1
      _cur=$_h
    else
      if [ "$_miss" != 1 ]; then
        log warn "watched file missing or unreadable" path "$_f"
        _miss=1
      fi
      _cur=$_rec
    fi
    eval "seen_$_i=\$_seen miss_$_i=\$_miss cur_$_i=\$_cur"
  done
}

# record: the signal was delivered; the hashes of this round become the
# recorded ones.
record() {
  _i=0
  for _f in $WATCH_FILES; do
    _i=$((_i + 1))
    eval "rec_$_i=\$cur_$_i"
  done
}

# ---------------------------------------------------------------------------
# Finding and checking the process

# argv0 PID: prints the first NUL-separated word of /proc/PID/cmdline.
argv0() {
  tr '\000' '\n' 2>/dev/null <"/proc/$1/cmdline" | head -n 1
}

# find_pids: prints candidate PIDs: pidof's answer, or else every process
# whose argv[0] (or its base name) is PROCESS_NAME.
find_pids() {
  _pids=
  if command -v pidof >/dev/null 2>&1; then
    _pids=$(pidof "$PROCESS_NAME" 2>/dev/null)
  fi
  if [ -z "$_pids" ]; then
    set +f
    for _d in /proc/[0-9]*; do
      _a=$(argv0 "${_d#/proc/}")
      if [ -n "$_a" ] && { [ "$_a" = "$PROCESS_NAME" ] || [ "${_a##*/}" = "$PROCESS_NAME" ]; }; then
        _pids="$_pids ${_d#/proc/}"
      fi
    done
    set -f
  fi
  printf '%s\n' "$_pids"
}

# refused PID: succeeds (and sets `reason`) when PID must not be signalled.
refused() {
  reason=
  case $1 in
    '' | *[!0-9]*)
      reason="not a process ID"
      return 0
      ;;
  esac
  if [ "$1" -le 0 ]; then
    reason="not a positive process ID"
  elif [ "$1" -eq "$$" ]; then
    reason="this script"
  elif [ "$1" -eq "${PPID:-0}" ]; then
    reason="this script's parent"
  fi
  [ -z "$reason" ] || return 0
  _stat=
  { read -r _stat <"/proc/$1/stat"; } 2>/dev/null
  if [ -z "$_stat" ]; then
    reason="no such process"
    return 0
  fi
  # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
  _rest=${_stat##*") "}
  # shellcheck disable=SC2086 # split into the stat fields
  set -- "$1" $_rest
  if [ "$3" = "$$" ]; then
    reason="a child of this script"
  elif [ "$MY_PGID" != 0 ] && [ "$4" = "$MY_PGID" ]; then
    reason="in this script's process group"
  fi
  [ -z "$reason" ] || return 0
  _a=$(argv0 "$1")
  _comm=
  { read -r _comm <"/proc/$1/comm"; } 2>/dev/null
  if [ -z "$_a" ]; then
    reason="no command line (a kernel thread or a zombie)"
  elif [ "$_a" = "$PROCESS_NAME" ] || [ "${_a##*/}" = "$PROCESS_NAME" ] || [ "$_comm" = "$PROCESS_NAME" ]; then
    return 1
  else
    reason="not $PROCESS_NAME (argv[0] is $_a, comm is $_comm)"
  fi
  return 0
}

# ---------------------------------------------------------------------------
# Confirmation through the governor's metrics

scrape() {
  _t=
  command -v timeout >/dev/null 2>&1 && _t="timeout 5"
  if command -v wget >/dev/null 2>&1; then
    $_t wget -q -O - "$CONFIRM_URL" 2>/dev/null
  elif command -v curl >/dev/null 2>&1; then
    curl -fsS -m 5 "$CONFIRM_URL" 2>/dev/null
  else
    return 1
  fi
}

# reload_counts: prints "attempts applied unchanged rejected version" (an
# attempt that failed inside the governor counts as rejected), the
# sums of metrics_governor_config_reload_attempts_total over all triggers but
# startup, and metrics_governor_config_version.
reload_counts() {
  _m=$(scrape) || return 1
  printf '%s\n' "$_m" | awk '
    /^metrics_governor_config_reload_attempts_total[{ ]/ {
      if ($0 ~ /trigger="startup"/) next
      v = $NF + 0
      n += v
      if ($0 ~ /result="applied"/) a += v
      else if ($0 ~ /result="unchanged"/) u += v
      else if ($0 ~ /result="(rejected|error)"/) r += v
    }
    /^metrics_governor_config_version[{ ]/ { ver = $NF + 0; found = 1 }
    END {
      if (!found) exit 1
      printf "%d %d %d %d %d\n", n, a, u, r, ver
    }'
}

# confirm BEFORE: waits up to CONFIRM_TIMEOUT seconds for a reload attempt
# after the signal, and logs its outcome. BEFORE is reload_counts' output from
# before the signal.
confirm() {
  if [ -z "$1" ]; then
    log warn "cannot confirm the reload: CONFIRM_URL did not answer with the governor's metrics" url "$CONFIRM_URL"
    return
  fi
  # shellcheck disable=SC2086 # split into the five counts
  set -- $1
  _bn=$1 _ba=$2 _bu=$3 _br=$4 _bv=$5
  _waited=0
  while [ "$_waited" -lt "$CONFIRM_TIMEOUT" ]; do
    nap 1
    _waited=$((_waited + 1))
    _now=$(reload_counts) || continue
    # shellcheck disable=SC2086 # split into the five counts
    set -- $_now
    [ "$1" = "$_bn" ] && continue
    if [ "$1" -lt "$_bn" ]; then
      log info "reload confirmed: the governor restarted and loaded the files at start" version:n "$5" url "$CONFIRM_URL"
    elif [ "$2" -gt "$_ba" ]; then
      log info "reload confirmed" result applied version:n "$5" previous_version:n "$_bv" url "$CONFIRM_URL"
    elif [ "$3" -gt "$_bu" ]; then
      log info "reload confirmed" result unchanged version:n "$5" url "$CONFIRM_URL"
    elif [ "$4" -gt "$_br" ]; then
      log error "reload rejected by the governor, it keeps its current config" result rejected version:n "$5" url "$CONFIRM_URL"
    fi
    return
  done
  log warn "reload not confirmed" url "$CONFIRM_URL" waited_seconds:n "$CONFIRM_TIMEOUT" version:n "$_bv"
}

# ---------------------------------------------------------------------------
# Signalling

# signal_governor: sends SIGNAL to every verified PROCESS_NAME process;
# succeeds only when at least one got it and no kill failed.
signal_governor() {
  _sent=0
  _failed=0
  _before=
  [ -z "$CONFIRM_URL" ] || _before=$(reload_counts)
  for _pid in $(find_pids); do
    if refused "$_pid"; then
      log warn "refusing to signal process" pid:n "$_pid" reason "$reason" process_name "$PROCESS_NAME"
      continue
    fi
    if _err=$(kill -s "$SIGNAL" "$_pid" 2>&1); then
      log info "signal sent" pid:n "$_pid" signal "$SIGNAL" process_name "$PROCESS_NAME"
      _sent=$((_sent + 1))
    else
      log error "signal failed, will retry" pid:n "$_pid" signal "$SIGNAL" process_name "$PROCESS_NAME" error "$_err"
      _failed=$((_failed + 1))
    fi
  done
  if [ "$_sent" -eq 0 ]; then
    [ "$_failed" -gt 0 ] || log warn "no process to signal, will retry" process_name "$PROCESS_NAME"
    return 1
  fi
  [ -z "$CONFIRM_URL" ] || confirm "$_before"
  [ "$_failed" -eq 0 ]
}

# ---------------------------------------------------------------------------
# Main loop

# nap SECONDS: a sleep that SIGTERM interrupts at once.
nap() {
  sleep "$1" &
  sleep_pid=$!
  wait "$sleep_pid"
  sleep_pid=
}

on_term() {
  [ -z "$sleep_pid" ] || kill "$sleep_pid" 2>/dev/null
  log info "configmap-reload stopping" signal "$1"
  exit 0
}
trap 'on_term TERM' TERM
trap 'on_term INT' INT

log info "configmap-reload started" watch_files "$WATCH_FILES" interval_seconds:n "$WATCH_INTERVAL" \
  signal "$SIGNAL" process_name "$PROCESS_NAME" confirm_url "$CONFIRM_URL" pid:n "$$"

# The governor reads the files itself when it starts: what is there now is the
# baseline.
_i=0
for _f in $WATCH_FILES; do
  _i=$((_i + 1))
  if _h=$(hash_file "$_f"); then
    eval "rec_$_i=\$_h seen_$_i=\$_h miss_$_i=0 cur_$_i=\$_h"
    log info "watching file" path "$_f" sha256 "$_h"
  else
    eval "rec_$_i= seen_$_i= miss_$_i=1 cur_$_i="
    log warn "watched file missing or unreadable" path "$_f"
  fi
done

while :; do
  nap "$WATCH_INTERVAL"
  check
  if [ "$changed" = 1 ] && signal_governor; then
    record
  fi
done
