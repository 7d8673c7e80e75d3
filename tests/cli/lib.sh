# lib.sh — helpers shared by the command-line test scripts (sourced; the
# script sets TMP, OUT, ERR, passed and failed first). A test sets T to its
# name, runs commands with `run`, checks with expect_*, and ends with pass.

# run CMD...: runs it, keeps stdout/stderr in $OUT/$ERR and the status in $RC.
run() { "$@" >"$OUT" 2>"$ERR"; RC=$?; }
fail() { echo "FAIL  $T: $*"; echo "  stdout: $(head -c 600 "$OUT")"; echo "  stderr: $(head -c 600 "$ERR")"; failed=$((failed + 1)); T=""; }
pass() { [ -n "$T" ] && { echo "ok    $T"; passed=$((passed + 1)); }; }
expect_rc() { [ "$RC" -eq "$1" ] || fail "exit code $RC, expected $1"; }
expect_out() { grep -qF -- "$1" "$OUT" || fail "stdout lacks: $1"; }
expect_err() { grep -qF -- "$1" "$ERR" || fail "stderr lacks: $1"; }
expect_no_err() { ! grep -qF -- "$1" "$ERR" || fail "stderr has: $1"; }
# cfg NAME TEXT: writes a config file into $TMP and prints its path.
cfg() { printf '%s\n' "$2" > "$TMP/$1"; echo "$TMP/$1"; }
