#!/usr/bin/env bash
# The prepared GPU check (issue #14): runs on the lent GPU machine, in the repository root, from
# the bundle that scripts/gpu_bundle.sh built (.gpu/ft-gpu-bundle.tar.xz, carried as `.gpu`).
# Each step runs under its own timeout inside one time budget; the results land in REPORT_DIR as
# report.md, report.json and logs.tar.gz (rewritten after every step, so a run cut short still
# leaves its report). docs/gpu.md says how to call it and what the figures mean.
#
#   scripts/gpu_check.sh REPORT_DIR [--bundle PATH] [--budget SECONDS] [--steps a,b,...]
#                        [--build-here] [--dry-run]
#
#   --dry-run      here, without a GPU: check the bundle (size, manifest, every binary's shared
#                  libraries either bundled or among those the GPU machine provides) and print
#                  the planned steps; exit 0 when all is well
#   --budget S     seconds for the whole check (default 450); a step that would start with too
#                  little left is skipped, and every step's timeout is cut to what is left
#   --steps LIST   run only these steps (names as in the report), e.g. after a fix
#   --build-here   build the binaries on this machine (cmake, all cores) instead of using the
#                  bundle's (also done by itself when the bundle's binaries cannot start)
#
# Exit status: 0 when every step that ran passed; 1 when one failed, timed out, found no GPU or
# was skipped for the budget, or the bundle is unusable and building here failed; 2 for a usage error.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
report_dir=""
bundle=$repo/.gpu/ft-gpu-bundle.tar.xz
budget=450
only=""
dry_run=0
build_here=0
work=${FT_GPU_WORK:-/tmp/ft-gpu-check}
limit_mib=60

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 2
}
while (($#)); do
  case $1 in
    --bundle) bundle=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --steps) only=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --build-here) build_here=1; shift ;;
    -h | --help) usage ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *)
      [ -z "$report_dir" ] || { echo "one REPORT_DIR only" >&2; usage; }
      report_dir=$1
      shift
      ;;
  esac
done
[ -n "$report_dir" ] || usage
[[ $budget =~ ^[0-9]+$ ]] || { echo "--budget takes whole seconds" >&2; exit 2; }
mkdir -p "$report_dir"
report_dir=$(cd "$report_dir" && pwd)
t0=$(date +%s)
elapsed() { echo $(($(date +%s) - t0)); }
log() { printf '[gpu_check %4ss] %s\n' "$(elapsed)" "$*"; }

# ---------------------------------------------------------------------------------------------
# The steps: name, timeout (s), kind. Benchmarks and sanitizers need a GPU; tests report 77 without.
# Order: the install check, the test suites, the benches behind the goals, the sanitizers, the rest.
STEP_PLAN=(
  "ft-info 60 info"
  "ft_tests_cuda 150 test"
  "ft_nn_tests_cuda 120 test"
  "ft_io_tests_cuda 60 test"
  "bench_elementwise 75 bench"
  "bench_reduce 75 bench"
  "bench_matmul 60 bench"
  "bench_conv 75 bench"
  "memcheck 120 sanitizer"
  "racecheck 120 sanitizer"
  "bench_nn 60 bench"
  "bench_autograd 60 bench"
  "bench_data 60 bench"
  "bench_ops 60 bench"
)
# The sanitizers' subset of ft_tests_cuda: the reductions and the row-wise composites (doctest
# filters on the source file; the nvcc copy includes tests/test_<name>.cpp).
SANITIZER_FILTER='-sf=*test_reduce.cpp,*test_rowwise.cpp'
# Benchmark flags: the GPU benches only, three repetitions interleaved at random with the other
# benches of the binary (anchors included), the median reported, the JSON kept.
BENCH_FLAGS=(--benchmark_filter=gpu --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true
  --benchmark_report_aggregates_only=true --benchmark_min_time=0.1)
bench_extra() {
  case $1 in
    bench_matmul) echo "--benchmark_min_time=0.2" ;;  # 3 ms a product: enough of them for 3 %
    bench_data) echo "--benchmark_repetitions=1" ;;    # an epoch an iteration: long already
  esac
}

