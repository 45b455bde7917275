#!/usr/bin/env bash
# How long moving a process into a cgroup takes on this host (cgroup v1
# memory controller): the first move after a quiet second, then one right
# after it. Explains the first-call cost of workers that are not pre-started
# (docs/BENCHMARKS.md). Needs root and a v1 memory hierarchy; cleans up.
#
# Usage: bench/cgroup_move.sh [rounds]     (default 5)
set -euo pipefail
ROUNDS=${1:-5}
[[ $(id -u) -eq 0 ]] || { echo "needs root (it creates a cgroup)" >&2; exit 1; }
own=$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
base=/sys/fs/cgroup/memory${own%/}
[[ -w $base ]] || { echo "no writable v1 memory cgroup at $base" >&2; exit 1; }
cg="$base/hearth-bench-move-$$"
mkdir "$cg"
sleep 1000 & a=$!
sleep 1000 & b=$!
cleanup() {
  kill "$a" "$b" 2>/dev/null || true
  wait 2>/dev/null || true
  rmdir "$cg" 2>/dev/null || true
}
trap cleanup EXIT
# One process moves in (and back out) per write; each write is timed.
timed_move() { # pid, target dir -> prints ms
  local t0 t1
  t0=$(date +%s%N)
  echo "$1" >"$2/cgroup.procs"
  t1=$(date +%s%N)
  awk -v d=$((t1 - t0)) 'BEGIN { printf "%.2f", d / 1e6 }'
}
echo "round  first move (after 1 s quiet)  next move (right after)"
for ((r = 1; r <= ROUNDS; r++)); do
  sleep 1
  first=$(timed_move "$a" "$cg")
  next=$(timed_move "$b" "$cg")
  printf '%5d  %24s ms  %22s ms\n' "$r" "$first" "$next"
  echo "$a" >"$base/cgroup.procs"; echo "$b" >"$base/cgroup.procs"
done
