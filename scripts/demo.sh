#!/usr/bin/env bash
# First command on a fresh Debian machine: installs what is missing, builds and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
build=${BUILD_DIR:-build-demo}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFT_BUILD_TESTS=OFF -DFT_BUILD_BENCH=OFF
cmake --build "$build" --target fusion_demo quickstart
"$build/examples/quickstart"
"$build/examples/fusion_demo"
