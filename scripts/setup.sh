#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian 12 machine: Debian packages, the project's .venv with the
# pinned LibTorch wheel (torch==2.11.0, the GPU machine's version) and the test oracles, then
# configure and build into build/ (the CLI is build/lorakit). A run with nothing to do takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  cmake ninja-build g++ pkg-config ccache python3 python3-venv
  libhdf5-dev libsentencepiece-dev libcli11-dev libfmt-dev nlohmann-json3-dev libyaml-cpp-dev libpcre2-dev
  libutf8proc-dev libgtest-dev libgmock-dev libbenchmark-dev libgloo-dev libssl-dev
)
missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The venv: LibTorch for the build, transformers/PEFT as the test oracles. Reinstalled only when
# scripts/requirements.txt changes.
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "${PYTHON:-python3}" -m venv .venv
fi
want="$(sha256sum scripts/requirements.txt | cut -d' ' -f1)"
if [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$want" ]; then
  echo "setup: installing pinned Python packages (torch is a large download the first time)"
  .venv/bin/pip install --disable-pip-version-check -q -r scripts/requirements.txt
  echo "$want" > .venv/.requirements.sha256
fi

if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build build -j"$(nproc)"
