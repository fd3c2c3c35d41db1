#!/usr/bin/env bash
# The main job on an embedded default. Until training lands: make a tiny EXAONE 4.0 model with
# transformers, inspect it, run a forward pass on it; and inspect the real EXAONE-4.0-1.2B config
# when ../shared has it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
model=build/demo/tiny-exaone4
[ -f "$model/model.safetensors" ] || .venv/bin/python scripts/make_tiny_model.py --model-type exaone4 --out "$model"
echo "== lorakit inspect $model"
build/lorakit inspect "$model"
echo
echo "== lorakit forward $model --ids 1,17,42,99,5"
build/lorakit forward "$model" --ids 1,17,42,99,5
real=../shared/models/EXAONE-4.0-1.2B
if [ -f "$real/config.json" ]; then
  echo
  echo "== lorakit inspect $real (config only)"
  build/lorakit inspect "$real"
  echo
  echo "== lorakit tokenize --model $real --text '...'"
  build/lorakit tokenize --model "$real" --text '[|user|]
로라야, 오늘 기분 어때? 😊[|endofturn|]'
fi
if [ -f ../shared/datasets/ohlora/OhLoRA_fine_tuning_25042213.csv ]; then
  echo
  echo "== lorakit data stats recipes/ohlora-polyglot-ko.yaml"
  build/lorakit data stats recipes/ohlora-polyglot-ko.yaml
fi
