#!/usr/bin/env bash
# Builds the GPU check's bundle here (no GPU needed): every CUDA test and benchmark binary and
# ft-info for sm_90, stripped, with the shared libraries a GPU machine may lack, the data files
# the tests read, what a fallback build there needs (doctest, Google Benchmark) and a manifest,
# as one archive: .gpu/ft-gpu-bundle.tar.xz, at most 60 MiB (64 MiB travel to the GPU machine,
# the working tree included). scripts/gpu_check.sh runs it there; docs/gpu.md says how.
#
#   scripts/gpu_bundle.sh            # JOBS=1 NICE=10 by default: CI-sized machines are shared
#   SNAPSHOT=0 scripts/gpu_bundle.sh # keep the last snapshot (repack, or rebuild what was copied in)
#
# The binaries are built from a snapshot of the working tree (tracked and untracked files that
# git does not ignore) at a fixed path, $FT_GPU_SRC (default /tmp/fusedtensor-gpu-src): the
# tests find their data through paths compiled in (FT_GOLDEN_DIR, FT_TEST_DIGITS), and
# gpu_check.sh makes that same path point at the bundle's copy of the data on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
src=${FT_GPU_SRC:-/tmp/fusedtensor-gpu-src}
build=${BUILD_DIR:-$root/build-gpu}
outdir=${BUNDLE_DIR:-$root/.gpu}
jobs=${JOBS:-1}
niceness=${NICE:-10}
limit_mib=${LIMIT_MIB:-60}
name=ft-gpu-bundle
archive=$outdir/$name.tar.xz

log() { printf '[gpu_bundle] %s\n' "$*"; }
die() {
  printf '[gpu_bundle] error: %s\n' "$*" >&2
  exit 1
}

command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || die "no nvcc: the bundle needs the CUDA toolkit"
for tool in cmake ninja xz sha256sum strip readelf ldd; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done

# ---- 1. a snapshot of the working tree, mtimes kept (ninja rebuilds only what changed) ----
case $src in /tmp/?*) ;; *) die "FT_GPU_SRC must be a folder under /tmp (it is replaced): $src" ;; esac
if [ "${SNAPSHOT:-1}" = 0 ] && [ -d "$src/include" ]; then
  log "keeping the snapshot in $src (SNAPSHOT=0)"
else
  log "snapshot of the working tree -> $src"
  rm -rf "$src"
  mkdir -p "$src"
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done |
    tar -cf - --null -T - | tar -xf - -C "$src"
  # what the snapshot is of, for BUILDINFO (also when a later run keeps it)
  printf 'commit=%s\ndirty_files=%s\nsnapshot_at=%s\n' "$(git rev-parse HEAD)" "$(git status --porcelain | wc -l)" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$src/.ft-snapshot"
  git status --porcelain >"$src/.ft-snapshot-status"
fi
snap() { sed -n "s/^$1=//p" "$src/.ft-snapshot" 2>/dev/null; }
commit=$(snap commit)
dirty=$(snap dirty_files)

# ---- 2. configure and build the CUDA targets (Release, benches at their normal -O3) ----
start=$(date +%s)
mkdir -p "$build"
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90-real \
  -DFT_CUDA_BENCHMARKS=ON -DFT_CUDA_EXAMPLES=OFF -DFT_BENCH_COMPILE_CHECK=OFF -DFT_CUDA_TESTS_QUICK=OFF >"$build/configure.log" 2>&1 ||
  {
    cat "$build/configure.log"
    die "configure failed"
  }
all_targets=$(ninja -C "$build" -t targets all | cut -d: -f1 | sort -u)
targets=()
# bench_elementwise_cuda first: it has the newest code (the CUB anchor), so a mistake shows early
for t in bench_elementwise_cuda ft-info ft_tests_cuda ft_nn_tests_cuda ft_io_tests_cuda; do
  grep -qx "$t" <<<"$all_targets" && targets+=("$t")
done
while IFS= read -r t; do
  [[ " ${targets[*]} " == *" $t "* ]] || targets+=("$t")
done < <(grep -E '^bench_[a-z_]+_cuda$' <<<"$all_targets")
for t in ft-info ft_tests_cuda ft_nn_tests_cuda bench_elementwise_cuda bench_reduce_cuda bench_matmul_cuda bench_conv_cuda; do
  [[ " ${targets[*]} " == *" $t "* ]] || die "target $t is not defined: is CUDA found (see $build/configure.log)?"
