#!/usr/bin/env bash
# test_config_keys.sh — config keys whose effect only a running server shows:
# `v100rt serve` with a config file, probed with curl. Each block names the
# keys it proves (tests/lua/key_tests.lua lists them by these names).
# Prints one line per test and "RESULT passed failed" at the end.
set -u
cd "$(dirname "$0")/../.."
BIN=./v100rt
TMP=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
passed=0; failed=0

fail() { echo "FAIL  $T: $*"; echo "  log: $(tail -c 600 "$TMP/log" 2>/dev/null)"; failed=$((failed + 1)); T=""; }
pass() { [ -n "$T" ] && { echo "ok    $T"; passed=$((passed + 1)); }; }

# serve CONFIG_BODY [ENV...]: starts `v100rt serve` on a config with
# model.path = the trained tiny model, waits for /health on $HOST; sets PORT.
serve() {
  local body=$1; shift
  case "$body" in *device*) dev="";; *) dev='device = { kind = "cpu", threads = 2 },';; esac
  printf 'return { model = { path = "models-trained/kjv-tiny" }, %s\n%s }\n' "$dev" "$body" > "$TMP/cfg.lua"
  rm -f "$TMP/port"
  env "$@" $BIN serve "$TMP/cfg.lua" --port-file "$TMP/port" > "$TMP/log" 2>&1 &
  PID=$!
  for _ in $(seq 600); do
    if [ -s "$TMP/port" ] && grep -q . "$TMP/port"; then
      PORT=$(cat "$TMP/port")
      curl -s -o /dev/null -w '%{http_code}' "http://$HOST:$PORT/health" 2>/dev/null | grep -q 200 && return 0
    fi
    kill -0 "$PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
stop() { kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=; }
code() { curl -s -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}' "$@"; }

T="serve: server.host and server.port are where it listens"
HOST=127.0.0.2
FREE=$(( 20000 + $$ % 20000 ))
if serve "server = { host = \"127.0.0.2\", port = $FREE }"; then
  [ "$PORT" = "$FREE" ] || fail "port file says $PORT, server.port is $FREE"
  [ "$(code "http://127.0.0.2:$FREE/health")" = 200 ] || fail "nothing on 127.0.0.2:$FREE"
  c=$(code --max-time 5 "http://127.0.0.1:$FREE/health"); [ "$c" = 000 ] || fail "127.0.0.1 answered $c: not bound to server.host"
else fail "serve did not start"; fi
stop; pass

T="serve: server.api_keys and server.cors_allow_origin"
HOST=127.0.0.1
if serve 'server = { port = 0, api_keys = { "k-123" }, cors_allow_origin = { "https://ui.example" } }'; then
  [ "$(code "http://$HOST:$PORT/info")" = 401 ] || fail "/info without a key is not 401"
  [ "$(code -H 'Authorization: Bearer k-123' "http://$HOST:$PORT/info")" = 200 ] || fail "/info with the key is not 200"
  code -H 'Authorization: Bearer k-123' -H 'Origin: https://ui.example' "http://$HOST:$PORT/info" >/dev/null
  grep -qi '^access-control-allow-origin: https://ui.example' "$TMP/headers" || fail "no CORS header for the allowed origin"
  code -H 'Authorization: Bearer k-123' -H 'Origin: https://evil.example' "http://$HOST:$PORT/info" >/dev/null
  grep -qi '^access-control-allow-origin' "$TMP/headers" && fail "CORS header for an origin not listed"
else fail "serve did not start"; fi
stop; pass

T="serve: logs the NCCL variables it applied and those the environment kept"
if serve 'server = { port = 0 }, nccl = { debug = "WARN", p2p_level = "PIX" }' NCCL_P2P_LEVEL=SYS; then
  grep -q 'INFO  nccl: set NCCL_DEBUG=WARN' "$TMP/log" || fail "no INFO line with the NCCL variables set"
  grep -q 'left as the environment has them: NCCL_P2P_LEVEL=SYS' "$TMP/log" || fail "the kept variable is not logged"
else fail "serve did not start"; fi
stop; pass

T="serve: logging.format json and logging.level warn"
# device.gpus = {0, 1} makes a warning (only the first GPU is used) to see.
if serve 'server = { port = 0 }, logging = { level = "warn", format = "json" }, device = { kind = "cpu", gpus = { 0, 1 } }'; then
  stop
  grep -q '"level":"info"' "$TMP/log" && fail "an INFO line at logging.level = warn"
  grep -v '^{' "$TMP/log" | grep -q 'Z INFO\|Z WARN' && fail "a text log line with logging.format = json"
  grep -q '^{"ts":.*"level":"warn".*only the first, GPU 0' "$TMP/log" || fail "no JSON warning line"
else fail "serve did not start"; fi
stop; pass

echo "RESULT $passed $failed"
[ "$failed" -eq 0 ]
