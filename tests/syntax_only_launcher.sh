#!/bin/sh
# Compiler launcher of the nvcc test copies in their quick mode (tests/CMakeLists.txt) and of the
# benches' compile check (bench/CMakeLists.txt): runs the command it is given, g++ -fsyntax-only
# or nvcc -cuda (every template is still instantiated and checked; no host code is generated), so
# no object file is written (nvcc -cuda writes the host source it would have compiled). An empty
# file stands for it, for the build tool: nothing links these objects.
"$@" || exit
out=
prev=
for arg in "$@"; do
  if [ "$prev" = "-o" ]; then out=$arg; fi
  prev=$arg
done
[ -n "$out" ] && : >"$out"
