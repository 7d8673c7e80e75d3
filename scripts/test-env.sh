#!/usr/bin/env bash
# test-env.sh — what `make test` needs besides the build, set up by itself so
# that the README's two commands work on a fresh Debian machine:
#
#   1. Debian packages only the tests use (scripts/deps.sh --test): promtool
#      (prometheus), curl, python3 with venv. Installed when missing (root or
#      sudo); without either, the tests that need them say so.
#   2. build/test-venv: a Python virtual environment with the pinned packages
#      of tests/requirements.txt (numpy, for the quantized-model fixtures) and
#      tests/e2e/requirements.txt (the real openai and huggingface_hub
#      clients), from PyPI. It is made from whatever `python3` is first on
#      PATH (Debian's or another, e.g. pyenv), so the tests never depend on
#      which interpreter Debian's python3-numpy serves; it is reused while
#      both files are unchanged. Without PyPI it falls back to a venv over
#      Debian's /usr/bin/python3 with its site packages (python3-numpy); the
#      client tests then skip.
#
# The last line printed is the venv's bin directory; tests/run.sh puts it
# first on PATH so every test's `python3` is that interpreter.
set -u
cd "$(dirname "$0")/.."
VENV=${VRT_TEST_VENV:-build/test-venv}
REQS="tests/requirements.txt tests/e2e/requirements.txt"
log=build/test-env.log
mkdir -p build
: >"$log"

if [ "${VRT_TEST_NO_APT:-0}" != 1 ]; then
    bash scripts/deps.sh --test >>"$log" 2>&1 ||
        echo "test-env: scripts/deps.sh --test failed (see $log); tests that need promtool, curl or python3-venv will say so" >&2
fi

want=$(cat $REQS | sha256sum | cut -d' ' -f1)
have=$(cat "$VENV/.requirements-sha256" 2>/dev/null)
if [ "$have" != "$want" ] || [ ! -x "$VENV/bin/python3" ]; then
    rm -rf "$VENV"
    echo "test-env: making $VENV (pip install $REQS)" >&2
    ok=0
    if timeout 120 python3 -m venv "$VENV" >>"$log" 2>&1; then
        req_args=()
        for r in $REQS; do req_args+=(-r "$r"); done
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=20 timeout 600 \
            "$VENV/bin/python3" -m pip install -q --retries 2 "${req_args[@]}" >>"$log" 2>&1 && ok=1
    fi
    if [ "$ok" = 1 ]; then
        echo "$want" >"$VENV/.requirements-sha256"
    else
        echo "test-env: pip install failed (PyPI unreachable?), falling back to Debian's python3 with python3-numpy; see $log" >&2
        rm -rf "$VENV"
        if [ "${VRT_TEST_NO_APT:-0}" != 1 ] && ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
            SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
                python3-numpy python3-venv </dev/null >>"$log" 2>&1
        fi
        /usr/bin/python3 -m venv --system-site-packages --without-pip "$VENV" >>"$log" 2>&1 ||
            echo "test-env: cannot make $VENV; python tests will fail (see $log)" >&2
        # no stamp: the next run tries PyPI again
    fi
fi
echo "$(cd "$VENV/bin" 2>/dev/null && pwd || echo "$PWD/$VENV/bin")"