# ---------------------------------------------------------------------------------------------
# Libraries. The CUDA libraries the binaries load (cuBLAS, cuDNN, the driver; cudart is bundled
# as a fallback) may be where the loader looks, in the toolkit, or in Python wheels
# (site-packages/nvidia/*/lib). Each one found is recorded; the first found is used.
cuda_lib_dirs=()
libs_tsv=""
candidate_lib_dirs() {
  local d py sp
  for d in ${CUDA_HOME:+$CUDA_HOME/lib64} /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib \
    /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/lib; do
    [ -d "$d" ] && echo "$d"
  done
  for py in python3 /opt/torch/.venv/bin/python3; do
    command -v "$py" >/dev/null 2>&1 || continue
    while IFS= read -r sp; do
      for d in "$sp"/nvidia/*/lib "$sp"/nvidia/cu13/lib; do [ -d "$d" ] && echo "$d"; done
    done < <("$py" -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null || true)
  done
  for d in /opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib /usr/local/lib/python3*/dist-packages/nvidia/*/lib; do
    [ -d "$d" ] && echo "$d"
  done
}
find_cuda_libs() {
  local lib dirs d found chosen all real seen
  mapfile -t dirs < <(candidate_lib_dirs | awk '!seen[$0]++')
  libs_tsv=$work/libs.tsv
  : >"$libs_tsv"
  for lib in libcuda.so.1 libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9 libcudnn_ops.so.9 libcudnn_cnn.so.9 libnvrtc.so.13; do
    all=()
    seen=" "
    found=$(ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l && /x86-64/ && !done { print $NF; done = 1 }')
    if [ -n "$found" ]; then
      all+=("$found (ldconfig)")
      seen+="$(readlink -f "$found") "
    fi
    for d in "${dirs[@]}"; do
      [ -e "$d/$lib" ] || continue
      real=$(readlink -f "$d/$lib")
      [[ $seen == *" $real "* ]] && continue  # the same file through a link
      seen+="$real "
      all+=("$d/$lib")
    done
    chosen=""
    if ((${#all[@]})); then
      chosen=${all[0]% (ldconfig)}
      if [[ ${all[0]} != *"(ldconfig)" ]]; then
        d=$(dirname "$chosen")
        [[ " ${cuda_lib_dirs[*]} " == *" $d "* ]] || cuda_lib_dirs+=("$d")
      fi
    fi
    printf '%s\t%s\t%s\n' "$lib" "${chosen:-missing}" "$(IFS=';'; echo "${all[*]}")" >>"$libs_tsv"
  done
}

# Bundled libraries fill gaps only: a library the machine lacks (or whose libstdc++ is too old)
# is linked into $work/libfill, last on LD_LIBRARY_PATH, so the machine's own always win.
fill_libs() {
  local bindir=$1 fill=$work/libfill b missing lib changed parts
  rm -rf "$fill"
  mkdir -p "$fill"
  parts=("${cuda_lib_dirs[@]}")
  [ -n "${LD_LIBRARY_PATH_ORIG:-}" ] && parts+=("$LD_LIBRARY_PATH_ORIG")
  parts+=("$fill")
  LD_LIBRARY_PATH=$(IFS=:; echo "${parts[*]}")
  export LD_LIBRARY_PATH
  for _ in 1 2 3 4; do  # a library found may need another (openblas -> gfortran -> quadmath)
    changed=0
    for b in "$bindir"/*; do
      missing=$(ldd "$b" 2>&1 | awk '/=> not found/ { print $1 } /version `GLIBCXX_|version `CXXABI_|version `GCC_/ { print "libstdc++.so.6"; print "libgcc_s.so.1" }' | sort -u)
      for lib in $missing; do
        [ -e "$fill/$lib" ] && continue
        if [ -e "$bundle_dir/lib/$lib" ]; then
          ln -s "$bundle_dir/lib/$lib" "$fill/$lib"
          changed=1
        elif [ -e "$bundle_dir/lib-fallback/$lib" ]; then
          ln -s "$bundle_dir/lib-fallback/$lib" "$fill/$lib"
          changed=1
        fi
      done
    done
    ((changed)) || break
  done
  unresolved=""
  for b in "$bindir"/*; do
    missing=$(ldd "$b" 2>&1 | awk '/=> not found/ { print $1 } /version `[A-Z_0-9.]*'"'"' not found/ { print "version:" $2 }' | sort -u | tr '\n' ' ')
    [ -n "$missing" ] && unresolved+="$(basename "$b"): $missing; "
  done
  filled=$(find "$fill" -mindepth 1 -printf '%f ' | sort)
}

unpack() {
  local dest=$1
  [ -f "$bundle" ] || { log "no bundle at $bundle"; return 1; }
  rm -rf "$dest"
  mkdir -p "$dest"
  tar -xJf "$bundle" -C "$dest"
  bundle_dir=$dest/ft-gpu-bundle
  [ -f "$bundle_dir/MANIFEST.sha256" ] || { log "the bundle has no MANIFEST.sha256"; return 1; }
  if ! (cd "$bundle_dir" && sha256sum --quiet -c MANIFEST.sha256) >"$work/manifest.log" 2>&1; then
    log "the bundle's manifest does not match its files:"
    cat "$work/manifest.log"
    return 1
  fi
  info() { sed -n "s/^$1=//p" "$bundle_dir/BUILDINFO"; }
  src_path=$(info src_path)
  bundle_commit=$(info commit)
}

# The tests read their data through paths compiled in under the bundle's src_path (a folder in
# /tmp): point it at the bundle's copy, unless it already holds the data (the build machine).
link_src_path() {
  [ -n "$src_path" ] || return 0
  if [ -d "$src_path/tests/golden" ] && [ ! -L "$src_path" ]; then
    src_note="$src_path exists (the build machine's snapshot): used as it is"
    return 0
  fi
  case $src_path in /tmp/?*) ;; *) src_note="src_path $src_path is not under /tmp: not linked"; return 0 ;; esac
  rm -f "$src_path"
  ln -s "$bundle_dir/src" "$src_path"
  src_note="$src_path -> $bundle_dir/src"
}

find_sanitizer() {
  local c
  for c in "$(command -v compute-sanitizer 2>/dev/null || true)" ${CUDA_HOME:+$CUDA_HOME/bin/compute-sanitizer} \
    /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer \
    "$bundle_dir/compute-sanitizer/compute-sanitizer" /opt/nvidia/*/compute-sanitizer/compute-sanitizer; do
    [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
  done
  return 0
}

# ---------------------------------------------------------------------------------------------
# Which steps apply: ft_io_tests_cuda and benches only when their binary exists; --steps filters.
planned=()
plan() {
  local line name bindir=$1 b extra
  planned=()
  for line in "${STEP_PLAN[@]}"; do
    read -r name _ kind <<<"$line"
    case $kind in
      test | info) [ -e "$bindir/$name" ] || { [ "$name" = ft_io_tests_cuda ] && continue; } ;;
      bench) [ -e "$bindir/${name}_cuda" ] || continue ;;
    esac
    planned+=("$line")
  done
  # a bench binary the list does not know yet runs last
  for b in "$bindir"/bench_*_cuda; do
    [ -e "$b" ] || continue
    extra=$(basename "$b" _cuda)
    printf '%s\n' "${planned[@]}" | grep -q "^$extra " || planned+=("$extra 60 bench")
  done
  if [ -n "$only" ]; then
    local keep=()
    for line in "${planned[@]}"; do
      read -r name _ <<<"$line"
      [[ ",$only," == *",$name,"* ]] && keep+=("$line")
    done
    planned=("${keep[@]}")
  fi
}

