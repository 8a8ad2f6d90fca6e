#!/usr/bin/env bash
# Compile time of a program that uses fusedtensor: wall seconds and peak compiler memory (RSS)
# of each file under each flag set, one compile at a time (run it on an idle machine).
#
#   scripts/compile_time.sh                       # examples/train_digits.cpp and quickstart.cpp
#   scripts/compile_time.sh path/to/model.cpp ... # any files
#   FLAGSETS="release o1" scripts/compile_time.sh # a subset of the flag sets below
#
# The flag sets are those a user meets. Through CMake (the default, FT_SEPARATE_COMPILATION=ON)
# a program's files are compiled with FT_SEPARATE_COMPILATION and link the library's
# compiled-once part (src/fusedtensor.cpp, built once per build tree: its time is printed
# separately, under the same flags); a plain `g++ -I include` build is header-only (`*_header_only`).
# release: CMake's Release (-O3 -DNDEBUG) with the CPU loops compiled once for this machine's ISA
# (FT_CPU_ISA=host, CMake's default: the x86-64 level read from /proc/cpuinfo as
# cmake/FusedtensorCpuIsa.cmake does); portable: the same with FT_CPU_ISA=portable (the
# AVX-512/AVX2/baseline clones of every CPU loop); native: Release with -march=native; o2, o1:
# as CMake's default builds them; o1_noclones: -O1 without any clones or ISA target
# (FT_NO_MULTIVERSION). Each compile is `g++ -c` with the flags fusedtensor's CMake target adds
# (C++20, OpenMP, -fno-trapping-math -fno-math-errno, the switches of the optional libraries
# found here: BLAS, zlib, oneDNN, libpng, libjpeg, libwebp, libtiff).
set -euo pipefail
cd "$(dirname "$0")/.."
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(examples/train_digits.cpp examples/quickstart.cpp)
sets=${FLAGSETS:-"release release_header_only portable native o2 o1 o1_header_only o1_noclones"}
cxx=${CXX:-g++}
base=(-std=c++20 -fopenmp -fno-trapping-math -fno-math-errno -DFT_HAVE_CBLAS -DFT_HAVE_ZLIB
      "-DFT_DATA_DIR=\"$PWD/data\"" -Iinclude -I/usr/include/x86_64-linux-gnu/openblas-pthread)
# as CMake adds them where the libraries are installed (without libpng, for one, a program that
# logs images compiles less: the compiler sees that writing a PNG always throws)
[ -f /usr/include/oneapi/dnnl/dnnl.h ] && base+=(-DFT_HAVE_DNNL)
[ -f /usr/include/png.h ] && base+=(-DFT_HAVE_PNG)
[ -f /usr/include/jpeglib.h ] || [ -f /usr/include/x86_64-linux-gnu/jpeglib.h ] && base+=(-DFT_HAVE_JPEG)
[ -f /usr/include/webp/encode.h ] && base+=(-DFT_HAVE_WEBP)
[ -f /usr/include/x86_64-linux-gnu/tiffconf.h ] || [ -f /usr/include/tiff.h ] && base+=(-DFT_HAVE_TIFF)
# this machine's x86-64 level, as FT_CPU_ISA=host sees it (LZCNT is `abm` in /proc/cpuinfo)
level=1
cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { for f in "$@"; do [[ $cpu_flags == *" $f "* ]] || return 1; done; }
if has avx avx2 bmi1 bmi2 f16c fma abm movbe xsave; then
  level=3
  has avx512f avx512bw avx512cd avx512dq avx512vl && level=4
fi
host="-DFT_CPU_HOST_ISA=$level"
sep=-DFT_SEPARATE_COMPILATION
flags_of() {
  case $1 in
    release) echo "-O3 -DNDEBUG $host $sep" ;;
    release_header_only) echo "-O3 -DNDEBUG $host" ;;
    portable) echo "-O3 -DNDEBUG $sep" ;;
    native) echo "-O3 -DNDEBUG -march=native $sep" ;;
    o2) echo "-O2 $host $sep" ;;
    o1) echo "-O1 $host $sep" ;;
    o1_header_only) echo "-O1 $host" ;;
    o1_noclones) echo "-O1 -DFT_NO_MULTIVERSION $sep" ;;
    *) echo "unknown flag set $1" >&2; exit 2 ;;
  esac
}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-34s %-20s %9s %10s\n' file flags seconds "peak MB"
measure() {  # file label flags...
  local f=$1 label=$2
  shift 2
  /usr/bin/time -f '%e %M' -o "$out/t" "$cxx" "${base[@]}" "$@" -c "$f" -o "$out/o.o"
  read -r secs kb < "$out/t"
  printf '%-34s %-20s %9.1f %10.0f\n' "$f" "$label" "$secs" "$((kb / 1024))"
}
for f in "${files[@]}"; do
  for s in $sets; do
    # shellcheck disable=SC2046  # the flag set is split on purpose
    measure "$f" "$s" $(flags_of "$s")
  done
done
# the compiled-once part, under each flag set that links it (once per build tree, not per file)
for s in $sets; do
  flags=$(flags_of "$s")
  [[ $flags == *FT_SEPARATE_COMPILATION* ]] || continue
  # shellcheck disable=SC2086  # the flag set is split on purpose
  measure src/fusedtensor.cpp "$s" ${flags/-DFT_SEPARATE_COMPILATION/}
done
