#!/usr/bin/env bash
# First command on a fresh Debian machine: installs what is missing, builds the main demo and
# runs it — an MLP and a CNN trained on the shipped digits, on a GPU when there is one, with a
# progress bar, TensorBoard logs under runs/ and a checkpoint; prints the test accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
build=${BUILD_DIR:-build-demo}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFT_BUILD_TESTS=OFF -DFT_BUILD_BENCH=OFF
demo=train_digits
# the nvcc-compiled copy exists when CUDA was found and a GPU is visible (FT_CUDA_EXAMPLES)
if grep -q '^FT_CUDA_EXAMPLES:BOOL=ON' "$build/CMakeCache.txt"; then demo=train_digits_cuda; fi
cmake --build "$build" --target "$demo"
"$build/examples/$demo" "$@"
echo "TensorBoard: tensorboard --logdir runs   (pip install tensorboard), then open http://localhost:6006"
