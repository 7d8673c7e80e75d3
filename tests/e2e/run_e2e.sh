#!/usr/bin/env bash
# run_e2e.sh — end-to-end tests of `v100rt serve`: real sockets, real clients.
#
# Makes the tiny random model and runs tests/e2e/test_serve.py in the test
# venv (build/test-venv, made by scripts/test-env.sh with the pinned clients
# of tests/e2e/requirements.txt: openai, huggingface_hub). When the clients
# are missing (no network to PyPI), the client-library tests print SKIP and
# everything else still runs. Prints one line per test and "RESULT passed failed"
# last; exit status is non-zero on any failure. Run from anywhere.
# Servers use one CPU thread (VRT_E2E_THREADS overrides): with two spinning
# threads on a shared 2-core machine a step can take 100x longer.
set -u
cd "$(dirname "$0")/../.."
BIN=${VRT_BIN:-./v100rt}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/v100rt-e2e.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

if [ ! -x "$BIN" ]; then
    echo "FAIL  e2e: $BIN is missing (run make first)"; echo "RESULT 0 1"; exit 1
fi
if ! "$BIN" mkmodel --seed 1 "$TMP/model" >"$TMP/mkmodel.log" 2>&1; then
    echo "FAIL  e2e: v100rt mkmodel failed: $(tail -c 400 "$TMP/mkmodel.log")"; echo "RESULT 0 1"; exit 1
fi

# The clients come from build/test-venv, which scripts/test-env.sh makes
# (tests/run.sh runs it first; run standalone, this script runs it too).
VENV_BIN=${VRT_TEST_VENV_BIN:-$(VRT_TEST_NO_APT=1 bash scripts/test-env.sh 2>"$TMP/venv.log" | tail -n 1)}
PY=$VENV_BIN/python3; SKIP=""
[ -x "$PY" ] || PY=python3
if ! "$PY" -c 'import openai, huggingface_hub' >>"$TMP/venv.log" 2>&1; then
    SKIP="the openai / huggingface_hub clients are not installed in $VENV_BIN (PyPI unreachable? see build/test-env.log)"
fi

timeout 600 "$PY" tests/e2e/test_serve.py --bin "$BIN" --model "$TMP/model" --tmp "$TMP" \
    --threads "${VRT_E2E_THREADS:-1}" \
    --clients-skip "$SKIP"
