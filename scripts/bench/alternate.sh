#!/usr/bin/env bash
# Alternating A/B runs of two (or more) builds of Trove on this machine: each
# round starts a fresh cluster from each checkout in turn (its own `dist/`,
# its own empty STORAGE_DIR), pauses the worker, runs 10 s of 64 KiB load
# with scripts/bench/profile-load.ts and prints one line per run (rate, p50,
# p99, CPU per request of each process), then stops the cluster. Alternating
# spreads the drift of a shared machine over both sides.
#
# usage: scripts/bench/alternate.sh <rounds> put|get <connections> <checkout>...
#   e.g. scripts/bench/alternate.sh 3 get 64 /path/to/main /path/to/change
# Each checkout needs `npm run build` first; a `.abenv` file in one is read as
# extra environment for its cluster (e.g. DOWNLOAD_CACHE_BYTES=0).
# DURATION (default 10) sets the seconds per run. Uses port 8080 and kills
# any `dist/scripts/start.js` when a run ends: run nothing else of Trove meanwhile.
set -u
[ $# -ge 4 ] || { sed -n '2,16p' "$0"; exit 2; }
rounds=$1; what=$2; conns=$3; shift 3
here=$(cd "$(dirname "$0")/../.." && pwd)
for r in $(seq 1 "$rounds"); do
  for d in "$@"; do
    sd=$(mktemp -d /tmp/trove-alternate.XXXXXX)
    (cd "$d" && { [ -f .abenv ] && set -a && . ./.abenv && set +a; true; } &&
      RATE_LIMITS=off STORAGE_DIR=$sd setsid node dist/scripts/start.js >"$sd/start.log" 2>&1 &)
    for _ in $(seq 1 100); do
      curl -sf http://127.0.0.1:8080/ready >/dev/null 2>&1 && [ -f "$sd/run/worker.pid" ] && break
      sleep 0.3
    done
    kill -STOP "$(cat "$sd/run/worker.pid")"
    load() { (cd "$here" && STORAGE_DIR=$sd node --import tsx scripts/bench/profile-load.ts "$@" 2>&1); }
    [ "$what" = get ] && load prepare --ids "$sd/ids.json" >/dev/null
    out=$(load "$what" --ids "$sd/ids.json" --connections "$conns" --duration "${DURATION:-10}")
    echo "$(basename "$d") r$r: $(echo "$out" | grep -E '^(PUT|GET)' | sed 's/.*measured/measured/') |" \
      "$(echo "$out" | grep -o -- '--cpu [a-z0-9]*=[0-9.]*' | sed 's/--cpu //' | tr '\n' ' ')"
    kill -CONT "$(cat "$sd/run/worker.pid")" 2>/dev/null
    pkill -INT -f "dist/scripts/start.js"
    for _ in $(seq 1 60); do
      pgrep -f "dist/(scripts/start|gateway/main|storage-node/main|worker/main).js" >/dev/null || break
      sleep 0.5
    done
    rm -rf "$sd"
  done
done
