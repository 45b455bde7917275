#!/usr/bin/env bash
# Where the CPU goes when hearth serves the Python hello under load: CPU
# time per process (daemon, workers, wrk) from /proc over a wrk run, the
# system's context switches (perf stat, if perf is installed) and the
# daemon's top symbols (perf record, if installed).
#
# Usage (from the repo root):   bench/profile.sh          (release build, wrk -t2 -c64 -d10s)
# Only 127.0.0.1 is targeted; the wrk run is bounded by -d and `timeout`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
log() { printf '[profile %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y -qq wrk >/dev/null; }

WORK=$(mktemp -d /tmp/hearth-profile.XXXXXX)
chmod 711 "$WORK"
HPID=""
cleanup() {
  [[ -n $HPID ]] && kill "$HPID" 2>/dev/null && wait "$HPID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

log "building release hearth"
cargo build --release >&2
HEARTH="$ROOT/target/release/hearth"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADDR="127.0.0.1:$PORT"
HEARTH_LOG=warn "$HEARTH" serve --listen "$ADDR" --data-dir "$WORK/data" >"$WORK/out" 2>"$WORK/log" &
HPID=$!
for _ in $(seq 1 100); do grep -q listening "$WORK/out" 2>/dev/null && break; sleep 0.1; done
cp -r examples/python/hello "$WORK/hello"
sed -i 's/^max_workers *=.*/max_workers = 2/' "$WORK/hello/hearth.toml"
HEARTH_DATA="$WORK/data" "$HEARTH" --addr "$ADDR" deploy "$WORK/hello" >&2

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
log "wrk -t2 -c64 -d10s against /fn/hello"
timeout 30 wrk -t2 -c64 -d10s --latency -s bench/wrk/post.lua "http://$ADDR/fn/hello" >"$WORK/wrk" &
TIMEOUT_PID=$!
sleep 1
WRK=$(pgrep -P "$TIMEOUT_PID" -x wrk)
# The daemon's children but its reaper: the function's workers (both started
# by now) and the idle pre-started interpreters.
WORKERS=$(for c in $(pgrep -P "$HPID"); do [[ $(cat "/proc/$c/comm") != hearth ]] && echo "$c"; done)
declare -A before
for p in "$HPID" $WORKERS "$WRK"; do before[$p]=$(ticks "$p"); done
SECS=8
if command -v perf >/dev/null; then
  perf stat -a -e context-switches -x, -o "$WORK/stat" -- sleep "$SECS" 2>/dev/null || sleep "$SECS"
else
  sleep "$SECS"
fi
HZ=$(getconf CLK_TCK)
declare -A used
for p in "$HPID" $WORKERS "$WRK"; do used[$p]=$(($(ticks "$p") - ${before[$p]})); done
if command -v perf >/dev/null; then
  perf record -F 999 -g -p "$HPID" -o "$WORK/perf.data" -- sleep 1 >/dev/null 2>&1 || true
fi
wait "$TIMEOUT_PID" || true
RPS=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk")
CALLS=$(awk -v r="$RPS" -v s="$SECS" 'BEGIN {printf "%d", r * s}')

echo "hearth python hello under wrk -t2 -c64: $RPS req/s; CPU over ${SECS} s of it ($(nproc) cores):"
w_ticks=0; for p in $WORKERS; do w_ticks=$((w_ticks + ${used[$p]})); done
for row in "daemon:${used[$HPID]}" "workers:$w_ticks" "wrk:${used[$WRK]}"; do
  name=${row%%:*}; t=${row#*:}
  awk -v n="$name" -v t="$t" -v hz="$HZ" -v s="$SECS" -v c="$(nproc)" -v calls="$CALLS" \
    'BEGIN { printf "  %-8s %6.2f s (%4.1f%% of the machine), %5.1f us per request\n", n, t / hz, 100 * t / hz / (s * c), 1e6 * t / hz / calls }'
done
if [[ -f $WORK/stat ]]; then
  awk -F, -v s="$SECS" '/context-switches/ {printf "  context switches: %d/s\n", $1 / s}' "$WORK/stat"
fi
if [[ -f $WORK/perf.data ]]; then
  echo "  daemon's top symbols (perf record, 1 s):"
  perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
    grep -E '^ +[0-9]' | head -8 | awk '{printf "    %s %s %s\n", $1, $2, $3}'
fi