# ---------------------------------------------------------------------------------------------
# Dry run: everything that can be checked without a GPU.
dry_run_main() {
  local fail=0 bytes mib tree total t d f so closure_bad expected_re glibc_max cxx_max rest san sum line name timeout kind
  echo "# GPU check: dry run ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -n))"
  echo
  [ -f "$bundle" ] || { echo "FAIL: no bundle at $bundle (run scripts/gpu_bundle.sh)"; return 1; }
  bytes=$(stat -c %s "$bundle")
  mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
  if ((bytes > limit_mib * 1048576)); then
    echo "FAIL: bundle $bundle is $mib MiB, over $limit_mib MiB"
    fail=1
  else
    echo "ok: bundle $bundle is $mib MiB (limit $limit_mib MiB)"
  fi
  tree=$(cd "$repo" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done | du -cb --files0-from=- | tail -n 1 | cut -f1)
  total=$(awk -v b="$((bytes + tree))" 'BEGIN { printf "%.1f", b / 1048576 }')
  if ((bytes + tree > 64 * 1048576)); then
    echo "FAIL: working tree + bundle = $total MiB, over the 64 MiB that travel"
    fail=1
  else
    echo "ok: working tree + bundle = $total MiB of the 64 MiB that travel"
  fi
  if ! unpack "$work/u"; then
    echo "FAIL: the bundle cannot be unpacked or its manifest does not match"
    return 1
  fi
  echo "ok: manifest matches ($(($(wc -l <"$bundle_dir/MANIFEST.sha256"))) files); built from ${bundle_commit:0:12} with $(sed -n 's/^dirty_files=//p' "$bundle_dir/BUILDINFO") changed files, $(sed -n 's/^built_at=//p' "$bundle_dir/BUILDINFO")"
  echo "   binaries: $(find "$bundle_dir/bin" -mindepth 1 -printf '%f\n' | sort | tr '\n' ' ')"
  echo "   libraries: $(find "$bundle_dir/lib" -mindepth 1 -printf '%f ')| fallback: $(find "$bundle_dir/lib-fallback" -mindepth 1 -printf '%f ')"
  for t in ft-info ft_tests_cuda ft_nn_tests_cuda bench_elementwise_cuda bench_reduce_cuda bench_matmul_cuda bench_conv_cuda; do
    [ -x "$bundle_dir/bin/$t" ] || { echo "FAIL: $t is missing from the bundle"; fail=1; }
  done
  for d in tests/golden tests/data data; do
    [ -d "$bundle_dir/src/$d" ] || { echo "FAIL: $d is missing from the bundle's src/"; fail=1; }
  done
  # Every shared library a binary or a bundled library needs is bundled, or part of glibc, or
  # one the GPU machine provides (the driver, cuBLAS, cuDNN, NVRTC).
  expected_re='^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libutil\.so\.1|ld-linux-x86-64\.so\.2|libcuda\.so\.1|libcublas\.so\.13|libcublasLt\.so\.13|libcudnn\.so\.9|libnvrtc\.so\.13)$'
  closure_bad=""
  for f in "$bundle_dir"/bin/* "$bundle_dir"/lib/* "$bundle_dir"/lib-fallback/*; do
    while read -r so; do
      [[ $so =~ $expected_re ]] && continue
      [ -e "$bundle_dir/lib/$so" ] || [ -e "$bundle_dir/lib-fallback/$so" ] || closure_bad+="$(basename "$f") needs $so; "
    done < <(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  done
  if [ -n "$closure_bad" ]; then
    echo "FAIL: not bundled and not expected on the GPU machine: $closure_bad"
    fail=1
  else
    echo "ok: every needed library is bundled or expected there (glibc, libcuda.so.1, libcublas/Lt.so.13, libcudnn.so.9)"
  fi
  glibc_max=$(for f in "$bundle_dir"/bin/* "$bundle_dir"/lib/*; do readelf -V "$f" 2>/dev/null | grep -o 'GLIBC_2\.[0-9]*' || true; done | sort -uV | tail -n 1)
  cxx_max=$(for f in "$bundle_dir"/bin/* "$bundle_dir"/lib/*; do readelf -V "$f" 2>/dev/null | grep -o 'GLIBCXX_3\.4\.[0-9]*' || true; done | sort -uV | tail -n 1)
  echo "   the binaries need $glibc_max and $cxx_max at most (Ubuntu 24.04: GLIBC_2.39, GLIBCXX_3.4.33; older libstdc++: lib-fallback)"
  find_cuda_libs
  echo "   CUDA libraries on this machine (the GPU machine's are searched the same way):"
  while IFS=$'\t' read -r lib chosen _; do
    printf '     %-22s %s\n' "$lib" "$chosen"
  done <"$libs_tsv"
  LD_LIBRARY_PATH_ORIG=${LD_LIBRARY_PATH:-}
  fill_libs "$bundle_dir/bin"
  if [ -n "$unresolved" ]; then
    # here the driver (libcuda.so.1) may be absent: that alone is expected
    rest=$(sed 's/[^;]*: libcuda\.so\.1 ;//g; s/ *$//' <<<"$unresolved")
    if [ -n "${rest//[ ;]/}" ]; then
      echo "FAIL: unresolved here with the bundle's libraries: $unresolved"
      fail=1
    else
      echo "ok: everything resolves but the CUDA driver, as expected without a GPU"
    fi
  else
    echo "ok: every binary's libraries resolve here (bundle fills: ${filled:-none})"
  fi
  echo "   data path compiled into the tests: $src_path (on the GPU machine: a link to the bundle's src/)"
  san=$(find_sanitizer)
  echo "   compute-sanitizer here: ${san:-none (the GPU machine has it; the sanitizer steps are skipped without it)}"
  plan "$bundle_dir/bin"
  echo
  echo "Planned steps (budget $budget s; each timeout is cut to what is left of it):"
  sum=0
  for line in "${planned[@]}"; do
    read -r name timeout kind <<<"$line"
    sum=$((sum + timeout))
    printf '  %-18s %4s s  %s\n' "$name" "$timeout" "$kind"
  done
  echo "  (timeouts add up to $sum s; steps that finish early leave the rest to later ones)"
  echo
  if ((fail)); then
    echo "dry run: FAILED"
    return 1
  fi
  echo "dry run: ok"
}
if ((dry_run)); then
  work=$(mktemp -d /tmp/ft-gpu-dry.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  rc=0
  dry_run_main 2>&1 | tee "$report_dir/dry-run.md" || rc=$?
  exit "$rc"
fi

# ---------------------------------------------------------------------------------------------
# The real run.
rm -rf "$work"
mkdir -p "$work/logs"
steps_tsv=$work/steps.tsv
: >"$steps_tsv"
LD_LIBRARY_PATH_ORIG=${LD_LIBRARY_PATH:-}
bundle_dir=""
src_path=""
src_note=""
bundle_commit=""
unresolved=""
filled=""
build_note=""
bindir=""
no_gpu=0
cannot_start=0

{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host=$(uname -n)"
  echo "kernel=$(uname -r)"
  echo "cores=$(nproc)"
  echo "glibc=$(ldd --version 2>/dev/null | awk 'NR == 1 { print $NF }')"
  echo "gpu=$({ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader ||
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; } 2>/dev/null | sed -n 1p || true)"
  echo "budget=$budget"
  echo "repo=$repo"
  echo "repo_commit=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
} >"$work/machine.txt"
nvidia-smi >"$work/logs/nvidia-smi.log" 2>&1 || true

write_report() {
  printf 'src_note=%s\nbuild_note=%s\nunresolved=%s\nfilled=%s\nbundle_commit=%s\nbindir=%s\nsanitizer=%s\n' \
    "$src_note" "$build_note" "$unresolved" "$filled" "$bundle_commit" "$bindir" "${sanitizer:-}" >"$work/state.txt"
  python3 - "$work" "$report_dir" <<'PY' || echo "(report rendering failed; the raw results are in logs.tar.gz)" >"$report_dir/report.md"
import json, os, sys, glob, re
work, out = sys.argv[1], sys.argv[2]
def kv(path):
    d = {}
    if os.path.exists(path):
        for line in open(path):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                d[k] = v
    return d
machine, state = kv(f"{work}/machine.txt"), kv(f"{work}/state.txt")
steps = []
for line in open(f"{work}/steps.tsv"):
    name, status, rc, secs, timeout, note = (line.rstrip("\n").split("\t") + [""] * 6)[:6]
    steps.append(dict(step=name, status=status, exit_code=int(rc) if rc.lstrip("-").isdigit() else None,
                      seconds=float(secs) if secs else None, timeout=int(timeout) if timeout else None, note=note))
libs = []
if os.path.exists(f"{work}/libs.tsv"):
    for line in open(f"{work}/libs.tsv"):
        lib, chosen, found = (line.rstrip("\n").split("\t") + ["", ""])[:3]
        libs.append(dict(library=lib, used=chosen, found=[f for f in found.split(";") if f]))

# Benchmarks: the median of the repetitions (or the single run), keyed by the run's name
# without Google Benchmark's /manual_time or /real_time suffix.
bench = {}
for path in sorted(glob.glob(f"{work}/logs/*.json")):
    try:
        data = json.load(open(path))
    except Exception:
        continue
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}
    for b in data.get("benchmarks", []):
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        key = re.sub(r"/(manual_time|real_time)$", "", b.get("run_name", b["name"]))
        if b.get("error_occurred"):
            bench[key] = dict(error=b.get("error_message", "error"))
            continue
        e = dict(time_ns=b["real_time"] * scale.get(b.get("time_unit", "ns"), 1))
        for k in ("bytes_per_second", "of_copy_bw", "launches_per_iter", "items_per_second", "extra_MB", "peak_MB"):
            if k in b:
                e[k] = b[k]
        bench.setdefault(key, e)
def g(key, field):
    v = bench.get(key, {}).get(field)
    return v if isinstance(v, (int, float)) and v > 0 else None
def ratio(a, b):
    return a / b if a is not None and b is not None else None
goals = []
def goal(what, value, target, higher_is_better, detail, pct=False):
    ok = None if value is None else (value >= target if higher_is_better else value <= target)
    shown = f"{100 * target:g} %" if pct else f"{target:g}"
    goals.append(dict(goal=what, value=value, target=("≥ " if higher_is_better else "≤ ") + shown,
                      met=ok, detail=detail, pct=pct))
n26 = 1 << 26
goal("fused 5-op elementwise / D2D copy bandwidth, 2^26 floats",
     ratio(g(f"gpu/expr/fused/{n26}", "bytes_per_second"), g(f"gpu/copy/d2d/{3 * n26}", "bytes_per_second")), 0.90, True,
     "bytes/s of gpu/expr/fused over gpu/copy/d2d of the same bytes, same run", pct=True)
goal("fused 5-op elementwise / cub::DeviceTransform, 2^26 floats (info)",
     ratio(g(f"gpu/expr/fused/{n26}", "bytes_per_second"), g(f"gpu/expr/cub_transform/{n26}", "bytes_per_second")), 1.0, True,
     "same op, same operands; > 1: faster than CUB")
goal("sum(a*b) / D2D copy bandwidth, 2^26 floats",
     ratio(g("gpu/sum_ab/fused/1", "bytes_per_second"), g("gpu/copy/1", "bytes_per_second")), 0.90, True,
     "bytes/s of gpu/sum_ab/fused over gpu/copy (2^26 floats), same run", pct=True)
goal("sum(a*b) / CUB DeviceReduce on the precomputed product",
     ratio(g("gpu/sum_ab/fused/1", "bytes_per_second"), g("gpu/sum_ab/cub_on_precomputed_product/1", "bytes_per_second")),
     1.0, True, "bytes/s of each one's own traffic (2N floats fused, N floats CUB)")
for op in ("softmax", "cross_entropy"):
    for rows, cols in ((8192, 32768), (65536, 1024)):
        goal(f"{op} [{rows}, {cols}] / D2D copy bandwidth",
             ratio(g(f"gpu/{op}/1/{rows}/{cols}", "bytes_per_second"), g("gpu/copy/1", "bytes_per_second")), 0.80, True,
             "bytes/s (input read once, output written once) over gpu/copy, same run", pct=True)
goal("matmul 4096^3: ft time / bare cuBLAS time",
     ratio(g("gpu/matmul4096/ft_matmul", "time_ns"), g("gpu/matmul4096/cublas", "time_ns")), 1.03, False,
     "cublasSgemm on the same operands, same run")
goal("conv 64x64x56x56 3x3, N=64: ft time / bare cuDNN time",
     ratio(g("gpu/conv/ft", "time_ns"), g("gpu/conv/bare_cudnn", "time_ns")), 1.05, False,
     "the algorithm ft chose, called directly, same run")
# mixed precision (issue #17)
goal("fused 5-op elementwise in bfloat16 / D2D copy bandwidth, 2^26 elements",
     ratio(g(f"gpu/expr/fused_bf16/{n26}", "bytes_per_second"), g(f"gpu/copy/d2d/{3 * n26}", "bytes_per_second")), 0.90,
     True, "bytes/s of gpu/expr/fused_bf16 (2-byte reads and write) over gpu/copy/d2d, same run", pct=True)
goal("matmul 4096^3 bfloat16: ft time / bare cublasGemmEx (bf16, fp32 compute) time",
     ratio(g("gpu/matmul4096/ft_matmul_bf16", "time_ns"), g("gpu/matmul4096/cublas_bf16", "time_ns")), 1.03, False,
     "the same operands, same run")
for variant in ("ft_autocast", "ft_autocast_bf16", "ft_tf32"):
    goal(f"MLP step {variant} / float step (info)",
         ratio(g(f"gpu/mlp_step/{variant}/1", "time_ns"), g("gpu/mlp_step/ft/1", "time_ns")), 1.0, False,
         "bench_nn, same run: autocast float16 (PyTorch's CUDA default), bfloat16, float with TF32 GEMMs")
goal("MLP step (SGD + momentum): CUDA Graph replay time / eager step time",
     ratio(g("gpu/mlp_sgd_step/graph/1", "time_ns"), g("gpu/mlp_sgd_step/eager/0", "time_ns")), 1.0, False,
     "bench_nn's gpu/mlp_sgd_step/graph over gpu/mlp_sgd_step/eager, same run")

ran = [s for s in steps if s["status"] not in ("not selected",)]
failed = [s for s in ran if s["status"] != "pass"]
# NO GPU only when that alone explains every step that did not pass
gpu_less = ("no-gpu", "skipped: no GPU", "skipped: no compute-sanitizer")
verdict = "PASS" if ran and not failed else (
    "NO GPU" if any(s["status"] == "no-gpu" for s in steps) and all(s["status"] in gpu_less for s in failed) else "FAIL")
report = dict(verdict=verdict, machine=machine, bundle=dict(commit=state.get("bundle_commit"), bindir=state.get("bindir"),
              data_path=state.get("src_note"), build=state.get("build_note"), filled_from_bundle=state.get("filled"),
              unresolved=state.get("unresolved"), compute_sanitizer=state.get("sanitizer")),
              libraries=libs, steps=steps, goals=goals, benchmarks=bench)
json.dump(report, open(f"{out}/report.json", "w"), indent=1)

def fmt(v, pct=False):
    if v is None:
        return "–"
    return f"{100 * v:.1f} %" if pct else f"{v:.3f}"
md = [f"# GPU check: {verdict}", "",
      f"{machine.get('date', '')} on {machine.get('host', '')}: {machine.get('gpu') or 'no GPU answered nvidia-smi'}; "
      f"{machine.get('cores', '?')} cores, glibc {machine.get('glibc', '?')}; budget {machine.get('budget')} s.",
      f"Bundle built from {(state.get('bundle_commit') or '?')[:12]}; binaries in {state.get('bindir') or '?'}.",
      f"Data path: {state.get('src_note') or '–'}. " + (f"Build: {state['build_note']}." if state.get("build_note") else ""),
      ""]
if verdict == "NO GPU":
    why = next((s["note"] for s in steps if s["status"] == "no-gpu" and s["note"]), "")
    md += [f"**No usable GPU**: {why}. Nothing was measured: the test binaries exit 77 without one.", ""]
met = sum(1 for x in goals if x["met"] is True)
missed = [x["goal"] for x in goals if x["met"] is False]
md += [f"Goals: {met} met, {len(missed)} missed, {sum(1 for x in goals if x['met'] is None)} not measured. "
       f"Steps: {sum(1 for s in steps if s['status'] == 'pass')} of {len(steps)} passed.", "",
       "| step | status | exit | seconds | timeout | note |", "| --- | --- | --- | --- | --- | --- |"]
for s in steps:
    md.append(f"| {s['step']} | {s['status']} | {'' if s['exit_code'] is None else s['exit_code']} | "
              f"{'' if s['seconds'] is None else round(s['seconds'], 1)} | {s['timeout'] or ''} | {s['note']} |")
md += ["", "| goal | measured | target | met |", "| --- | --- | --- | --- |"]
for x in goals:
    met = "–" if x["met"] is None else ("yes" if x["met"] else "NO")
    md.append(f"| {x['goal']} | {fmt(x['value'], x['pct'])} | {x['target']} | {met} |")
if bench:
    md += ["", "| benchmark (median) | time | GB/s | of_copy_bw | launches |", "| --- | --- | --- | --- | --- |"]
    for k, e in bench.items():
        if "error" in e:
            md.append(f"| {k} | error: {e['error']} | | | |")
            continue
        t = e["time_ns"]
        ts = f"{t / 1e6:.3f} ms" if t >= 1e5 else f"{t / 1e3:.1f} µs"
        bw = f"{e['bytes_per_second'] / 1e9:.0f}" if "bytes_per_second" in e else ""
        oc = f"{e['of_copy_bw']:.3f}" if "of_copy_bw" in e else ""
        la = f"{e['launches_per_iter']:g}" if "launches_per_iter" in e else ""
        md.append(f"| {k} | {ts} | {bw} | {oc} | {la} |")
if libs:
    md += ["", "| library | used | also found |", "| --- | --- | --- |"]
    for l in libs:
        md.append(f"| {l['library']} | {l['used']} | {'; '.join(l['found'][1:])} |")
extra = [f"Filled from the bundle: {state['filled']}" if state.get("filled") else "",
         f"Unresolved: {state['unresolved']}" if state.get("unresolved") else "",
         f"compute-sanitizer: {state.get('sanitizer') or 'not found'}"]
md += [""] + [e for e in extra if e] + ["", "Logs and the benchmarks' JSON: logs.tar.gz."]
open(f"{out}/report.md", "w").write("\n".join(md) + "\n")
PY
  local files=(logs machine.txt steps.tsv state.txt)
  [ -f "$work/libs.tsv" ] && files+=(libs.tsv)
  if tar -C "$work" -czf "$report_dir/logs.tar.gz.tmp" "${files[@]}" 2>/dev/null; then
    mv "$report_dir/logs.tar.gz.tmp" "$report_dir/logs.tar.gz"
  fi
}

# record NAME STATUS RC SECONDS TIMEOUT NOTE
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "${6//$'\t'/ }" >>"$steps_tsv"; }

# Runs one step under its timeout (cut to what is left of the budget); sets step_rc, step_secs.
run_cmd() {
  local name=$1 timeout=$2
  shift 2
  local left=$((budget - $(elapsed) - 10))
  ((timeout > left)) && timeout=$left
  step_timeout=$timeout
  local s0 s1
  s0=$(date +%s.%N)
  step_rc=0
  (cd "$work" && timeout -k 5 "$timeout" "$@") >"$work/logs/$name.log" 2>&1 </dev/null || step_rc=$?
  s1=$(date +%s.%N)
  step_secs=$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.1f", b - a }')
}
cannot_start_in() { grep -qE 'error while loading shared libraries|version `GLIBC|cannot execute binary file|Exec format error' "$1"; }
doctest_summary() {
  { grep -E '^\[doctest\] (test cases|assertions):' "$1" || true; } | sed 's/\[doctest\] //; s/  */ /g' | tr '\n' ' ' | sed 's/ *$//'
}

