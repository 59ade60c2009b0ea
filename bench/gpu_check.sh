#!/usr/bin/env bash
# GPU check, for a task that has a GPU lent (under 3 minutes): the tests that need CUDA,
# the training benchmark on the GPU, and 20 epochs of `vae-tui train` with and without
# CUDA graphs, timed. Run from the repository root: bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
python - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0))
PY
echo "== tests that need CUDA"
python -m pytest -q -rs -p no:xdist tests/test_steps.py tests/test_checkpoint.py tests/test_cli_parser.py -k "gpu or graph or cuda" 2>&1 | tail -5
echo "== training benchmark on cuda, batch 128"
python bench/train_speed.py --device cuda --epochs 5 --rows vae-tui,floor --json "$OUT/train_speed_cuda.json"
echo "== training benchmark on cuda, conv arch, batch 128"
python bench/train_speed.py --arch conv --device cuda --epochs 3 --rows vae-tui,floor --json "$OUT/train_speed_conv_cuda.json"
for model in vae cvae; do
  echo "== vae-tui train --arch conv --model $model --device cuda:0 --epochs 2 (first line: the GPU and the graphs)"
  rm -rf "$OUT/conv-$model"
  python -m vae_tui train --arch conv --model $model --device cuda:0 --epochs 2 --out "$OUT/conv-$model" | grep -E "Training|CUDA graphs|epoch 2/2|Done"
done
for graphs in "" "--no-cuda-graphs"; do
  echo "== vae-tui train --device cuda --epochs 20 $graphs"
  rm -rf "$OUT/run"
  TIMEFORMAT="wall time of the whole command: %R s"
  time (python -m vae_tui train --device cuda --epochs 20 $graphs --out "$OUT/run" | grep -E "epoch (1|2|19|20)/20|Done")
  python - "$OUT/run/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
train = sum(r["train_seconds"] for r in rows)
print(f"training time (epoch loops, no eval or writes): {train:.2f} s over {len(rows)} epochs;"
      f" all epochs with eval and writes: {sum(r['seconds'] for r in rows):.2f} s; test loss {rows[-1]['test_loss']:.2f}")
PY
done
# NCCL: DDP on 2 GPUs against 1 GPU, 1 epoch each, same seed; the test losses should agree within about 0.5 nats
# (docs/distributed.md). Needs a machine with 2 GPUs; it was written on a CPU machine and has NOT been run.
if [ "$(python -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
  for n in 2 1; do
    echo "== NCCL: torchrun --standalone --nproc-per-node $n -m vae_tui train --epochs 1 --device cuda"
    rm -rf "$OUT/ddp-$n"
    python -m torch.distributed.run --standalone --nproc-per-node $n -m vae_tui train --epochs 1 --device cuda \
      --seed 0 --no-preview --out "$OUT/ddp-$n" | grep -E "Training|processes|epoch 1/1|Done"
    python -c "import json,sys; r=json.loads(open(sys.argv[1]).readline()); print('$n GPU(s): test loss', round(r['test_loss'], 3))" "$OUT/ddp-$n/metrics.jsonl"
  done
else
  echo "== NCCL check skipped: it needs 2 GPUs"
fi
