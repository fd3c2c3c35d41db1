#!/usr/bin/env bash
# The one GPU check: on the GPU machine, in one command of at most ~8 minutes, build with CUDA, run
# the GPU tests (model parity on CUDA in fp32 and bf16, LoRA gradients vs PEFT, train vs PEFT and
# train + SIGKILL + resume, merge on the GPU, batched generation, packing, fused AdamW, QLoRA vs
# bitsandbytes, a 1-rank NCCL process group under torchrun) and the
# side-by-side benchmark against PEFT, writing logs, JSON and markdown under $OUT (at most 8 files
# come back). The same steps run here on the CPU in a quick mode, from ctest, so it cannot rot (the
# GPU tests only listed there: ctest runs them on the CPU anyway).
#
#   scripts/gpu_check.sh --prepare   here: .device/ for the run (Debian packages, the shared model
#                                    configs/tokenizers and data the benchmark reads; git-ignored)
#   scripts/gpu_check.sh             there: run(command="scripts/gpu_check.sh", carry=[".device"])
#   scripts/gpu_check.sh --quick     here: build/, the test filters checked (ctest runs those tests on
#                                    the CPU), torchrun with 1 rank on Gloo, bench_vs_peft.py --quick
set -uo pipefail
cd "$(dirname "$0")/.."
mode=full
case "${1:-}" in
  --quick) mode=quick ;;
  --prepare) mode=prepare ;;
  "") ;;
  *) echo "usage: scripts/gpu_check.sh [--quick | --prepare]" >&2; exit 2 ;;
esac
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }

# The GPU tests: binary:gtest-filter. Each reads LORAKIT_TEST_DEVICE.
GPU_TESTS=(
  "test_parity:Parity.LogitsLossAndInputGradientsMatchTransformers"
  "test_lora:Lora.ForwardAndGradientsMatchPeft"
  "test_train:Train.MatchesPeftStepForStep:Train.KilledAfterACheckpointResumesIdentically"
  "test_export:Export.MergedModelsLoadInTransformersWithTheUnmergedLogits:Export.GreedyGenerationMatchesTransformers:Generation.BatchedGreedyEqualsOneAtATime"
  "test_packing:Packing.*"
  "test_optimizer:Optimizer.*"
  "test_qlora:Qlora.LogitsLossAndLoraGradientsMatchBitsandbytesAndPeft"
  "test_classifier:Classifier.LogitsLossAndGradientsMatchPeftSeqCls"
)

if [ "$mode" = prepare ]; then
  ../shared/device/prepare-carry.sh libutf8proc-dev libutf8proc2
  mkdir -p .device/shared/models .device/shared/datasets/skn13_exaone .device/shared/datasets/ohlora \
           .device/shared/configs/polyglot-ko-1.3b
  cp -r ../shared/models/EXAONE-4.0-1.2B ../shared/models/polyglot-ko-1.3b .device/shared/models/
  chmod -R u+w .device/shared
  cp ../shared/datasets/skn13_exaone/train.jsonl .device/shared/datasets/skn13_exaone/
  cp ../shared/datasets/ohlora/OhLoRA_fine_tuning_25042213.csv .device/shared/datasets/ohlora/
  cp build/parity/polyglot-ko-1.3b-config/config.json .device/shared/configs/polyglot-ko-1.3b/
  du -sh .device | sed 's/^/carry: /'
  exit 0
fi

if [ "$mode" = quick ]; then
  OUT=${OUT:-build/gpu-check-quick}
  BUILD=build
  PY=${LORAKIT_PYTHON:-.venv/bin/python}
  export LORAKIT_TEST_DEVICE=cpu
else
  OUT=${OUT:?set OUT to the folder whose files come back}
  BUILD=build-gpu
  PY=python3
  export LORAKIT_TEST_DEVICE=cuda LORAKIT_PYTHON=python3
  # shellcheck disable=SC1091
  source .device/env.sh
fi
mkdir -p "$OUT"
summary="$OUT/summary.md"
echo "# GPU check ($mode), $(date -u +%Y-%m-%dT%H:%MZ)" > "$summary"

if [ "$mode" = full ]; then
  {
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv
    g++ --version | head -1; cmake --version | head -1; nvcc --version | tail -2
    python3 -c "import torch;print(torch.__version__, torch.version.cuda, torch._C._GLIBCXX_USE_CXX11_ABI, torch.backends.cudnn.version())"
    python3 -c "
import torch
q=torch.randn(1,32,2048,128,device='cuda',dtype=torch.bfloat16); k=torch.randn(1,8,2048,128,device='cuda',dtype=torch.bfloat16)
print('sdp choice (bf16, causal, GQA 32/8, 2048x128):', torch._fused_sdp_choice(q,k,k,is_causal=True,enable_gqa=True))
m=torch.zeros(1,1,2048,2048,device='cuda',dtype=torch.bfloat16)
print('sdp choice (bf16, additive mask):', torch._fused_sdp_choice(q,k,k,attn_mask=m,enable_gqa=True))"
  } > "$OUT/facts.txt" 2>&1
  echo "- facts: see facts.txt ($(head -2 "$OUT/facts.txt" | tail -1))" >> "$summary"
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTORCH_CUDA_ARCH_LIST=9.0 -DLORAKIT_PYTHON="$(command -v python3)" \
    > "$OUT/build.log" 2>&1 && cmake --build "$BUILD" -j16 >> "$OUT/build.log" 2>&1
  rc=$?
  echo "- build: exit $rc after $(elapsed) s" >> "$summary"
  if [ $rc -ne 0 ]; then tail -40 "$OUT/build.log" >> "$summary"; exit 1; fi
  for oracle in parity:parity.py lora:lora_oracle.py train:train_oracle.py qlora:qlora_oracle.py classifier:classifier_oracle.py; do
    HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error python3 "scripts/${oracle#*:}" --out "$BUILD/${oracle%%:*}" >> "$OUT/build.log" 2>&1 \
      || echo "- oracle ${oracle#*:} failed (see build.log)" >> "$summary"
  done
  echo "- oracles done after $(elapsed) s" >> "$summary"
