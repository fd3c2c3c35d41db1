#!/usr/bin/env bash
# The main job on the embedded default: make a tiny EXAONE-architecture model with its tokenizer
# (transformers + HF tokenizers, no downloads), then `lorakit train recipes/demo.yaml` on a small Korean
# CSV the project ships, on the CPU, into runs/demo/. Then a few more commands on the real
# EXAONE-4.0-1.2B and polyglot-ko files when ../shared has them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
model=build/demo/tiny-exaone4-ko
[ -f "$model/tokenizer.json" ] || .venv/bin/python scripts/make_tiny_model.py --model-type exaone4 --out "$model" \
  --tokenizer-corpus tests/fixtures/demo_ko_qa.csv
echo "== lorakit inspect $model"
build/lorakit inspect "$model"
echo
echo "== lorakit train recipes/demo.yaml --overwrite"
build/lorakit train recipes/demo.yaml --overwrite
echo
echo "== lorakit eval on the validation rows: the base model, then with the trained adapter"
build/lorakit eval --recipe recipes/demo.yaml --set data.filter_value=valid
build/lorakit eval --recipe recipes/demo.yaml --set data.filter_value=valid --adapter runs/demo/adapter
echo
echo "== lorakit generate with the adapter (greedy, KV cache)"
build/lorakit generate --model "$model" --adapter runs/demo/adapter --max-new-tokens 24 --prompt '### 질문: 월요일 다음 날은 무슨 요일이야?
### 답변: '
echo
echo "== lorakit merge: adapter folded into the base, a directory AutoModelForCausalLM loads"
build/lorakit merge --model "$model" --adapter runs/demo/adapter --out runs/demo/merged --overwrite
echo
echo "The adapter (PEFT format; PeftModel.from_pretrained loads it): runs/demo/adapter"
echo
echo "== the classifier demo: approve/reject AlimTalk templates, LoRA + a classifier head on a tiny ELECTRA"
classifier=build/demo/tiny-electra-ko
templates=build/demo/alimtalk_templates.csv
[ -f "$templates" ] || .venv/bin/python scripts/make_alimtalk_csv.py --out "$templates"
[ -f "$classifier/tokenizer.json" ] || .venv/bin/python scripts/make_tiny_model.py --model-type electra --out "$classifier" \
  --tokenizer-corpus "$templates"
build/lorakit train recipes/demo-classifier.yaml --overwrite
build/lorakit eval --recipe recipes/demo-classifier.yaml --set data.filter_value=valid --adapter runs/demo-classifier/adapter \
  --predictions runs/demo-classifier/predictions.csv
build/lorakit merge --model "$classifier" --adapter runs/demo-classifier/adapter --out runs/demo-classifier/merged --overwrite
echo "The classifier: runs/demo-classifier/adapter (PEFT SEQ_CLS), runs/demo-classifier/merged (ElectraForSequenceClassification)"
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
