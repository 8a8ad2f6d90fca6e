#!/usr/bin/env bash
# Installs the Debian packages the build needs, if any are missing (needs root or sudo).
set -euo pipefail
pkgs=(cmake ninja-build g++ doctest-dev libeigen3-dev libbenchmark-dev libopenblas-dev zlib1g-dev libpng-dev libjpeg62-turbo-dev libwebp-dev libtiff-dev pkg-config libdnnl-dev libopenmpi-dev openmpi-bin
      qemu-user)  # qemu-user: runs a test program on an emulated CPU without AVX-512 (tests/isa_check.cpp)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi
