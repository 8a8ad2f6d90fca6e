#!/usr/bin/env bash
# The whole test suite (the command CI runs): installs what is missing, configures with CUDA
# when nvcc exists, builds tests, benchmarks (a quick compile check: time them from a default
# build) and examples, runs ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
build=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
start=$(date +%s)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFT_BENCH_COMPILE_CHECK=ON
cmake --build "$build" -j "$jobs"
echo "build took $(($(date +%s) - start)) s; slowest translation units:"
# .ninja_log: start_ms end_ms mtime target hash — print the five slowest object files
# (awk prints the top five itself: `head` would close the pipe early, and under pipefail the
# SIGPIPE it gives sort would fail the whole test command; the report never fails it.)
awk '!/^#/ && $4 ~ /\.o$/ { printf "%8.1f s  %s\n", ($2 - $1) / 1000, $4 }' "$build/.ninja_log" | sort -rn |
  awk 'NR <= 5' || true
# ONNX Runtime checks the exported models (tests/onnx/check_onnx.py): its Python packages from
# PyPI when missing (the test reports itself skipped if they cannot be installed).
python3 -c "import onnx, onnxruntime" 2>/dev/null ||
  python3 -m pip install -q onnx onnxruntime ||
  echo "warning: could not install onnx and onnxruntime; the ONNX Runtime test will be skipped"
# ctest runs tests side by side, each with as many OpenMP threads as cores: threads that spin at a
# barrier while their partner waits for a core make a 38 s example take 247 s beside one busy
# process (char_lm, 2 cores); sleeping waits make it 61 s.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} ctest --test-dir "$build" --output-on-failure -j "$jobs"
