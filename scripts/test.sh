#!/usr/bin/env bash
# All tests: set-up, then ctest (GoogleTest binaries, with transformers run live as the oracle).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
