#!/usr/bin/env bash
# Throughput benchmark: hearth hello functions (python, node, lua), 1,000
# distinct Python functions called round robin, and uWSGI serving the same
# Python hello as a WSGI app (two usual set-ups). Prints one table on stdout;
# progress goes to stderr.
#
# Usage (from the repo root):   bench/throughput.sh
#
# Environment knobs:
#   DURATION=10s        wrk duration of every run
#   CONNS=64 THREADS=2  wrk connections / threads
#   FN_COUNT=1000       distinct functions for the round-robin run
#   DEPLOY_BUDGET_S=300 if deploying FN_COUNT functions is projected to take
#                       longer than this, only 200 are deployed (reported)
#   KEEP_TMP=1          keep the temp dir (data dir, logs, raw wrk output)
#
# What is deployed:
#   hello       examples/python/hello copied to a temp dir, [limits]
#               max_workers forced to 2 (other limits as in the example)
#   hello-node  examples/node/hello unchanged (its hearth.toml: max_workers = 2)
#   hello-lua   examples/lua/hello unchanged (its hearth.toml: max_workers = 2)
#   f-0000..    tiny Python functions with no [limits] (defaults: 4 workers,
#               queue 64); the daemon runs with its default
#               --max-workers-total 256, so 1,000 functions cannot all be warm.
# Only 127.0.0.1 is targeted; every wrk run is bounded by -d and `timeout`.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
FN_COUNT=${FN_COUNT:-1000}
DEPLOY_BUDGET_S=${DEPLOY_BUDGET_S:-300}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- tools
need_install=()
command -v wrk >/dev/null 2>&1 || need_install+=(wrk)
command -v uwsgi >/dev/null 2>&1 || need_install+=(uwsgi)
if ! dpkg -s uwsgi-plugin-python3 >/dev/null 2>&1; then need_install+=(uwsgi-plugin-python3); fi
if ((${#need_install[@]})); then
  log "installing ${need_install[*]} with apt-get"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  apt_log=$(mktemp /tmp/hearth-bench-apt.XXXXXX)
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        $SUDO apt-get install -y -qq wrk uwsgi uwsgi-plugin-python3; } >"$apt_log" 2>&1; then
    cat "$apt_log" >&2; die "apt-get failed"
  fi
  rm -f "$apt_log"
fi
command -v curl >/dev/null 2>&1 || die "curl is required"

# ---------------------------------------------------------------- state / cleanup
WORK=$(mktemp -d /tmp/hearth-bench.XXXXXX)
# Workers run as users of their own (hearth serve as root): they must be
# able to reach the data directory inside.
chmod 711 "$WORK"
OUT="$WORK/out"; mkdir -p "$OUT"
PIDS=()

stop_pid() {
  local pid=$1 sig=${2:-TERM}
  kill -0 "$pid" 2>/dev/null || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for entry in "${PIDS[@]}"; do
    # entry is "pid:signal"; uWSGI masters stop cleanly on INT (TERM reloads).
    stop_pid "${entry%%:*}" "${entry##*:}"
  done
  if [[ ${KEEP_TMP:-0} == 1 ]]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 - <<'EOF'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
EOF
}

wait_http() { # url, seconds
  local url=$1 secs=$2
  for _ in $(seq 1 $((secs * 10))); do
    if curl -s -o /dev/null --max-time 1 "$url"; then return 0; fi
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------- wrk + parsing
declare -A RPS P50 P99 ERRS
ROWS=()

# run_wrk LABEL URL SCRIPT
run_wrk() {
  local label=$1 url=$2 script=$3 file
  file="$OUT/wrk-$(echo "$label" | tr -c 'A-Za-z0-9' '_').txt"
  log "wrk -t$THREADS -c$CONNS -d$DURATION --latency -s $script $url   ($label)"
  timeout 60 wrk "-t$THREADS" "-c$CONNS" "-d$DURATION" --latency -s "$script" "$url" >"$file" 2>&1 ||
    log "wrk exited non-zero for $label (see below)"
  local rps p50 p99 non2xx sockerr
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$file")
  p50=$(awk '/Latency Distribution/ {f=1} f && $1=="50%" {print $2; exit}' "$file")
  p99=$(awk '/Latency Distribution/ {f=1} f && $1=="99%" {print $2; exit}' "$file")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$file")
  sockerr=$(sed -n 's/^ *Socket errors: *//p' "$file")
  local errs="${non2xx:-0} non-2xx"
  [[ -n $sockerr ]] && errs+="; socket: $sockerr"
  RPS[$label]=${rps:-n/a}; P50[$label]=${p50:-n/a}; P99[$label]=${p99:-n/a}; ERRS[$label]=$errs
  ROWS+=("$label")
  log "  -> ${RPS[$label]} req/s, p50 ${P50[$label]}, p99 ${P99[$label]}, $errs"
}

check_call() { # url expected-substring
  local body
  body=$(curl -s --max-time 10 -X POST -H 'Content-Type: application/json' -d '{"name":"Ada"}' "$1") || true
  [[ $body == *"$2"* ]] || die "unexpected reply from $1: $body"
}

# ---------------------------------------------------------------- hearth
log "building release hearth"
cargo build --release >&2
HEARTH="$ROOT/target/release/hearth"

HPORT=$(free_port)
HADDR="127.0.0.1:$HPORT"
mkdir -p "$WORK/data"
start_hearth() {
  log "starting hearth on $HADDR (data $WORK/data, log $OUT/hearth.log)"
  HEARTH_LOG=warn "$HEARTH" serve --listen "$HADDR" --data-dir "$WORK/data" \
    >"$OUT/hearth.stdout" 2>>"$OUT/hearth.log" &
  HPID=$!
  PIDS+=("$HPID:TERM")
  for _ in $(seq 1 100); do
    grep -q "hearth listening on" "$OUT/hearth.stdout" 2>/dev/null && break
    kill -0 "$HPID" 2>/dev/null || die "hearth exited: $(tail -5 "$OUT/hearth.log")"
    sleep 0.1
  done
  grep -q "hearth listening on" "$OUT/hearth.stdout" || die "hearth did not start"
  log "$(head -1 "$OUT/hearth.stdout")"
}
start_hearth

deploy() { HEARTH_DATA="$WORK/data" "$HEARTH" --addr "$HADDR" deploy "$1" >>"$OUT/deploy.log" 2>&1 || die "deploy $1 failed: $(tail -3 "$OUT/deploy.log")"; }

# Python hello with max_workers = 2.
cp -r examples/python/hello "$WORK/py-hello"
PYTOML="$WORK/py-hello/hearth.toml"
if grep -q '^max_workers' "$PYTOML"; then
  sed -i 's/^max_workers *=.*/max_workers = 2/' "$PYTOML"
elif grep -q '^\[limits\]' "$PYTOML"; then
  sed -i 's/^\[limits\]/[limits]\nmax_workers = 2/' "$PYTOML"
else
  printf '\n[limits]\nmax_workers = 2\n' >>"$PYTOML"
fi
# The same, pipelined: up to 4 calls in flight per worker's pipe.
cp -r "$WORK/py-hello" "$WORK/py-hello-pipelined"
sed -i 's/^name *=.*/name = "hello-pipelined"/; s/^\[limits\]/[limits]\nconcurrency = 4/' "$WORK/py-hello-pipelined/hearth.toml"
log "deploying hello (python, max_workers=2), hello-pipelined (concurrency=4), hello-node, hello-lua"
deploy "$WORK/py-hello"
deploy "$WORK/py-hello-pipelined"
deploy examples/node/hello
deploy examples/lua/hello

for fn in hello hello-pipelined hello-node hello-lua; do
  check_call "http://$HADDR/fn/$fn" '"Hello, Ada!"'
done

run_wrk "hearth python hello" "http://$HADDR/fn/hello" bench/wrk/post.lua
run_wrk "hearth python hello, pipelined x4" "http://$HADDR/fn/hello-pipelined" bench/wrk/post.lua
run_wrk "hearth node hello" "http://$HADDR/fn/hello-node" bench/wrk/post.lua
run_wrk "hearth lua hello" "http://$HADDR/fn/hello-lua" bench/wrk/post.lua
curl -s --max-time 5 -H "Authorization: Bearer $(cat "$WORK/data/admin.token")" "http://$HADDR/api/v1/workers" >"$OUT/workers-after-hello.json" || true

# The same hello functions on a second daemon without cells
# (server.cells = 0: one shared runtime, workers floating over every CPU),
# side by side with the first; the first daemon idles meanwhile.
NPORT=$(free_port)
NADDR="127.0.0.1:$NPORT"
mkdir -p "$WORK/nocells"
log "starting a second hearth on $NADDR with --cells 0"
HEARTH_LOG=warn "$HEARTH" serve --listen "$NADDR" --data-dir "$WORK/nocells/data" --cells 0 \
  >"$OUT/nocells.stdout" 2>>"$OUT/nocells.log" &
NPID=$!
PIDS+=("$NPID:TERM")
for _ in $(seq 1 100); do grep -q "hearth listening on" "$OUT/nocells.stdout" 2>/dev/null && break; sleep 0.1; done
grep -q "hearth listening on" "$OUT/nocells.stdout" || die "the second hearth did not start: $(tail -5 "$OUT/nocells.log")"
for d in "$WORK/py-hello" examples/node/hello examples/lua/hello; do
  HEARTH_DATA="$WORK/nocells/data" "$HEARTH" --addr "$NADDR" deploy "$d" >>"$OUT/deploy.log" 2>&1 || die "deploy $d on the second hearth failed"
done
for fn in hello hello-node hello-lua; do check_call "http://$NADDR/fn/$fn" '"Hello, Ada!"'; done
run_wrk "hearth python hello, no cells" "http://$NADDR/fn/hello" bench/wrk/post.lua
run_wrk "hearth node hello, no cells" "http://$NADDR/fn/hello-node" bench/wrk/post.lua
run_wrk "hearth lua hello, no cells" "http://$NADDR/fn/hello-lua" bench/wrk/post.lua
stop_pid "$NPID" TERM

# ---------------------------------------------------------------- first calls
# Functions never called: deployed without publishing (a live version keeps
# a worker started), then hearth restarts, so none has a worker; each is
# called once (at /fn/NAME@1) with the generic pool full.
FIRST_N=${FIRST_N:-20}
log "first calls: deploying $FIRST_N unpublished copies of each hello"
for rt in python node lua; do
  for ((i = 0; i < FIRST_N; i++)); do
    d="$WORK/first/$rt-$i"
    mkdir -p "$d"
    cp -r "examples/$rt/hello/." "$d/"
    sed -i "s/^name *=.*/name = \"first-$rt-$i\"/" "$d/hearth.toml"
    HEARTH_DATA="$WORK/data" "$HEARTH" --addr "$HADDR" deploy --no-publish "$d" >>"$OUT/deploy.log" 2>&1 || die "deploy $d failed"
  done
done
log "restarting hearth"
stop_pid "$HPID" TERM
start_hearth
generic_full() { # every generic pool at its target
  curl -s --max-time 2 -H "Authorization: Bearer $(cat "$WORK/data/admin.token")" "http://$HADDR/api/v1/workers" |
    python3 -c 'import json,sys; g=json.load(sys.stdin)["generic"]; sys.exit(0 if g and all(x["idle"]==x["target"] for x in g) else 1)'
}
for rt in python node lua; do
  : >"$OUT/first-$rt.txt"
  for ((i = 0; i < FIRST_N; i++)); do
    for _ in $(seq 1 100); do generic_full && break; sleep 0.05; done
    curl -s -o /dev/null -w '%{time_total}\n' --max-time 10 -X POST -H 'Content-Type: application/json' \
      -d '{"name":"Ada"}' "http://$HADDR/fn/first-$rt-$i@1" >>"$OUT/first-$rt.txt"
  done
  label="hearth first call, never-called $rt"
  sort -n "$OUT/first-$rt.txt" >"$OUT/first-$rt.sorted"
  n=$(wc -l <"$OUT/first-$rt.sorted")
  RPS[$label]="-"
  P50[$label]="$(awk -v n="$n" 'NR == int((n - 1) * 0.5) + 1 {printf "%.2fms", $1 * 1000}' "$OUT/first-$rt.sorted")"
  P99[$label]="$(awk -v n="$n" 'NR == int((n - 1) * 0.99 + 0.5) + 1 {printf "%.2fms", $1 * 1000}' "$OUT/first-$rt.sorted")"
  ERRS[$label]="$n calls, one each"
  ROWS+=("$label")
  log "  $label: p50 ${P50[$label]}, p99 ${P99[$label]}"
done

# ---------------------------------------------------------------- many functions
log "generating $FN_COUNT tiny python functions"
FNDIR="$WORK/fns"
for ((i = 0; i < FN_COUNT; i++)); do
  d=$(printf '%s/f-%04d' "$FNDIR" "$i")
  mkdir -p "$d"
  printf 'name = "%s"\nruntime = "python"\nentry = "main.handler"\n' "$(basename "$d")" >"$d/hearth.toml"
  printf 'def handler(event):\n    name = event.get("name", "world") if isinstance(event, dict) else "world"\n    return {"greeting": f"Hello, {name}!"}\n' >"$d/main.py"
done

log "deploying $FN_COUNT functions (progress every 100)"
DEPLOYED=0
DEPLOY_NOTE=""
t0=$(date +%s)
for ((i = 0; i < FN_COUNT; i++)); do
  deploy "$(printf '%s/f-%04d' "$FNDIR" "$i")"
  DEPLOYED=$((i + 1))
  if ((DEPLOYED % 100 == 0)); then
    el=$(($(date +%s) - t0))
    log "  deployed $DEPLOYED/$FN_COUNT in ${el}s"
    # Project the total from the rate so far; fall back to 200 if too slow.
    if ((DEPLOYED >= 200 && FN_COUNT > 200)) && ((el * FN_COUNT / DEPLOYED > DEPLOY_BUDGET_S)); then
      DEPLOY_NOTE="only $DEPLOYED of $FN_COUNT deployed: projected $((el * FN_COUNT / DEPLOYED))s > ${DEPLOY_BUDGET_S}s budget"
      log "  $DEPLOY_NOTE"
      break
    fi
  fi
done
DEPLOY_S=$(($(date +%s) - t0))
log "deployed $DEPLOYED functions in ${DEPLOY_S}s"
check_call "http://$HADDR/fn/f-0000" '"Hello, Ada!"'

RR_LABEL="hearth $DEPLOYED functions round robin"
export RR_COUNT=$DEPLOYED
run_wrk "$RR_LABEL" "http://$HADDR" bench/wrk/round_robin.lua
curl -s --max-time 5 -H "Authorization: Bearer $(cat "$WORK/data/admin.token")" "http://$HADDR/api/v1/workers" >"$OUT/workers-after-rr.json" || true
# The memory all workers take: resident and proportional set sizes (Pss
# shares each shared page among the processes that map it).
MEM_NOTE=$(python3 - "$OUT/workers-after-rr.json" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    print("workers unknown"); sys.exit()
pids = [p for pool in d.get("pools", []) for p in pool.get("pids", [])]
pids += [p for g in d.get("generic", []) for p in g.get("pids", [])]
rss = pss = 0
for pid in pids:
    try:
        for line in open("/proc/%d/smaps_rollup" % pid):
            k, v = line.split(":", 1)
            if k == "Rss": rss += int(v.split()[0])
            elif k == "Pss": pss += int(v.split()[0])
    except OSError:
        pass
print("%d workers: RSS %.0f MiB, PSS %.0f MiB" % (len(pids), rss / 1024, pss / 1024))
PY
)
log "memory of the workers after the round robin: $MEM_NOTE"
ERRS[$RR_LABEL]="${ERRS[$RR_LABEL]}; $MEM_NOTE"

# Stop hearth before the uWSGI runs so it does not compete for the CPU.
log "stopping hearth"
stop_pid "$HPID" TERM

# ---------------------------------------------------------------- uWSGI
run_uwsgi() { # label, extra args...
  local label=$1; shift
  local port; port=$(free_port)
  log "starting uwsgi ($label) on 127.0.0.1:$port"
  uwsgi "$@" "127.0.0.1:$port" --plugin python3 --wsgi-file bench/uwsgi/hello.py \
    --processes 2 "${UWSGI_EXTRA[@]}" --master --disable-logging \
    >"$OUT/uwsgi-$port.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid:INT")
  wait_http "http://127.0.0.1:$port/" 20 || die "uwsgi did not start: $(tail -5 "$OUT/uwsgi-$port.log")"
  check_call "http://127.0.0.1:$port/" '"Hello, Ada!"'
  run_wrk "$label" "http://127.0.0.1:$port/" bench/wrk/post.lua
  stop_pid "$pid" INT
}
UWSGI_EXTRA=()
run_uwsgi "uwsgi http-socket" --http-socket
UWSGI_EXTRA=(--threads 32)
run_uwsgi "uwsgi http11-socket+threads" --http11-socket

# ---------------------------------------------------------------- report
to_ms() { # wrk latency like 850.00us / 1.23ms / 2.01s -> ms
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.2f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
    else printf "%s", v }'
}

{
  echo
  echo "hearth throughput, wrk -t$THREADS -c$CONNS -d$DURATION, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
  printf '%-40s %12s %10s %10s   %s\n' "target" "req/s" "p50 ms" "p99 ms" "errors"
  printf '%-40s %12s %10s %10s   %s\n' "------" "-----" "------" "------" "------"
  for r in "${ROWS[@]}"; do
    printf '%-40s %12s %10s %10s   %s\n' "$r" "${RPS[$r]}" "$(to_ms "${P50[$r]}")" "$(to_ms "${P99[$r]}")" "${ERRS[$r]}"
  done
  a=${RPS["uwsgi http-socket"]}; b=${RPS["uwsgi http11-socket+threads"]}
  best_label="uwsgi http-socket"; best=$a
  if awk -v a="$a" -v b="$b" 'BEGIN {exit !(b + 0 > a + 0)}'; then best_label="uwsgi http11-socket+threads"; best=$b; fi
  hp=${RPS["hearth python hello"]}
  echo
  echo "baseline (best uWSGI): $best_label, $best req/s"
  awk -v h="$hp" -v b="$best" 'BEGIN { if (b + 0 > 0) printf "ratio hearth python hello / best uWSGI: %.2f\n", h / b; else print "ratio: n/a" }'
  for rt in python node lua; do
    awk -v h="${RPS["hearth $rt hello"]}" -v n="${RPS["hearth $rt hello, no cells"]:-0}" -v rt="$rt" \
      'BEGIN { if (n + 0 > 0) printf "ratio hearth %s hello with cells / without (server.cells = 0): %.2f\n", rt, h / n }'
  done
  hpp=${RPS["hearth python hello, pipelined x4"]}
  awk -v h="$hpp" -v b="$best" 'BEGIN { if (b + 0 > 0) printf "ratio hearth python hello pipelined x4 / best uWSGI: %.2f\n", h / b }'
  [[ -n $DEPLOY_NOTE ]] && echo "note: $DEPLOY_NOTE"
  echo "deploy of $DEPLOYED functions took ${DEPLOY_S}s"
} 

# hearth warnings/errors seen during the run (stderr, for the record)
nwarn=$(grep -c . "$OUT/hearth.log" || true)
log "hearth log: $nwarn lines at warn level or above"
if ((nwarn > 0)); then
  grep -o 'WARN.*\|ERROR.*' "$OUT/hearth.log" | sed -E 's/f-[0-9]{4}/f-NNNN/g; s/ms=[0-9.]+/ms=N/g' | sort | uniq -c | sort -rn | head -15 >&2 || true
fi
