#!/usr/bin/env bash
# scripts/fuzz.sh HARNESS SECONDS [libFuzzer flags ...]: fuzz one parser (or HARNESS=all: each for
# SECONDS, as many at a time as there are cores) under AddressSanitizer + UndefinedBehaviorSanitizer,
# with the limits the issue sets: -rss_limit_mb=2048 -timeout=10. scripts/test.sh runs `all 30`.
#   build-fuzz/                  the instrumented build (clang-14, -DLORAKIT_FUZZ=ON), made on first use
#   build-fuzz/seeds/HARNESS     seeds written by scripts/fuzz_seeds.py (from libraries and ../shared)
#   build-fuzz/corpus/HARNESS    the corpus libFuzzer grows (kept between runs)
#   build-fuzz/crashes/HARNESS/  crash-*, leak-*, timeout-*, oom-* inputs, if any
# Harnesses: fuzz_safetensors fuzz_shards fuzz_tokenizer_json fuzz_gpt2_vocab fuzz_sentencepiece fuzz_records
# fuzz_recipe fuzz_config fuzz_adapter (fuzz/README.md says what each feeds where). Exits non-zero
# when a harness finds a crash, leak, hang or OOM. Reproduce one: build-fuzz/fuzz/HARNESS FILE.
# SECONDS=0 only builds the harnesses and writes the seeds.
set -euo pipefail
cd "$(dirname "$0")/.."

all=(fuzz_safetensors fuzz_shards fuzz_tokenizer_json fuzz_gpt2_vocab fuzz_sentencepiece fuzz_records fuzz_recipe fuzz_config fuzz_adapter)
if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh HARNESS|all SECONDS [libFuzzer flags]" >&2
  echo "harnesses: ${all[*]}" >&2
  exit 2
fi
harness=$1 seconds=$2
shift 2
if [ "$harness" = all ]; then harnesses=("${all[@]}"); else harnesses=("$harness"); fi
for h in "${harnesses[@]}"; do
  [ -f "fuzz/$h.cpp" ] || { echo "fuzz.sh: no harness '$h'; harnesses: ${all[*]}" >&2; exit 2; }
done
[ -x .venv/bin/python ] || { echo "fuzz.sh: .venv is missing; hint: run scripts/setup.sh first" >&2; exit 2; }
command -v clang++-14 >/dev/null || { echo "fuzz.sh: clang++-14 is missing; hint: apt-get install clang-14 libclang-rt-14-dev (scripts/setup.sh does)" >&2; exit 2; }

if [ ! -f build-fuzz/build.ninja ]; then
  cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_C_COMPILER=clang-14 \
    -DLORAKIT_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo > build-fuzz.configure.log 2>&1 ||
    { cat build-fuzz.configure.log >&2; exit 1; }
  mv build-fuzz.configure.log build-fuzz/configure.log
fi
cmake --build build-fuzz --target "${harnesses[@]}"
.venv/bin/python scripts/fuzz_seeds.py --out build-fuzz/seeds > /dev/null
[ "$seconds" = 0 ] && { echo "fuzz.sh: built ${harnesses[*]} and their seeds (SECONDS=0: no fuzzing)"; exit 0; }

declare -A dict=([fuzz_safetensors]=safetensors [fuzz_records]=csv [fuzz_recipe]=yaml)
declare -A max_len=([fuzz_safetensors]=4096 [fuzz_shards]=65536 [fuzz_tokenizer_json]=65536 [fuzz_gpt2_vocab]=65536
                    [fuzz_sentencepiece]=16384 [fuzz_records]=4096 [fuzz_recipe]=8192 [fuzz_config]=8192 [fuzz_adapter]=8192)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:allocator_may_return_null=0:detect_odr_violation=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LORAKIT_FUZZ_TOKENIZER="$PWD/build-fuzz/seeds/tokenizer"
# One harness: its run into build-fuzz/HARNESS.log, then one summary line (or the defect's report).
fuzz_one() {
  local h=$1; shift
  mkdir -p "build-fuzz/corpus/$h" "build-fuzz/crashes/$h"
  if build-fuzz/fuzz/$h "build-fuzz/corpus/$h" "build-fuzz/seeds/$h" -dict="fuzz/dicts/${dict[$h]:-json}.dict" \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len="${max_len[$h]}" -print_final_stats=1 \
      -artifact_prefix="build-fuzz/crashes/$h/" "$@" > "build-fuzz/$h.log" 2>&1; then
    echo "fuzz.sh: $h: $(grep -oE '^stat::number_of_executed_units: +[0-9]+' "build-fuzz/$h.log" | grep -oE '[0-9]+$') executions," \
         "$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]+' "build-fuzz/$h.log" | tail -1)," \
         "peak $(grep -oE '^stat::peak_rss_mb: +[0-9]+' "build-fuzz/$h.log" | grep -oE '[0-9]+$') MB, no defect"
  else
    {
      echo "fuzz.sh: $h FOUND A DEFECT; the input is in build-fuzz/crashes/$h/; the report (build-fuzz/$h.log):"
      grep -E "ERROR|SUMMARY|terminate|what\(\)|runtime error|#[0-9]+ 0x" "build-fuzz/$h.log" | head -30 || tail -30 "build-fuzz/$h.log"
    } >&2
    return 1
  fi
}

# Harnesses run side by side, one per core (FUZZ_JOBS overrides), each for SECONDS.
jobs=${FUZZ_JOBS:-$(nproc)}
((jobs < ${#harnesses[@]})) || jobs=${#harnesses[@]}
echo "fuzz.sh: ${harnesses[*]}: ${seconds} s each, $jobs at a time"
status=0 running=0
for h in "${harnesses[@]}"; do
  if ((running >= jobs)); then wait -n || status=1; running=$((running - 1)); fi
  fuzz_one "$h" "$@" &
  running=$((running + 1))
done
while ((running > 0)); do wait -n || status=1; running=$((running - 1)); done
exit $status
