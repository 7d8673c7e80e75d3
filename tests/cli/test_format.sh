#!/usr/bin/env bash
# test_format.sh — every C, C++ and CUDA source is formatted as
# .clang-format says (`make fmt` fixes it; `make fmt-check` is this check).
# clang-format comes from Debian (scripts/deps.sh --test installs it); the
# style is checked with Debian 12's clang-format 14.
# Prints one line per test and "RESULT passed failed" last.
set -u
cd "$(dirname "$0")/../.."
passed=0; failed=0
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
T="format: the sources are clang-formatted (make fmt-check)"
if ! command -v clang-format >/dev/null; then
    echo "FAIL  $T: clang-format is missing (bash scripts/deps.sh --test installs it)"
    failed=1
elif make -s fmt-check >"$OUT" 2>&1; then
    echo "ok    $T"; passed=1
else
    echo "FAIL  $T: run \`make fmt\` (first differences below)"
    grep -m 20 "error:" "$OUT" | sed 's/^/  /'
    failed=1
fi
echo "RESULT $passed $failed"
[ "$failed" -eq 0 ]
