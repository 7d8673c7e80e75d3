#!/usr/bin/env bash
# run.sh — runs every test suite and prints one line "N passed, N failed".
#
# Suites: C unit tests (fork-isolated, with a timeout each), Lua tests (run
# by v100rt's own Lua host), CLI tests. Each suite prints "RESULT p f" as its
# last line; this script adds them up. Exit status is non-zero on any failure.
# Run from the repository root (make test does).
set -u
cd "$(dirname "$0")/.."
UNIT=${VRT_UNIT_TESTS:-build/release/unit_tests}
# OpenMP threads wait passively (see runtime/main.c): much faster on a busy machine.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
# What the tests need besides the build (promtool, curl, a Python with numpy
# and the real API clients) is set up here, so `make test` works on a fresh
# machine; its venv's python3 comes first on PATH for every suite.
venv_bin=$(bash scripts/test-env.sh | tail -n 1)
export PATH="$venv_bin:$PATH"
export VRT_TEST_VENV_BIN=$venv_bin
total_p=0; total_f=0

run_suite() {
    local name=$1; shift
    echo "== $name"
    local out rc
    out=$("$@" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -v '^RESULT '
    local res p f
    res=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -1)
    if [ -z "$res" ]; then
        echo "FAIL  suite $name ended without a result (exit $rc)"
        p=0; f=1
    else
        read -r _ p f <<<"$res"
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "FAIL  suite $name exited $rc"; fi
    fi
    total_p=$((total_p + p)); total_f=$((total_f + f))
}

run_suite "C unit tests ($UNIT)" "$UNIT"
run_suite "Lua tests" timeout 600 ./v100rt run tests/lua/runner.lua tests/lua
for t in tests/cli/test_*.sh; do
    run_suite "CLI tests ($t)" timeout 600 bash "$t"
done
run_suite "End-to-end server tests" timeout 900 bash tests/e2e/run_e2e.sh

echo
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
