#!/usr/bin/env bash
# bench.sh — `make bench`: serves a config on a free loopback port, runs the
# HTTP load generator (examples/bench/serve.lua) against it and appends the
# table to examples/bench/RESULTS.md (CSV rows to examples/bench/serve.csv).
#
#   scripts/bench.sh [CONFIG] [extra serve.lua options...]
#   BENCH_CONFIG=my.lua BENCH_ARGS="--concurrency 1,8 --max-tokens 128" make bench
#
# A benchmark reports; it never fails on a time. Exit status is non-zero only
# when the server does not come up or the client cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=${1:-${BENCH_CONFIG:-examples/bench/tiny-bench.lua}}
[ $# -gt 0 ] && shift
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
./v100rt serve --port 0 --port-file "$tmp/port" "$cfg" >"$tmp/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    if [ -s "$tmp/port" ] && curl -sf "http://127.0.0.1:$(cat "$tmp/port")/health" >/dev/null 2>&1; then
        break
    fi
    kill -0 "$pid" 2>/dev/null || { echo "bench: the server exited:"; tail -20 "$tmp/serve.log"; exit 1; }
    sleep 0.1
done
port=$(cat "$tmp/port")
echo "bench: serving $cfg on 127.0.0.1:$port"
# shellcheck disable=SC2086
./v100rt run examples/bench/serve.lua --url "http://127.0.0.1:$port" ${BENCH_ARGS:-} "$@"
kill -TERM "$pid"
wait "$pid" || true