done
log "building ${#targets[@]} targets with -j$jobs at nice $niceness: ${targets[*]}"
# the first target alone: ninja orders the others as it likes
nice -n "$niceness" cmake --build "$build" -j "$jobs" --target "${targets[0]}"
nice -n "$niceness" cmake --build "$build" -j "$jobs" --target "${targets[@]}"
build_s=$(($(date +%s) - start))
log "build took $build_s s; slowest translation units:"
# (.ninja_log can hold older entries of an output: the last one counts)
objects() { awk '!/^#/ && $4 ~ /\.o$/ { d[$4] = ($2 - $1) / 1000 } END { for (o in d) printf "%8.1f s  %s\n", d[o], o }' "$build/.ninja_log"; }
objects | sort -rn | awk 'NR <= 8' || true
# For a build on the GPU machine instead (16 cores): the CPU time of every object of these
# targets and the longest one (the critical path is at least that).
cpu_s=$(objects | awk '$3 ~ /(cuda|ft-info)/ { s += $1 } END { printf "%.0f", s }')
longest_s=$(objects | awk '$3 ~ /(cuda|ft-info)/ && $1 > m { m = $1 } END { printf "%.0f", m }')
log "objects: $cpu_s s of compile time in all, the longest $longest_s s (on 16 cores: about max($longest_s, $cpu_s/16) s)"

# ---- 3. stage: bin/ lib/ lib-fallback/ deps/ src/ ----
stage=$build/stage
bundle=$stage/$name
rm -rf "$stage"
mkdir -p "$bundle"/{bin,lib,lib-fallback,deps,src}
for t in "${targets[@]}"; do
  f=$(find "$build" -maxdepth 3 -type f -name "$t" -perm -u+x -print -quit)
  [ -n "$f" ] || die "built target $t not found under $build"
  cp "$f" "$bundle/bin/$t"
  strip --strip-all "$bundle/bin/$t"
done

