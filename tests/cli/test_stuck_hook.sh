#!/usr/bin/env bash
# test_stuck_hook.sh — `v100rt serve` with a scheduling-policy hook that gets
# stuck inside a C function (string.find with a pathological pattern, where
# the Lua time budget cannot fire): only that request fails (500, error_type
# "policy"), the server keeps serving (first come, first served from then
# on, the policy disabled with one ERROR line naming the request), and
# SIGTERM still drains and exits — also while a stuck hook is in flight.
# Every wait is bounded; a server left behind is killed (kill -9) on exit.
# Prints one line per test and "RESULT passed failed" last.
set -u
cd "$(dirname "$0")/../.."
BIN=./v100rt
MODEL=$PWD/models-trained/kjv-tiny
TMP=$(mktemp -d)
PID=""
cleanup() {
    [ -n "${KEEP_LOG:-}" ] && cp "$TMP"/log* "$KEEP_LOG"/ 2>/dev/null
    [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
passed=0; failed=0
T=""
fail() { echo "FAIL  $T: $*"; echo "  log: $(tail -c 800 "$TMP/log" 2>/dev/null)"; failed=$((failed + 1)); T=""; }
pass() { [ -n "$T" ] && { echo "ok    $T"; passed=$((passed + 1)); }; }

if [ ! -x "$BIN" ] || [ ! -d "$MODEL" ]; then
    echo "FAIL  stuck hook: $BIN or $MODEL is missing (run make first)"; echo "RESULT 0 1"; exit 1
fi

cat >"$TMP/config.lua" <<EOF
local stuck = function() string.find(("a"):rep(40), ("a*"):rep(20) .. "b") end
local function tenant(req) return req.tenant ~= nil and require("ffi").string(req.tenant) or "" end
return {
  model = { path = "$MODEL", name = "tiny" },
  device = { kind = "cpu", threads = 1 },
  batching = { max_input_tokens = 128, max_total_tokens = 256, policy = {
    admit = function(req) return tenant(req) ~= "refused" end,
    priority = function(req)
      if tenant(req) == "stuck" then stuck() end
      return 0
    end,
  } },
}
EOF

# start: serves the config on a free port; sets PID and PORT.
start() {
    rm -f "$TMP/port"
    "$BIN" serve "$TMP/config.lua" --port 0 --port-file "$TMP/port" >"$TMP/log" 2>&1 </dev/null &
    PID=$!
    PORT=""
    for _ in $(seq 600); do # 60 s
        if [ -s "$TMP/port" ] && [ "$(tail -c 1 "$TMP/port" | od -An -c | tr -d ' ')" = '\n' ]; then
            PORT=$(tr -d '\n' <"$TMP/port"); break
        fi
        kill -0 "$PID" 2>/dev/null || return 1
        sleep 0.1
    done
    [ -n "$PORT" ] || return 1
    for _ in $(seq 600); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$PORT/health")" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}

# gen TENANT: POST /generate as TENANT; the body goes to $TMP/body, prints the status.
gen() {
    curl -s -o "$TMP/body" -w '%{http_code}' --max-time 30 -H 'Content-Type: application/json' \
        -H "X-Tenant: $1" -d '{"inputs": "In the beginning", "parameters": {"max_new_tokens": 4}}' \
        "http://127.0.0.1:$PORT/generate"
}

# stop_within SECONDS: SIGTERM, then waits for the exit; sets RC (124: still running).
stop_within() {
    kill -TERM "$PID" 2>/dev/null
    RC=124
    for _ in $(seq $(($1 * 10))); do
        if ! kill -0 "$PID" 2>/dev/null; then
            wait "$PID"; RC=$?; PID=""; return
        fi
        sleep 0.1
    done
}

T="serve starts with the policy"
start || fail "the server did not come up"; pass

T="the policy runs: its admit hook refuses tenant \"refused\" (429)"
st=$(gen refused); [ "$st" = 429 ] || fail "status $st: $(head -c 300 "$TMP/body")"; pass

T="a hook stuck in C fails only its request: 500 error_type policy, no file paths"
st=$(gen stuck)
[ "$st" = 500 ] || fail "status $st: $(head -c 300 "$TMP/body")"
grep -q '"error_type":"policy"' "$TMP/body" || fail "body: $(head -c 300 "$TMP/body")"
grep -q 'the scheduling policy failed for this request' "$TMP/body" || fail "body: $(head -c 300 "$TMP/body")"
grep -q 'did not return within' "$TMP/log" || fail "the log lacks the reason"
grep -q '\.lua:' "$TMP/body" && fail "a file path went to the client: $(head -c 300 "$TMP/body")"
pass

T="the server keeps serving, first come first served: \"ok\" and \"refused\" get 200"
st=$(gen ok); [ "$st" = 200 ] || fail "ok: status $st: $(head -c 300 "$TMP/body")"
st=$(gen refused); [ "$st" = 200 ] || fail "refused: status $st: $(head -c 300 "$TMP/body")"
st=$(gen stuck); [ "$st" = 200 ] || fail "stuck again: status $st: $(head -c 300 "$TMP/body")"
pass

T="one ERROR line, naming the request id the server logs at INFO"
n=$(grep -c 'ERROR.*did not return within' "$TMP/log")
[ "$n" = 1 ] || fail "$n ERROR lines"
id=$(grep 'ERROR.*did not return within' "$TMP/log" | sed -n 's/.*engine: request \([^:]*\):.*/\1/p')
[ -n "$id" ] && grep -q "INFO  request $id POST /generate status=500" "$TMP/log" ||
    fail "engine id \"$id\" is not the one of the server's 500 line"
pass

cp "$TMP/log" "$TMP/log1"
T="SIGTERM drains and exits 0"
stop_within 30; [ "$RC" = 0 ] || fail "exit status $RC"; pass

T="SIGTERM while a stuck hook is in flight: the request fails, the server exits"
start || fail "the server did not come up again"
gen stuck >"$TMP/status2" &
CURL=$!
sleep 0.3
stop_within 30
[ "$RC" = 0 ] || fail "exit status $RC"
wait "$CURL"
[ "$(cat "$TMP/status2")" = 500 ] || fail "the stuck request got $(cat "$TMP/status2")"
pass

echo "RESULT $passed $failed"
[ "$failed" -eq 0 ]