current_step=""
run_step() {
  local line=$1 name timeout kind left status note="" bin json sum
  read -r name timeout kind <<<"$line"
  current_step=$name
  left=$((budget - $(elapsed) - 10))
  if ((left < 20)); then
    record "$name" "skipped: budget" "" "" "$timeout" "$(elapsed) s of $budget used"
    current_step=""
    return
  fi
  if ((no_gpu)) && [[ $kind == bench || $kind == sanitizer ]]; then
    record "$name" "skipped: no GPU" "" "" "$timeout" "ft-info found no usable GPU"
    current_step=""
    return
  fi
  log "$name (timeout $timeout s, $left s left)"
  case $kind in
    info)
      run_cmd "$name" "$timeout" "$bindir/ft-info" --require-cuda
      if ((step_rc == 0)) && grep -q '^PASS' "$work/logs/$name.log"; then
        status=pass
        note=$(grep -E '^  (CUDA runtime|CUDA driver|cuBLAS|cuDNN) ' "$work/logs/$name.log" | sed 's/^ *//; s/   */ /g' | paste -sd ';' - || true)
      elif grep -q 'FAIL: --require-cuda' "$work/logs/$name.log"; then
        status=no-gpu
        no_gpu=1
        note=$(sed -n 's/^CUDA available: no (\(.*\))$/\1/p' "$work/logs/$name.log" | head -n 1)
      elif cannot_start_in "$work/logs/$name.log" || ((step_rc == 127)); then
        status=cannot-start
        cannot_start=1
        note=$(grep -m1 -E 'error while loading|version `' "$work/logs/$name.log" || true)
      else
        status=fail
        note=$(grep -m1 '^FAIL' "$work/logs/$name.log" || true)
      fi
      ;;
    test)
      run_cmd "$name" "$timeout" "$bindir/$name"
      note=$(doctest_summary "$work/logs/$name.log")
      case $step_rc in
        0) status=pass ;;
        77) status=no-gpu; note=$(grep -m1 SKIPPED "$work/logs/$name.log" || echo "exit 77: no GPU") ;;
        124 | 137) status=timeout ;;
        *) status=fail; cannot_start_in "$work/logs/$name.log" && status=cannot-start ;;
      esac
      ;;
    sanitizer)
      if [ -z "$sanitizer" ]; then
        record "$name" "skipped: no compute-sanitizer" "" "" "$timeout" "not found on PATH or under /usr/local/cuda"
        current_step=""
        return
      fi
      run_cmd "$name" "$timeout" "$sanitizer" --tool "$name" --error-exitcode 86 --print-limit 30 \
        "$bindir/ft_tests_cuda" "$SANITIZER_FILTER"
      sum=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$work/logs/$name.log" | tail -n 1 | sed 's/^========= //' || true)
      note="ft_tests_cuda $SANITIZER_FILTER; ${sum:-no summary}; $(doctest_summary "$work/logs/$name.log")"
      case $step_rc in
        0) status=pass ;;
        86) status=errors-found ;;
        77) status=no-gpu ;;
        124 | 137) status=timeout ;;
        *) status=fail ;;
      esac
      ;;
    bench)
      bin=$bindir/${name}_cuda
      json=$work/logs/$name.json
      # shellcheck disable=SC2046  # bench_extra prints zero or one flag
      run_cmd "$name" "$timeout" "$bin" "${BENCH_FLAGS[@]}" $(bench_extra "$name") \
        --benchmark_out="$json" --benchmark_out_format=json
      local n=0
      [ -f "$json" ] && n=$(grep -c '"name": ".*gpu' "$json" || true)
      note="$n GPU results"
      case $step_rc in
        0) if ((n > 0)); then status=pass; else status=no-gpu; note="no GPU benchmark ran ($(grep -m1 'no CUDA device' "$work/logs/$name.log" || echo 'none registered'))"; fi ;;
        124 | 137) status=timeout ;;
        *) status=fail; note="$(grep -m1 -iE 'differ|error|what\(\)' "$work/logs/$name.log" || true)" ;;
      esac
      ;;
  esac
  record "$name" "$status" "$step_rc" "$step_secs" "$step_timeout" "$note"
  current_step=""
  log "  -> $status ($step_secs s) $note"
}

