#!/usr/bin/env bash
# test_cli.sh — the command line as a user types it: exit codes, messages,
# `check` on good and bad configs, `run`, `help config` vs README, install.
# Prints one line per test and "RESULT passed failed" at the end.
set -u
cd "$(dirname "$0")/../.."
BIN=./v100rt
UNIT=${VRT_UNIT_TESTS:-build/release/unit_tests}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0; failed=0
OUT=$TMP/out; ERR=$TMP/err

# run CMD...: runs it, keeps stdout/stderr in $OUT/$ERR and the status in $RC.
run() { "$@" >"$OUT" 2>"$ERR"; RC=$?; }
fail() { echo "FAIL  $T: $*"; echo "  stdout: $(head -c 600 "$OUT")"; echo "  stderr: $(head -c 600 "$ERR")"; failed=$((failed + 1)); T=""; }
pass() { [ -n "$T" ] && { echo "ok    $T"; passed=$((passed + 1)); }; }
expect_rc() { [ "$RC" -eq "$1" ] || fail "exit code $RC, expected $1"; }
expect_out() { grep -qF -- "$1" "$OUT" || fail "stdout lacks: $1"; }
expect_err() { grep -qF -- "$1" "$ERR" || fail "stderr lacks: $1"; }
cfg() { printf '%s\n' "$2" > "$TMP/$1"; echo "$TMP/$1"; }

T="no arguments lists the commands, exit 2"
run $BIN; expect_rc 2; expect_out "commands:"; expect_out "check"; pass

T="unknown command suggests, exit 2"
run $BIN chekc; expect_rc 2; expect_err 'unknown command "chekc"; did you mean "check"?'; pass

T="unknown command without a close match, exit 2"
run $BIN frobnicate; expect_rc 2; expect_err 'unknown command "frobnicate"'; pass

T="help lists only commands that exist"
run $BIN help; expect_rc 0
for c in check run generate help version; do expect_out "  $c "; done
for c in serve bench quantize; do grep -q "^  $c " "$OUT" && fail "lists $c, which does not exist yet"; done
pass

T="help <command> shows usage"
run $BIN help check; expect_rc 0; expect_out "usage: v100rt check"; expect_out "--json"; pass

T="help of an unknown topic suggests, exit 2"
run $BIN help chek; expect_rc 2; expect_err 'did you mean "check"?'; pass

T="version names revision, compiler, lua and backends"
run $BIN version; expect_rc 0; expect_out "v100rt 0."; expect_out "git revision:"; expect_out "compiler:"; expect_out "LuaJIT"; expect_out "backends:"; pass

T="--version and --help work like the commands"
run $BIN --version; expect_rc 0; expect_out "git revision:"
run $BIN --help; expect_rc 0; expect_out "commands:"; pass

T="check the demo config: exit 0, resolved table with origins"
run $BIN check configs/tiny.lua; expect_rc 0
expect_out "model.path"; expect_out '"models/tiny"'; expect_out "(set)"; expect_out "device.memory_fraction             0.85"
expect_err "configs/tiny.lua: ok"; pass

T="check --json prints the resolved config as JSON"
run $BIN check --json configs/tiny.lua; expect_rc 0
expect_out '"memory_fraction": 0.85'; expect_out '"max_total_tokens": 2048'; expect_out '"quantize": null'
head -c1 "$OUT" | grep -q '{' || fail "not a JSON object"; pass

