#!/usr/bin/env bash
# test_cli_flags.sh — the first hour of an operator coming from TGI/vLLM:
# `serve MODEL_DIR [flags]`, flags that override a config, --device on
# generate/bench/perplexity, --help on every command, container flags,
# loading progress in logs. Exit codes and messages as a user sees them.
# Prints one line per test and "RESULT passed failed" at the end.
set -u
cd "$(dirname "$0")/../.."
BIN=./v100rt
MODEL=models-trained/kjv-tiny
TMP=$(mktemp -d)
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
        SERVER_PID=""
    fi
}
trap 'stop_server; rm -rf "$TMP"' EXIT
passed=0; failed=0
OUT=$TMP/out; ERR=$TMP/err
unset MODEL_ID PORT HOSTNAME MAX_TOTAL_TOKENS MAX_INPUT_TOKENS QUANTIZE NUM_SHARD 2>/dev/null

. tests/cli/lib.sh

# serve ARGS...: starts `v100rt serve ARGS --port-file F` in the background
# (log in $LOG) and waits (at most 60 s) until GET /health is 200; sets
# $URL. Returns 1 when the server exited or never got ready.
LOG=$TMP/serve.log
serve() {
    stop_server
    rm -f "$TMP/port"
    $BIN serve "$@" --port-file "$TMP/port" >"$LOG" 2>&1 &
    SERVER_PID=$!
    local port=""
    for _ in $(seq 1 600); do
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        [ -s "$TMP/port" ] && port=$(cat "$TMP/port")
        if [ -n "$port" ]; then
            URL=http://127.0.0.1:$port
            [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/health")" = 200 ] && return 0
        fi
        sleep 0.1
    done
    return 1
}
# served: /generate answers with text (the server really serves).
served() {
    curl -s -m 30 "$URL/generate" -H 'Content-Type: application/json' \
        -d '{"inputs": "In the beginning", "parameters": {"max_new_tokens": 4}}' >"$OUT"
    grep -q '"generated_text"' "$OUT"
}
serve_fails() { OUT=$LOG; ERR=$LOG; fail "$@"; OUT=$TMP/out; ERR=$TMP/err; }

# A config that asks for the cuda backend, like the shipped configs.
CUDA_CFG=$(cfg cuda.lua "return { model = { path = \"$PWD/$MODEL\" }, device = { kind = \"cuda\" },
  batching = { max_total_tokens = 512, max_input_tokens = 384 }, server = { port = 1 } }")
# Whether this machine can run the cuda backend (then the cuda config just works).
HAVE_CUDA=0
$BIN generate --quiet --max-new-tokens 1 "$CUDA_CFG" "In" >/dev/null 2>&1 && HAVE_CUDA=1

# ---- 1. serve MODEL_DIR [flags] ---------------------------------------------

T="serve MODEL_DIR --max-total-tokens 512 --port 8090 (the acceptance command) serves"
if curl -s -o /dev/null -m 2 http://127.0.0.1:8090/ 2>/dev/null || [ $? -ne 7 ]; then
    # Port 8090 is taken here: the same command on a free port.
    serve "$MODEL" --max-total-tokens 512 --port 0 || serve_fails "server not ready"
