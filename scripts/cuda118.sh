#!/usr/bin/env bash
# cuda118.sh — install Debian bookworm's CUDA 11.8 toolkit (nvidia-cuda-toolkit,
# component non-free) so that `make check-sm70` can compile the kernels for
# sm_70 (V100): CUDA 13 has dropped Volta. See docs/design.md, "CUDA without a GPU".
#
# Does nothing when /usr/bin/nvcc (Debian's 11.8) and a host compiler it accepts
# (clang-14, else g++-11) are present. Otherwise adds an apt sources entry for
# bookworm with `contrib non-free` (same mirror as the machine's Debian entry),
# runs apt-get update and installs with --no-install-recommends (about 2.5 GB).
# As non-root it uses sudo. Works without a terminal.
set -euo pipefail

missing=()
[ -x /usr/bin/nvcc ] || missing+=(nvidia-cuda-toolkit)
command -v clang-14 >/dev/null 2>&1 || command -v g++-11 >/dev/null 2>&1 || missing+=(clang-14)

if [ ${#missing[@]} -eq 0 ]; then
    echo "cuda118: /usr/bin/nvcc and a host compiler are present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "cuda118: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
fi

# Reuse the mirror the machine's Debian entry already uses (deb822 or one-line).
# Only URIs:/deb lines count (a comment may name another mirror, e.g. a snapshot).
mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
    grep -E '^[[:space:]]*(URIs:|deb[[:space:]])' |
    grep -oE 'https?://[^ ]*/debian/?([[:space:]]|$)' | tr -d '[:space:]' |
    sed 's:/$::' | head -n1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
list=/etc/apt/sources.list.d/v100rt-nonfree.list
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
opts=""
[ -e "$keyring" ] && opts="[signed-by=$keyring] "
entry="deb ${opts}${mirror} bookworm contrib non-free"
if ! grep -qsF "$entry" "$list"; then
    echo "cuda118: adding $list: $entry"
    echo "$entry" | $SUDO tee "$list" >/dev/null
fi

echo "cuda118: installing ${missing[*]} (nvidia-cuda-toolkit is about 2.5 GB)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Some CUDA packages ask to accept NVIDIA's license through debconf: accept it.
echo "nvidia-cuda-toolkit nvidia-cuda-toolkit/license-accepted boolean true" |
    $SUDO debconf-set-selections 2>/dev/null || true
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" </dev/null
[ -x /usr/bin/nvcc ] || { echo "cuda118: /usr/bin/nvcc still missing after install" >&2; exit 1; }
echo "cuda118: done: $(/usr/bin/nvcc --version | tail -n1)"