# Shared libraries: everything the binaries load except glibc's own and the CUDA driver and
# libraries that the GPU machine has (libcuda, cuBLAS, cuDNN, NVRTC: huge, and matched to its driver).
# libstdc++ and libgcc_s go to lib-fallback/: used there only when the machine's are missing
# or too old (a newer system libstdc++ must win, for the tools run with the same environment).
is_system_lib() {
  case $1 in
    linux-vdso.so* | ld-linux*.so* | libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | libutil.so.*) return 0 ;;
    libcuda.so* | libnvidia-*.so* | libcublas.so* | libcublasLt.so* | libcudnn*.so* | libnvrtc*.so*) return 0 ;;
  esac
  return 1
}
declare -A copied=()
for b in "$bundle"/bin/*; do
  while read -r soname path; do
    if [ -z "$path" ] || [ ! -f "$path" ]; then continue; fi
    is_system_lib "$soname" && continue
    [ -n "${copied[$soname]:-}" ] && continue
    case $soname in
      libstdc++.so.* | libgcc_s.so.*) dest=$bundle/lib-fallback ;;
      *) dest=$bundle/lib ;;
    esac
    cp -L "$path" "$dest/$soname"
    copied[$soname]=$path
  done < <(ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }')
done
log "bundled libraries: $(for s in "${!copied[@]}"; do printf '%s ' "$s"; done)"

# What a fallback build on the GPU machine needs and it may lack: doctest's header and Google
# Benchmark (header + library), with minimal relocatable CMake package files.
doctest_h=$(find /usr/include /usr/local/include -maxdepth 2 -name doctest.h -path '*doctest/*' -print -quit 2>/dev/null)
bench_h=$(find /usr/include /usr/local/include -maxdepth 2 -name benchmark.h -path '*benchmark/*' -print -quit 2>/dev/null)
if [ -z "$doctest_h" ] || [ -z "$bench_h" ]; then
  die "doctest.h or benchmark/benchmark.h not found (scripts/deps.sh installs them)"
fi
mkdir -p "$bundle"/deps/include "$bundle"/deps/lib/cmake/{doctest,benchmark}
cp -r "$(dirname "$doctest_h")" "$bundle/deps/include/doctest"
cp -r "$(dirname "$bench_h")" "$bundle/deps/include/benchmark"
bench_so=$(ldd "$bundle/bin/bench_elementwise_cuda" | awk '$1 ~ /^libbenchmark\.so/ { print $1 }')
[ -n "$bench_so" ] || die "bench_elementwise_cuda does not load libbenchmark"
cat >"$bundle/deps/lib/cmake/doctest/doctestConfig.cmake" <<'EOF'
# Written by scripts/gpu_bundle.sh: doctest's header from the bundle.
if(NOT TARGET doctest::doctest)
  add_library(doctest::doctest INTERFACE IMPORTED)
  get_filename_component(_ft_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
  set_target_properties(doctest::doctest PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_ft_prefix}/include")
endif()
set(doctest_FOUND TRUE)
EOF
cat >"$bundle/deps/lib/cmake/benchmark/benchmarkConfig.cmake" <<EOF
# Written by scripts/gpu_bundle.sh: Google Benchmark from the bundle (library in ../../../../lib).
include(CMakeFindDependencyMacro)
find_dependency(Threads)
if(NOT TARGET benchmark::benchmark)
  add_library(benchmark::benchmark SHARED IMPORTED)
  get_filename_component(_ft_prefix "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
  get_filename_component(_ft_bundle "\${_ft_prefix}/.." ABSOLUTE)
  set_target_properties(benchmark::benchmark PROPERTIES
    IMPORTED_LOCATION "\${_ft_bundle}/lib/$bench_so" IMPORTED_SONAME "$bench_so"
    INTERFACE_INCLUDE_DIRECTORIES "\${_ft_prefix}/include" INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
set(benchmark_FOUND TRUE)
EOF

# The files the tests read, at the paths compiled into them relative to $src.
for d in tests/golden tests/data data; do
  if [ -d "$src/$d" ]; then
    mkdir -p "$bundle/src/$(dirname "$d")"
    cp -r "$src/$d" "$bundle/src/$d"
  fi
done

# ---- 4. build info and manifest ----
nvcc_bin=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
{
  echo "src_path=$src"
  echo "commit=$commit"
  echo "dirty_files=$dirty"
  echo "snapshot_at=$(snap snapshot_at)"
  echo "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "build_seconds=$build_s"
  echo "compile_cpu_seconds=$cpu_s"
  echo "longest_object_seconds=$longest_s"
  echo "jobs=$jobs"
  echo "nvcc=$("$nvcc_bin" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
  echo "cuda_architectures=90-real (sm_90 machine code, no PTX)"
  echo "glibc=$(ldd --version | awk 'NR == 1 { print $NF }')"
  echo "cxx=$(c++ --version | sed -n 1p)"
  echo "targets=${targets[*]}"
  echo "compute_sanitizer=not bundled (the GPU machine has it; this machine does not)"
} >"$bundle/BUILDINFO"
cp "$src/.ft-snapshot-status" "$bundle/GITSTATUS" 2>/dev/null || echo "unknown: snapshot made before gpu_bundle.sh recorded it" >"$bundle/GITSTATUS"
(cd "$bundle" && find . -type f ! -name MANIFEST.sha256 -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum) >"$stage/MANIFEST.sha256"
mv "$stage/MANIFEST.sha256" "$bundle/MANIFEST.sha256"

# ---- 5. the archive ----
mkdir -p "$outdir"
log "compressing (xz -9, one thread)"
tar -C "$stage" -cf - "$name" | nice -n "$niceness" xz -9 -T1 >"$archive.tmp"
mv "$archive.tmp" "$archive"
bytes=$(stat -c %s "$archive")
raw=$(du -sb "$bundle" | cut -f1)
tree=$(git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done | du -cb --files0-from=- | tail -n 1 | cut -f1)
log "bundle: $archive"
log "  $(awk -v b="$bytes" 'BEGIN { printf "%.1f MiB", b / 1048576 }') compressed ($(awk -v b="$raw" 'BEGIN { printf "%.1f MiB", b / 1048576 }') unpacked), limit $limit_mib MiB"
log "  travels with the working tree ($(awk -v b="$tree" 'BEGIN { printf "%.1f MiB", b / 1048576 }')): $(awk -v b="$((bytes + tree))" 'BEGIN { printf "%.1f MiB", b / 1048576 }') of 64 MiB"
log "  build $build_s s; commit ${commit:0:12}, $dirty changed files in the working tree"
if ((bytes > limit_mib * 1048576)); then
  die "the bundle is larger than $limit_mib MiB: build on the GPU machine instead (scripts/gpu_check.sh --build-here)"
fi
if ((bytes + tree > 64 * 1048576)); then
  die "the bundle and the working tree exceed the 64 MiB that travel"
fi