else
    serve "$MODEL" --max-total-tokens 512 --port 8090 || serve_fails "server not ready"
    [ "$URL" = http://127.0.0.1:8090 ] || fail "listening on $URL, not port 8090"
fi
[ -n "$T" ] && { served || fail "/generate gave no text"; }
[ -n "$T" ] && { curl -s "$URL/info" >"$OUT"; expect_out '"max_total_tokens":512'; }
pass

T="serve: flags before the positional, and a flag without a value before it"
serve --max-total-tokens 400 --port 0 --trust-remote-code "$MODEL" || serve_fails "server not ready"
[ -n "$T" ] && { served || fail "/generate gave no text"; }
[ -n "$T" ] && { curl -s "$URL/info" >"$OUT"; expect_out '"max_total_tokens":400'; }
pass

T="serve --model-id DIR (text-generation-launcher style) serves"
serve --model-id "$MODEL" --port 0 --max-input-tokens 100 --max-total-tokens 300 || serve_fails "server not ready"
[ -n "$T" ] && { served || fail "/generate gave no text"; }
[ -n "$T" ] && { curl -s "$URL/info" >"$OUT"; expect_out '"max_input_tokens":100'; expect_out '"max_total_tokens":300'; }
pass

T="serve CONFIG --port N --device cpu overrides single keys of the config"
serve "$CUDA_CFG" --port 0 --device cpu || serve_fails "server not ready"
[ -n "$T" ] && { served || fail "/generate gave no text"; }
[ -n "$T" ] && { grep -q "ready: .*cpu backend" "$LOG" || serve_fails "ready line does not say cpu backend"; }
pass

T="serve --SECTION.KEY VALUE sets any key (model.name shows in /info)"
serve "$MODEL" --port 0 --model.name renamed-model || serve_fails "server not ready"
[ -n "$T" ] && { curl -s "$URL/info" >"$OUT"; expect_out '"model_id":"renamed-model"'; }
pass

T="serve with MODEL_ID in the environment (TGI's manifests) needs no path"
MODEL_ID=$MODEL serve --port 0 || serve_fails "server not ready"
[ -n "$T" ] && { served || fail "/generate gave no text"; }
pass

T="serve without a config or a model: exit 2 naming both ways"
run $BIN serve; expect_rc 2; expect_err "CONFIG.lua|MODEL_DIR"; expect_err "--model-id"
run $BIN serve --port 9000; expect_rc 2; expect_err "--model-id"; pass

T="serve: an unknown flag is an error naming it, not ignored"
run $BIN serve "$MODEL" --max-totl-tokens 512 --port 0; expect_rc 1; expect_err "max-totl-tokens"; pass

stop_server

# ---- 2. --device on generate, bench, perplexity; the cuda hint --------------

T="generate --device cpu runs a config written for cuda"
run $BIN generate --quiet --device cpu --max-new-tokens 4 --ignore-eos "$CUDA_CFG" "In the beginning"
expect_rc 0; [ -s "$OUT" ] || fail "no text"; pass

T="bench --device cpu overrides device.kind of a config"
run $BIN bench --device cpu --batch 1 --prompt 8 --steps 2 "$CUDA_CFG"; expect_rc 0
expect_out "cpu backend"; expect_out "|     1 |      8 |"; pass

T="perplexity --device cpu overrides device.kind of a config"
printf 'In the beginning God created the heaven and the earth.\n' > "$TMP/short.txt"
run $BIN perplexity --quiet --device cpu "$CUDA_CFG" "$TMP/short.txt"; expect_rc 0; expect_out "perplexity: "; pass

T="generate, bench and perplexity read TGI's environment as serve does"
MAX_TOTAL_TOKENS=100 run $BIN generate --max-new-tokens 200 "$MODEL" "Hi"; expect_rc 1; expect_err "batching.max_total_tokens"
MAX_TOTAL_TOKENS=100 run $BIN bench --device cpu --batch 1 --prompt 90 --steps 16 "$MODEL"; expect_rc 2; expect_err "exceed the model's 100 total tokens"
MAX_TOTAL_TOKENS=64 run $BIN perplexity --quiet "$MODEL" "$TMP/short.txt"; expect_rc 0; expect_out "window of 64"
pass

T="--device with a bad kind is refused naming device.kind"
run $BIN generate --device gpu "$MODEL" "Hi"; expect_rc 1; expect_err "device.kind"
run $BIN bench --device gpu "$MODEL"; expect_rc 1; expect_err "device.kind"; pass

T="a cuda config on a machine without the cuda backend says --device cpu"
if [ "$HAVE_CUDA" = 1 ]; then
    echo "  (this machine runs the cuda backend: the cuda config worked, no error to read)"
else
    for c in generate perplexity; do
        run $BIN $c "$CUDA_CFG" "$TMP/short.txt"; expect_rc 1; expect_err "--device cpu"; expect_err 'device.kind = "cpu"'
    done
    run $BIN bench --batch 1 --prompt 8 --steps 2 "$CUDA_CFG"; expect_rc 1; expect_err "--device cpu"
    serve "$CUDA_CFG" --port 0; grep -qF -- "--device cpu" "$LOG" || serve_fails "serve log lacks --device cpu"
    stop_server
fi
pass

T="a cuda library whose driver finds no GPU: the error says --device cpu too"
# A stand-in libv100rt-cuda.so (V100RT_CUDA_LIB) that fails to open a device
# the way the real one does on a machine with a driver and no GPU.
cat > "$TMP/fakecuda.c" <<'C'
#include <stdio.h>
typedef struct { int code; char msg[4096]; } err_t;
const int vrt_cuda_backend_abi = ABI;
int vrt_cuda_device_count(void) { return 0; }
int vrt_cuda_backend_create_dev(void **out, int threads, int custom, int dev, err_t *e)
{
    (void)threads; (void)custom; (void)dev; *out = 0;
    e->code = -9;
    snprintf(e->msg, sizeof e->msg, "cudaSetDevice(0): no CUDA-capable device is detected");
    return -9;
}
C
# It exports the binary's plugin ABI version, which the binary checks first.
ABI=$(sed -n 's/^#define VRT_BACKEND_ABI_VERSION \([0-9]*\).*/\1/p' runtime/backend/backend.h)
if ${CC:-cc} -shared -fPIC -DABI="$ABI" -o "$TMP/libfakecuda.so" "$TMP/fakecuda.c" 2>"$ERR"; then
    V100RT_CUDA_LIB=$TMP/libfakecuda.so run $BIN generate "$CUDA_CFG" "In"; expect_rc 1
    expect_err "no CUDA-capable device is detected"; expect_err "--device cpu"
    V100RT_CUDA_LIB=$TMP/libfakecuda.so run $BIN generate --device cpu --quiet --max-new-tokens 2 "$CUDA_CFG" "In"; expect_rc 0
else
    fail "cannot compile the stand-in library"
fi
pass

# ---- 3. --help / -h on every command ----------------------------------------

T="--help and -h on every command print its usage to stdout, exit 0"
for c in check mkmodel run serve plan bench generate perplexity quantize help version; do
    for h in --help -h; do
        run $BIN $c $h; expect_rc 0; expect_out "usage: v100rt $c"; [ -s "$ERR" ] && fail "$c $h wrote to stderr"
    done
done
pass

T="--help after other arguments still prints the help"
run $BIN generate --max-new-tokens 5 --help; expect_rc 0; expect_out "usage: v100rt generate"
run $BIN serve "$MODEL" --port 0 --help; expect_rc 0; expect_out "usage: v100rt serve"
run $BIN bench "$MODEL" -h; expect_rc 0; expect_out "usage: v100rt bench"; pass

T="run SCRIPT --help passes --help to the script; run --help is run's help"
S=$(cfg args.lua 'print("args:", arg[1], arg[2])')
run $BIN run "$S" --help -h; expect_rc 0; expect_out "args:	--help	-h"
run $BIN run --help; expect_rc 0; expect_out "usage: v100rt run"; pass

T="help serve shows the new usage"
run $BIN help serve; expect_rc 0; expect_out "usage: v100rt serve CONFIG.lua|MODEL_DIR [FLAGS]"
expect_out "--device KIND"; expect_out "--port-file FILE"; pass

T="every --option a command's help lists is one it takes"
for c in mkmodel bench generate perplexity quantize plan; do
    for o in $($BIN help $c | grep -o -- '--[a-z][a-z-]*' | sort -u); do
        run $BIN $c $o; grep -q "unknown option" "$ERR" && fail "$c: $o (in its help) is an unknown option"
    done
done
run $BIN generate --no-such-option; expect_rc 2; expect_err "unknown option"
# serve's flags go to the config loader: each one listed sets its key.
for o in $($BIN help serve | grep -o -- '--[a-z][a-z._-]*[a-z]' | sort -u); do
    case $o in
        --ipc|--shm-size|--ulimit|--gpus) continue ;;  # listed as refused; tested below
        --port-file) continue ;;                       # serve's own, used by every serve test
        --device) v=cpu; key=device.kind ;;
        --port) v=1234; key=server.port ;;
        --host) v=0.0.0.0; key=server.host ;;
        --threads) v=3; key=device.threads ;;
        --max-total-tokens) v=300; key=batching.max_total_tokens ;;
        --max-num-seqs|--batching.max_batch_size) v=5; key=batching.max_batch_size ;;
        --model-id) v=$MODEL; key=model.path ;;
        *) fail "serve's help lists $o: add it to this test"; continue ;;
    esac
    run $BIN check "$MODEL" "$o" "$v"; expect_rc 0
    grep -q "^$key .*(flag $o)" "$OUT" || fail "$o does not set $key"
done
pass

# ---- 4. container runtime flags ----------------------------------------------

T="container runtime flags pasted into serve point to the README, Kubernetes"
for f in "--ipc=host" "--ulimit memlock=-1" "--shm-size 1g" "--gpus all"; do
    # shellcheck disable=SC2086
    run $BIN serve "$MODEL" --port 0 $f; expect_rc 1
    expect_err "container runtime flag"; expect_err "Kubernetes"; expect_no_err "unknown option"
done
run $BIN serve --ipc=host "$MODEL"; expect_err "container runtime flag"; pass

# ---- 5. loading progress ------------------------------------------------------

T="without a terminal, loading progress is logged at INFO (start and end lines)"
run $BIN generate --max-new-tokens 1 "$MODEL" "In"; expect_rc 0
expect_err "INFO  loading $MODEL: 56 tensors, 10.30 MiB"; expect_err "INFO  loaded $MODEL: 56 tensors, 10.30 MiB in"
grep -q $'\r' "$ERR" && fail "a progress bar (carriage return) in a log"
pass

T="serve logs the loading progress to a log file"
serve "$MODEL" --port 0 || serve_fails "server not ready"
[ -n "$T" ] && { grep -q "INFO  loaded $MODEL: 56 tensors" "$LOG" || serve_fails "no loaded line"; }
stop_server; pass

T="on a terminal, loading draws the progress bar instead"
# script(1) gives the command a pseudo-terminal; a container or chroot
# without /dev/pts has none, and then there is no terminal to test.
if ! why=$(script -qec true /dev/null 2>&1 </dev/null); then
    echo "skip  $T (no pseudo-terminal here: $why)"
else
    script -qec "$BIN generate --max-new-tokens 1 $MODEL In" /dev/null >"$OUT" 2>&1 </dev/null
    ERR=$OUT; expect_err "loading [==="; expect_err "56/56 tensors"; expect_no_err "INFO  loaded"
    ERR=$TMP/err; pass
fi

echo "RESULT $passed $failed"
[ "$failed" -eq 0 ]