# On any exit: a step cut short by an error of this script is recorded as such, then the report.
on_exit() {
  local rc=$1
  if [ -n "$current_step" ]; then
    record "$current_step" "aborted" "$rc" "" "" "gpu_check.sh stopped during this step (exit $rc): see its log"
    current_step=""
  fi
  write_report
}

# Builds the CUDA targets here, with every core, from this working tree (the fallback).
build_here_now() {
  local b=$work/build left timeout t targets=() cfg=()
  left=$((budget - $(elapsed) - 60))
  timeout=$((left < 480 ? left : 480))
  if ((timeout < 60)); then
    record build-here "skipped: budget" "" "" "" "too little of the budget left to build"
    return 1
  fi
  if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null; then
    record build-here fail "" "" "" "cmake or ninja missing"
    return 1
  fi
  if [ -n "$bundle_dir" ] && [ -d "$bundle_dir/deps" ]; then
    cfg+=(-Ddoctest_DIR="$bundle_dir/deps/lib/cmake/doctest" -Dbenchmark_DIR="$bundle_dir/deps/lib/cmake/benchmark")
  fi
  # cuBLAS and cuDNN where they were found (wheels have no unversioned .so for find_library)
  while IFS=$'\t' read -r lib chosen _; do
    [ "$chosen" = missing ] && continue
    case $lib in
      libcublas.so.13) cfg+=(-DCUDA_cublas_LIBRARY="$chosen") ;;
      libcublasLt.so.13) cfg+=(-DCUDA_cublasLt_LIBRARY="$chosen") ;;
      libcudnn.so.9)
        cfg+=(-DFT_CUDNN_LIB="$chosen")
        for t in "$(dirname "$chosen")/../include" /usr/local/cuda/include /usr/include; do
          [ -f "$t/cudnn.h" ] && { cfg+=(-DFT_CUDNN_INCLUDE="$(cd "$t" && pwd)"); break; }
        done
        ;;
    esac
  done <"$libs_tsv"
  targets=(ft-info ft_tests_cuda ft_nn_tests_cuda bench_elementwise_cuda bench_reduce_cuda bench_matmul_cuda bench_conv_cuda
    bench_nn_cuda bench_autograd_cuda bench_data_cuda bench_ops_cuda)
  log "building here with $(nproc) cores (timeout $timeout s)"
  local s0
  s0=$(date +%s)
  step_rc=0
  {
    cmake -S "$repo" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90-real -DFT_CUDA_BENCHMARKS=ON \
      -DFT_CUDA_EXAMPLES=OFF -DFT_BENCH_COMPILE_CHECK=OFF "${cfg[@]}" &&
      if ninja -C "$b" -t targets all | grep -q '^ft_io_tests_cuda:'; then targets+=(ft_io_tests_cuda); fi &&
      timeout -k 5 "$timeout" cmake --build "$b" -j "$(nproc)" --target "${targets[@]}"
  } >"$work/logs/build-here.log" 2>&1 || step_rc=$?
  local secs=$(($(date +%s) - s0))
  if ((step_rc != 0)); then
    record build-here "$( ((step_rc == 124)) && echo timeout || echo fail)" "$step_rc" "$secs" "$timeout" "$(grep -m1 -E 'error|Error' "$work/logs/build-here.log" || true)"
    return 1
  fi
  mkdir -p "$work/built-bin"
  for t in "${targets[@]}"; do
    f=$(find "$b" -maxdepth 3 -type f -name "$t" -perm -u+x -print -quit)
    [ -n "$f" ] && ln -sf "$f" "$work/built-bin/$t"
  done
  bindir=$work/built-bin
  build_note="built here in $secs s with $(nproc) cores"
  record build-here pass 0 "$secs" "$timeout" "$build_note"
  return 0
}

