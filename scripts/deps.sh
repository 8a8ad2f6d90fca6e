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

# The cuDNN frontend's headers (NVIDIA's header-only C++ graph API over cuDNN, MIT licence) for
# cuDNN's fused attention (src/cudnn_sdpa.cpp), when a CUDA toolkit with cuDNN is here: taken
# from its PyPI wheel into a cache that CMake looks in (FT_CUDNN_FRONTEND_DIR). Without them
# scaled_dot_product_attention runs the library's own kernels on a GPU.
fe_version=1.32.0
fe_dir=${FT_CUDNN_FRONTEND_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fusedtensor/cudnn-frontend-$fe_version}
if [ -e /usr/local/cuda/include/cudnn.h ] && [ ! -e "$fe_dir/include/cudnn_frontend.h" ]; then
  fe_tmp=$(mktemp -d)
  if python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 -d "$fe_tmp" "nvidia-cudnn-frontend==$fe_version"; then
    python3 - "$fe_tmp" "$fe_dir" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("include/") or "/licenses/" in name:
            z.extract(name, sys.argv[2])
PY
    echo "cuDNN frontend $fe_version headers in $fe_dir/include"
  else
    echo "warning: could not download the cuDNN frontend; cuDNN's fused attention will not be built"
  fi
  rm -rf "$fe_tmp"
fi
