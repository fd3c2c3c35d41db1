#!/usr/bin/env bash
# All tests: set-up, then ctest (GoogleTest binaries, with transformers run live as the oracle), then
# a 30-second run of every fuzz harness under the sanitizers (scripts/fuzz.sh all 30). The fuzz build
# (build-fuzz/, clang) is made beside the tests at low priority. Arguments go to ctest and skip the
# fuzzing: scripts/test.sh -R Gguf runs the GGUF tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
fuzz_build=""
if [ $# -eq 0 ]; then
  # In a process group of its own (set -m), so that the trap stops the compilers too; not setsid,
  # which would put it in a scheduler autogroup of its own, where nice does not apply.
  set -m
  nice -n 10 scripts/fuzz.sh all 0 > build/fuzz-build.log 2>&1 &
  fuzz_build=$!
  set +m
  trap 'kill -- "-$fuzz_build" 2>/dev/null || true' EXIT
fi
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
if [ -n "$fuzz_build" ]; then
  wait "$fuzz_build" || { tail -40 build/fuzz-build.log >&2; echo "test.sh: the fuzz build failed (build/fuzz-build.log)" >&2; exit 1; }
  trap - EXIT
  scripts/fuzz.sh all 30
fi
