#!/usr/bin/env bash
# Fuzz the protocol core with cargo-fuzz (fuzz/): every target in turn, one
# process at a time, at the lowest CPU priority.
#
#   scripts/fuzz.sh [--short] [--runs N] [--time SECONDS] [--cmin] [TARGET...]
#
#   (default)     10,000,000 executions per target, at most 4 h each
#   --short       about 15 s per target (CI)
#   --runs N      executions per target (FUZZ_RUNS); -1 for no count
#   --time S      time bound per target in seconds (FUZZ_TIME)
#   --cmin        afterwards, merge what the run found into fuzz/corpus/ and
#                 minimise it (cargo fuzz cmin)
#
# Inputs come from fuzz/corpus/<target>/ (checked in, read only here); new
# ones go to fuzz/target/corpus/<target>/. Prints executions, coverage and
# time per target; exits non-zero on any crash, timeout or out-of-memory,
# whose input is left under fuzz/artifacts/<target>/. Needs a nightly
# toolchain; without one it says so and exits 0 (skipped). Installs
# cargo-fuzz when it is missing.
set -uo pipefail
cd "$(dirname "$0")/.."

TARGETS_ALL=(frame payload keys reassembly responder initiator)
runs=${FUZZ_RUNS:-10000000}
time_bound=${FUZZ_TIME:-14400}
cmin=0
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --short) runs=-1; time_bound=${FUZZ_TIME:-15} ;;
    --runs) runs=$2; shift ;;
    --time) time_bound=$2; shift ;;
    --cmin) cmin=1 ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${TARGETS_ALL[@]}")

if ! command -v rustup > /dev/null || ! rustup run nightly rustc --version > /dev/null 2>&1; then
  echo "SKIP: fuzzing needs a nightly Rust toolchain (rustup toolchain install nightly); none is installed."
  exit 0
fi
if ! cargo fuzz --version > /dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  nice -n 19 cargo +nightly install cargo-fuzz --locked || exit 1
fi

# -O without -a: debug assertions and overflow checks are set per crate in
# fuzz/Cargo.toml. No sanitizer: the protocol core forbids unsafe code, and
# the connection targets spend their time in X25519, which ASan slows down.
build=(-O -s none)
echo "== building the fuzz targets ($(rustup run nightly rustc --version))"
start=$(date +%s)
mkdir -p fuzz/target
if ! nice -n 19 cargo +nightly fuzz build "${build[@]}" > fuzz/target/build.log 2>&1; then
  grep -vE '^\s+(Compiling|Downloaded|Downloading)' fuzz/target/build.log | tail -40
  echo "FAILED: cargo fuzz build"
  exit 1
fi
echo "built in $(($(date +%s) - start)) s"

bin=fuzz/target/x86_64-unknown-linux-gnu/release
failed=0
summary=()
for t in "${targets[@]}"; do
  [ -x "$bin/$t" ] || { echo "fuzz.sh: no target $t" >&2; exit 2; }
  work=fuzz/target/corpus/$t
  mkdir -p "$work" "fuzz/artifacts/$t" fuzz/corpus/"$t"
  log=fuzz/target/fuzz-$t.log
  echo "== $t: $([ "$runs" = -1 ] && echo "for $time_bound s" || echo "$runs executions, at most $time_bound s")"
  t0=$(date +%s%N)
  nice -n 19 "$bin/$t" "$work" "fuzz/corpus/$t" \
    -runs="$runs" -max_total_time="$time_bound" -timeout=30 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" > "$log" 2>&1
  rc=$?
  secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  execs=$(grep -oP 'stat::number_of_executed_units:\s+\K[0-9]+' "$log" | tail -1)
  rate=$(grep -oP 'stat::average_exec_per_sec:\s+\K[0-9]+' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(grep -oP 'cov: \K[0-9]+' <<< "$last")
  ft=$(grep -oP 'ft: \K[0-9]+' <<< "$last")
  corp=$(grep -oP 'corp: \K[0-9]+' <<< "$last")
  [ -n "$execs" ] || execs=$(grep -oP '^#\K[0-9]+' <<< "$last")
  line=$(printf '%-11s %12s execs %7s/s  cov %5s  ft %6s  corpus %5s  %8s s' \
    "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$secs")
  if [ $rc -ne 0 ]; then
    failed=1
    line="$line  FAILED (exit $rc)"
    echo "$line"
    grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written' -A2 "$log" | head -20
    echo "   reproduce: cargo +nightly fuzz run ${build[*]} $t $(grep -oP 'Test unit written to \K\S+' "$log" | tail -1)"
    echo "   full log: $log"
  else
    [ "$runs" != -1 ] && [ "${execs:-0}" -lt "$runs" ] && line="$line  (time bound reached first)"
    echo "$line"
  fi
  summary+=("$line")
done

if [ $cmin -eq 1 ] && [ $failed -eq 0 ]; then
  for t in "${targets[@]}"; do
    echo "== minimising fuzz/corpus/$t"
    for f in fuzz/target/corpus/"$t"/*; do
      [ -e "$f" ] && [ ! -e "fuzz/corpus/$t/${f##*/}" ] && cp "$f" "fuzz/corpus/$t/"
    done
    nice -n 19 cargo +nightly fuzz cmin "${build[@]}" "$t" "fuzz/corpus/$t" 2>&1 | grep -E 'MERGE-OUTER: [0-9]+ new files' || true
  done
  du -sh fuzz/corpus
fi

echo "== fuzz summary ($(date -u +%Y-%m-%d), $(nproc) cores)"
printf '%s\n' "${summary[@]}"
exit $failed