trap 'on_exit $?' EXIT
log "report in $report_dir; work folder $work; budget $budget s"
if ! unpack "$work/bundle"; then
  if ((build_here == 0)); then
    log "no usable bundle: building here"
    build_here=1
  fi
  bundle_dir=""
else
  link_src_path
  bindir=$bundle_dir/bin
fi
find_cuda_libs
sanitizer=$(find_sanitizer)
if ((build_here)); then
  build_here_now || { log "the build failed: see logs/build-here.log"; exit 1; }
fi
fill_libs "$bindir"
[ -n "$unresolved" ] && log "unresolved libraries: $unresolved"
[ -n "$filled" ] && log "libraries taken from the bundle: $filled"
plan "$bindir"
write_report

for line in "${planned[@]}"; do
  run_step "$line"
  if ((cannot_start)) && [ "${line%% *}" = ft-info ] && ((build_here == 0)); then
    log "the bundle's binaries cannot start here: building them here instead"
    build_here=1
    if build_here_now; then
      cannot_start=0
      fill_libs "$bindir"
      run_step "$line"
    fi
  fi
  write_report
done
write_report
trap - EXIT
cat "$report_dir/report.md"
verdict=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["verdict"])' "$report_dir/report.json" 2>/dev/null || echo FAIL)
log "verdict: $verdict"
[ "$verdict" = PASS ]