fi

# The GPU tests.
failed=0
: > "$OUT/gpu_tests.log"
for entry in "${GPU_TESTS[@]}"; do
  binary=${entry%%:*}
  filter=${entry#*:}
  if [ "$mode" = quick ]; then
    # ctest runs these same tests on the CPU; here only check that each filter still selects a test.
    listed=$("$BUILD/tests/$binary" --gtest_list_tests --gtest_filter="$filter" 2>&1 | grep -c '^  ' || true)
    echo "$binary --gtest_filter=$filter: $listed tests" >> "$OUT/gpu_tests.log"
    if [ "$listed" -gt 0 ]; then echo "- $binary ($filter): $listed tests selected" >> "$summary"
    else echo "- $binary ($filter): **selects no test**" >> "$summary"; failed=$((failed + 1)); fi
    continue
  fi
  if "$BUILD/tests/$binary" --gtest_filter="$filter" >> "$OUT/gpu_tests.log" 2>&1; then
    echo "- $binary ($filter): passed" >> "$summary"
  else
    echo "- $binary ($filter): **FAILED**" >> "$summary"
    failed=$((failed + 1))
  fi
done
echo "- GPU tests on $LORAKIT_TEST_DEVICE: $failed binaries failed, after $(elapsed) s" >> "$summary"

# The process-group path on this machine's one device: torchrun with 1 rank (NCCL on the GPU, Gloo
# here) gives the plain run's per-step losses. One GPU cannot test several ranks (the splitting of
# micro-batches and the all-reduce across ranks are tested on the CPU with Gloo, test_distributed).
device=$([ "$mode" = full ] && echo cuda || echo cpu)
for kind in plain torchrun; do
  launch=("$BUILD/lorakit")
  [ $kind = torchrun ] && launch=("$PY" -m torch.distributed.run --standalone --nproc-per-node 1 --no-python "$BUILD/lorakit")
  "${launch[@]}" train "$BUILD/train/recipe.yaml" --adapter "$BUILD/train/init_adapter" --set train.device=$device \
    --set train.report_to=[none] --set output.dir="/tmp/lorakit-one-rank-$kind" --overwrite > "$OUT/one_rank_$kind.log" 2>&1
done
one_rank=$("$PY" -c "
import csv
a=[float(r['loss']) for r in csv.DictReader(open('/tmp/lorakit-one-rank-plain/metrics.csv'))]
b=[float(r['loss']) for r in csv.DictReader(open('/tmp/lorakit-one-rank-torchrun/metrics.csv'))]
print(f'{len(b)} steps, worst relative loss difference {max(abs(x-y)/abs(x) for x,y in zip(a,b)):.2e}' if a and len(a)==len(b) else 'FAILED')" 2>&1)
echo "- torchrun, 1 rank ($(grep -o 'over [a-z]*' "$OUT/one_rank_torchrun.log" | head -1)) vs a plain run on $device: $one_rank" >> "$summary"
case "$one_rank" in *FAILED*|*Error*) failed=$((failed + 1)) ;; esac

# Host synchronisations of a training step, counted by the CUDA sync debug mode (full mode only).
if [ "$mode" = full ]; then
  LORAKIT_SYNC_DEBUG=1 "$BUILD/lorakit" train "$BUILD/train/recipe.yaml" --adapter "$BUILD/train/init_adapter" \
    --set train.device=cuda --set train.max_steps=4 --set output.dir=/tmp/sync-run --overwrite > "$OUT/sync.log" 2>&1
  echo "- synchronising calls over 4 steps: $(grep -c 'synchroniz' "$OUT/sync.log") (sync.log)" >> "$summary"
fi

# The benchmark against PEFT, in what time is left.
if [ "$mode" = quick ]; then
  "$PY" scripts/bench_vs_peft.py --quick --out "$OUT" --lorakit "$BUILD/lorakit" > "$OUT/bench.log" 2>&1
else
  budget=$(( 460 - $(elapsed) ))
  python3 scripts/bench_vs_peft.py --out "$OUT" --lorakit "$BUILD/lorakit" --budget-seconds "$budget" \
    --shared .device/shared > "$OUT/bench.log" 2>&1
fi
rc=$?
echo "- benchmark: exit $rc after $(elapsed) s (bench_vs_peft.md, bench_vs_peft.json)" >> "$summary"
[ $rc -eq 0 ] || tail -20 "$OUT/bench.log" >> "$summary"
cat "$summary"
[ $failed -eq 0 ] && [ $rc -eq 0 ]