T="every shipped config passes check"
for f in configs/*.lua; do run $BIN check --quiet "$f"; [ "$RC" -eq 0 ] || fail "$f: exit $RC"; done; pass

T="seed configs carry the guide's settings"
run $BIN check --json configs/llama-2-13b-chat-gptq-2gpu.lua; expect_rc 0
expect_out '"tensor": 2'; expect_out '"max_concurrent_requests": 16'; expect_out '"quantize": "gptq"'
run $BIN check --json configs/mistral-7b-awq.lua; expect_out '"quantize": "awq"'; expect_out '"block_size": 16'; expect_out '"swap_space": 4'
pass

T="check: unknown section modle suggests model, exit 1"
F=$(cfg modle.lua 'return { model = { path = "x" }, modle = {} }')
run $BIN check "$F"; expect_rc 1; expect_err "modle: unknown key"; expect_err 'did you mean "model"?'; pass

T="check: input 5000 > total 4096 names both keys, exit 1"
F=$(cfg tot.lua 'return { model = { path = "x" }, batching = { max_input_tokens = 5000, max_total_tokens = 4096 } }')
run $BIN check "$F"; expect_rc 1; expect_err "batching.max_total_tokens (4096)"; expect_err "batching.max_input_tokens (5000)"; pass

T="check: all errors at once, counted"
F=$(cfg many.lua 'return { modle = {}, cache = { block_size = 12 }, device = { memory_fraction = 2 } }')
run $BIN check "$F"; expect_rc 1; expect_err "4 errors:"; expect_err "cache.block_size"; expect_err "device.memory_fraction"; expect_err "model.path is required"; pass

T="check: Lua syntax error names file and line, exit 1"
F=$(cfg syn.lua $'return {\n  model = { path = "x" \n}')
run $BIN check "$F"; expect_rc 1; expect_err "syn.lua:"; pass

T="check: endless loop in a config is stopped"
F=$(cfg loop.lua 'while true do end')
run timeout 60 $BIN check "$F"; expect_rc 1; expect_err "time budget"; pass

T="check: bad usage exits 2 with a suggestion"
run $BIN check; expect_rc 2; expect_err "usage: v100rt check"
run $BIN check --jsn configs/tiny.lua; expect_rc 2; expect_err "did you mean --json?"
run $BIN check a.lua b.lua; expect_rc 2; expect_err 'unexpected argument "b.lua"'; pass

T="check: missing file, exit 1"
run $BIN check /nonexistent/x.lua; expect_rc 1; expect_err "/nonexistent/x.lua"; pass

T="check: pasted TGI flags"
F=$(cfg flags.lua 'return { model = { path = "x" }, flags = "--num-shard 2 --max-total-tokens 8192 --enforce-eager" }')
run $BIN check "$F"; expect_rc 0; expect_out "(flag --num-shard)"; expect_out "kernels.cuda_graphs                false"; pass

T="run: script gets args, require v100rt and the FFI API"
F=$(cfg s.lua 'local v = require "v100rt"; local F = require "v100rt.ffi"
print(arg[0]:match("s.lua$"), arg[1], arg[2], v.VERSION == require("ffi").string(F.C.vrt_version()))
os.exit(3)')
run $BIN run "$F" one two; expect_rc 3; expect_out "s.lua	one	two	true"; pass

T="run: a Lua error prints file:line and traceback, exit 1"
F=$(cfg e.lua $'local a = 1\nerror("broken here")')
run $BIN run "$F"; expect_rc 1; expect_err "e.lua:2: broken here"; expect_err "stack traceback"; pass

T="run: no script, exit 2"
run $BIN run; expect_rc 2; expect_err "usage: v100rt run"; pass

T="help config prints the reference and README embeds it verbatim"
run $BIN help config; expect_rc 0; expect_out "batching.max_input_tokens"; expect_out "cuda_memory_fraction"
awk '/<!-- config-reference:begin -->/{f=1;next} /<!-- config-reference:end -->/{f=0} f' README.md > "$TMP/readme_ref"
diff -q "$OUT" "$TMP/readme_ref" >/dev/null || fail "README.md config reference differs from \`v100rt help config\` (run: make readme)"
pass

T="installed binary finds its Lua modules"
run make --no-print-directory install PREFIX="$TMP/prefix"
expect_rc 0
run "$TMP/prefix/bin/v100rt" check --quiet "$TMP/prefix/share/v100rt/configs/tiny.lua"; expect_rc 0; pass

T="the unit test runner isolates crashes, hangs and failures"
run env VRT_TEST_SELFCHECK=1 VRT_TEST_TIMEOUT=1 "$UNIT" selfcheck_
expect_rc 1; expect_out "RESULT 1 3"; expect_out "killed by signal"; expect_out "timed out"; expect_err "1 + 1 == 3: 2 != 3"
pass

echo "RESULT $passed $failed"
[ "$failed" -eq 0 ]
