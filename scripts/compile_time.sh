#!/usr/bin/env bash
# Compile time of a program that uses fusedtensor: wall seconds and peak compiler memory (RSS)
# of each file under each flag set, one compile at a time (run it on an idle machine).
#
#   scripts/compile_time.sh                       # examples/train_digits.cpp and quickstart.cpp
#   scripts/compile_time.sh path/to/model.cpp ... # any files
#   FLAGSETS="release o1" scripts/compile_time.sh # a subset of the flag sets below
#
# The flag sets are those a user meets: CMake's Release (-O3 -DNDEBUG) with the CPU loops
# compiled once for this machine's ISA (FT_CPU_ISA=host, CMake's default: the x86-64 level read
# from /proc/cpuinfo as cmake/FusedtensorCpuIsa.cmake does), the same with FT_CPU_ISA=portable
# (the AVX-512/AVX2/baseline clones of every CPU loop), Release with -march=native, -O2, -O1
# (both as CMake's default builds them), and -O1 without any clones or ISA target
# (FT_NO_MULTIVERSION). Each compile is `g++ -c` with the flags fusedtensor's CMake target adds
# (C++20, OpenMP, -fno-trapping-math -fno-math-errno, the BLAS and zlib switches).
set -euo pipefail
cd "$(dirname "$0")/.."
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(examples/train_digits.cpp examples/quickstart.cpp)
sets=${FLAGSETS:-"release portable native o2 o1 o1_noclones"}
cxx=${CXX:-g++}
base=(-std=c++20 -fopenmp -fno-trapping-math -fno-math-errno -DFT_HAVE_CBLAS -DFT_HAVE_ZLIB
      "-DFT_DATA_DIR=\"$PWD/data\"" -Iinclude -I/usr/include/x86_64-linux-gnu/openblas-pthread)
# as CMake adds them where oneDNN is installed
[ -f /usr/include/oneapi/dnnl/dnnl.h ] && base+=(-DFT_HAVE_DNNL)
# this machine's x86-64 level, as FT_CPU_ISA=host sees it (LZCNT is `abm` in /proc/cpuinfo)
level=1
cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { for f in "$@"; do [[ $cpu_flags == *" $f "* ]] || return 1; done; }
if has avx avx2 bmi1 bmi2 f16c fma abm movbe xsave; then
  level=3
  has avx512f avx512bw avx512cd avx512dq avx512vl && level=4
fi
host="-DFT_CPU_HOST_ISA=$level"
flags_of() {
  case $1 in
    release) echo "-O3 -DNDEBUG $host" ;;
    portable) echo "-O3 -DNDEBUG" ;;
    native) echo "-O3 -DNDEBUG -march=native" ;;
    o2) echo "-O2 $host" ;;
    o1) echo "-O1 $host" ;;
    o1_noclones) echo "-O1 -DFT_NO_MULTIVERSION" ;;
    *) echo "unknown flag set $1" >&2; exit 2 ;;
  esac
}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-34s %-12s %9s %10s\n' file flags seconds "peak MB"
for f in "${files[@]}"; do
  for s in $sets; do
    # shellcheck disable=SC2046  # the flag set is split on purpose
    /usr/bin/time -f '%e %M' -o "$out/t" "$cxx" "${base[@]}" $(flags_of "$s") -c "$f" -o "$out/o.o"
    read -r secs kb < "$out/t"
    printf '%-34s %-12s %9.1f %10.0f\n' "$f" "$s" "$secs" "$((kb / 1024))"
  done
done
