#!/usr/bin/env bash
# Compile time of a program that uses fusedtensor: wall seconds and peak compiler memory (RSS)
# of each file under each flag set, one compile at a time (run it on an idle machine).
#
#   scripts/compile_time.sh                       # examples/train_digits.cpp and quickstart.cpp
#   scripts/compile_time.sh path/to/model.cpp ... # any files
#   FLAGSETS="release o1" scripts/compile_time.sh # a subset of the flag sets below
#
# The flag sets are those a user meets: CMake's Release (-O3 -DNDEBUG, with the library's
# AVX2/AVX-512 clones of every CPU loop), Release for this machine's ISA (-march=native: on an
# AVX-512 CPU no clones are made), -O2, -O1, and -O1 without the clones (FT_NO_MULTIVERSION). Each compile is `g++ -c` with the flags fusedtensor's CMake target adds
# (C++20, OpenMP, -fno-trapping-math -fno-math-errno, the BLAS and zlib switches).
set -euo pipefail
cd "$(dirname "$0")/.."
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(examples/train_digits.cpp examples/quickstart.cpp)
sets=${FLAGSETS:-"release native o2 o1 o1_noclones"}
cxx=${CXX:-g++}
base=(-std=c++20 -fopenmp -fno-trapping-math -fno-math-errno -DFT_HAVE_CBLAS -DFT_HAVE_ZLIB
      "-DFT_DATA_DIR=\"$PWD/data\"" -Iinclude -I/usr/include/x86_64-linux-gnu/openblas-pthread)
# as CMake adds them where oneDNN is installed
[ -f /usr/include/oneapi/dnnl/dnnl.h ] && base+=(-DFT_HAVE_DNNL)
flags_of() {
  case $1 in
    release) echo "-O3 -DNDEBUG" ;;
    native) echo "-O3 -DNDEBUG -march=native" ;;
    o2) echo "-O2" ;;
    o1) echo "-O1" ;;
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
