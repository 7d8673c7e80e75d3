#!/usr/bin/env bash
# run_e2e.sh — end-to-end tests of `v100rt serve`: real sockets, real clients.
#
# Makes the tiny random model, sets up build/e2e-venv with the pinned client
# libraries of tests/e2e/requirements.txt (openai, huggingface_hub) and runs
# tests/e2e/test_serve.py in it. When the venv cannot be made (no network to
# PyPI), the client-library tests print SKIP and everything else still runs
# with the system python3. Prints one line per test and "RESULT passed failed"
# last; exit status is non-zero on any failure. Run from anywhere.
# Servers use one CPU thread (VRT_E2E_THREADS overrides): with two spinning
# threads on a shared 2-core machine a step can take 100x longer.
set -u
cd "$(dirname "$0")/../.."
BIN=${VRT_BIN:-./v100rt}
VENV=${VRT_E2E_VENV:-build/e2e-venv}
REQ=tests/e2e/requirements.txt
TMP=$(mktemp -d "${TMPDIR:-/tmp}/v100rt-e2e.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

if [ ! -x "$BIN" ]; then
    echo "FAIL  e2e: $BIN is missing (run make first)"; echo "RESULT 0 1"; exit 1
fi
if ! "$BIN" mkmodel --seed 1 "$TMP/model" >"$TMP/mkmodel.log" 2>&1; then
    echo "FAIL  e2e: v100rt mkmodel failed: $(tail -c 400 "$TMP/mkmodel.log")"; echo "RESULT 0 1"; exit 1
fi

# The venv is reused while requirements.txt is unchanged (a stamp holds its hash).
PY=python3; SKIP=""
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements-sha256" 2>/dev/null)" != "$want" ]; then
    rm -rf "$VENV"
    if timeout 60 python3 -m venv "$VENV" >"$TMP/venv.log" 2>&1 &&
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=15 timeout 300 \
            "$VENV/bin/pip" install -q --retries 1 -r "$REQ" >>"$TMP/venv.log" 2>&1; then
        echo "$want" >"$VENV/.requirements-sha256"
    else
        SKIP="could not pip install $REQ into $VENV (PyPI unreachable?): $(tail -n 1 "$TMP/venv.log" | cut -c1-160)"
        rm -rf "$VENV"
    fi
fi
[ -z "$SKIP" ] && PY=$VENV/bin/python

timeout 600 "$PY" tests/e2e/test_serve.py --bin "$BIN" --model "$TMP/model" --tmp "$TMP" \
    --threads "${VRT_E2E_THREADS:-1}" \
    --clients-skip "$SKIP"
