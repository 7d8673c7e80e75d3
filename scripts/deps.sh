#!/usr/bin/env bash
# deps.sh — install what v100rt's build needs, from Debian packages only.
#
# Checks each dependency (a command, a pkg-config module or a header) and
# installs only the packages that are missing; does nothing when all are
# present. Runs apt-get update first when something is missing. As non-root it
# uses sudo. Works without a terminal (CI).
#
# HTTP/1.1 parser: Debian 12 packages libhttp-parser-dev (nodejs/http-parser
# 2.9): a small, callback-based, allocation-free C parser, the only HTTP/1.1
# parser library Debian 12 ships as a -dev package (llhttp is not packaged
# there).
set -euo pipefail

# --test also installs what only the tests use: promtool (Debian package
# prometheus) to check /metrics, curl, clang-format (the style check,
# tests/cli/test_format.sh), and python3 with venv, in which
# scripts/test-env.sh (run by `make test`) installs numpy and the real
# openai / huggingface_hub clients.
test_deps=0
[ "${1:-}" = "--test" ] && test_deps=1

missing=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need_pc() { pkg-config --exists "$1" 2>/dev/null || missing+=("$2"); }
need_hdr() { [ -e "/usr/include/$1" ] || missing+=("$2"); }

need_cmd gcc gcc
need_cmd g++ g++
need_cmd make make
need_cmd git git
need_cmd pkg-config pkg-config
need_pc luajit libluajit-5.1-dev
need_pc libuv libuv1-dev
need_pc libcjson libcjson-dev
need_pc libpcre2-8 libpcre2-dev
need_hdr http_parser.h libhttp-parser-dev
# OpenMP runtime for gcc comes with gcc (libgomp); nothing else to add.
if [ "$test_deps" -eq 1 ]; then
    need_cmd promtool prometheus
    need_cmd curl curl
    need_cmd clang-format clang-format
    need_cmd python3 python3
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all build dependencies are present"
    exit 0
fi

# pkg-config itself missing makes every pkg-config check fail: dedupe.
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "deps: installing ${pkgs[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: need root or sudo to install ${pkgs[*]}" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" </dev/null
echo "deps: done"
