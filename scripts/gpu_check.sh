#!/usr/bin/env bash
# The prepared GPU check (at most 8 minutes on one GPU); run it whenever a GPU is available:
#   1. anatosynth benchmark train-step --paper-size: one paper-size D + G step (224 x 224, 5 slices,
#      64 base channels, the bundles' batch_size) for SPADE and AnatoMaskGAN, amp off and on: step
#      time, peak CUDA memory (max_memory_allocated), the 3D-SNI noise share and the AnatoMaskGAN /
#      SPADE ratio, with their targets. VGG19 runs with torchvision's weights when they are cached,
#      else with random weights of the same architecture (same time and memory), as it says;
#   2. 30 training steps of bundles/anatomask_oasis/configs/train.json at its defaults (amp on) on the
#      brain demo data, through the config itself: steps/s and peak CUDA memory.
# Exits 2 with a message when torch sees no CUDA device, 1 when a part failed or ran out of time.
#   GPU_CHECK_TINY=1   both parts at a tiny size on any device (checks the script itself on a CPU)
#   GPU_CHECK_OUT=DIR  where the bundle run writes (default: a temporary folder)
set -uo pipefail
cd "$(dirname "$0")/.."
# the active environment when it has the package, else the repository's .venv, else a new one
if ! python -c 'import anatosynth_components' 2>/dev/null; then
  if [ -x .venv/bin/python ]; then
    source .venv/bin/activate
  else
    source scripts/bootstrap.sh || exit 1
  fi
fi
TINY="${GPU_CHECK_TINY:-0}"
OUT="${GPU_CHECK_OUT:-$(mktemp -d)}"
BENCH_TIMEOUT=270   # seconds for part 1
TRAIN_TIMEOUT=180   # seconds for part 2 (demo data, caching, 30 steps, the closing validation)
status=0
# check_part RC WHAT TIMEOUT: say why a part failed (out of time, or its exit status) and mark the run failed
check_part() {
  [ "$1" -eq 0 ] && return
  if [ "$1" -eq 124 ]; then echo "gpu_check: $2 ran out of its $3 s" >&2; else echo "gpu_check: $2 failed (exit $1)" >&2; fi
  status=1
}

if [ "$TINY" != 1 ]; then
  if ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: no CUDA device: torch $(python -c 'import torch; print(torch.__version__)') reports" \
         "torch.cuda.is_available() == False. This check needs one GPU (GPU_CHECK_TINY=1 runs its parts" \
         "at a tiny size on a CPU, to check the script only)." >&2
    exit 2
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
fi

VGG=auto
if ! python -c 'import sys; from anatosynth_components.anatomask.vgg import vgg19_weights_path as p; sys.exit(not p().is_file())'; then
  VGG=random
  echo "gpu_check: VGG19 weights are not cached: the benchmark sizes the step with random VGG19 weights," \
       "and the training run sets lambda_vgg 0"
fi

echo "== 1. paper-size training step: SPADE vs AnatoMaskGAN, amp off / on =="
if [ "$TINY" = 1 ]; then
  BENCH=(--size 32 --num-slices 3 --classes 4 --base-channels 8 --channel-mults 2 1 --spade-hidden 8
         --disc-channels 8 --disc-layers 1 --batch 2 --repeats 1 --warmup 0 --amp on --vgg off)
else
  BENCH=(--repeats 3 --warmup 1 --vgg "$VGG")
fi
timeout "$BENCH_TIMEOUT" python -m anatosynth_components.cli benchmark train-step --paper-size "${BENCH[@]}"
check_part $? "the benchmark" "$BENCH_TIMEOUT"

echo "== 2. 30 training steps of anatomask_oasis train.json (defaults, amp on), brain demo data =="
GPU_CHECK_TINY="$TINY" GPU_CHECK_VGG="$VGG" timeout "$TRAIN_TIMEOUT" python - "$OUT" <<'EOF'
import os
import sys
import time

import torch
from ignite.engine import Events
from monai.bundle import ConfigParser

tiny, root = os.environ["GPU_CHECK_TINY"] == "1", sys.argv[1]
steps, warm = (4, 1) if tiny else (30, 5)
parser = ConfigParser()
parser.read_config("bundles/anatomask_oasis/configs/train.json")
override = {
    "bundle_root": root,
    "amp": True,
    "val_interval": 1000,
    "train#trainer#max_epochs": 1,
    "train#trainer#epoch_length": steps,
}
if os.environ["GPU_CHECK_VGG"] != "auto":
    override["lambda_vgg"] = 0
if tiny:
    from anatosynth_components.data.demo.generate import generate_demo

    data = generate_demo("brain", os.path.join(root, "tiny_demo"), subjects=6, shape=(40, 48, 20), progress=False)
    override |= {"dataset_dir": str(data), "spatial_size": [32, 32], "num_slices": 4, "base_channels": 8,
                 "channel_mults": [4, 2, 1], "spade_hidden": 16, "disc_channels": 8, "disc_layers": 2,
                 "lambda_vgg": 0, "amp": "bf16", "batch_size": 4, "stacks_per_volume": 2, "stack_batch_size": 8}
parser.update(override)
shown = {k: parser.get_parsed_content(k) for k in ("device", "amp", "batch_size", "stacks_per_volume", "num_slices", "spatial_size",
                                "base_channels", "lambda_vgg")}
print("train.json with", {k: v for k, v in override.items() if k != "bundle_root"}, "->", shown, flush=True)
start = time.perf_counter()
parser.get_parsed_content("initialize")
trainer = parser.get_parsed_content("train#trainer")  # builds the networks, caches the training volumes
cuda = torch.device(parser.get_parsed_content("device")).type == "cuda"
print(f"set-up (demo data, cache, networks): {time.perf_counter() - start:.1f} s; {trainer.precision}", flush=True)
marks = []
trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda engine: marks.append(time.perf_counter()))
if cuda:
    torch.cuda.reset_peak_memory_stats()
first = time.perf_counter()
trainer.run()
shape = tuple(trainer.state.batch["image"].shape)  # the last batch the trainer took
losses = trainer.state.output["losses"] if isinstance(trainer.state.output, dict) else {}
rate = (len(marks) - 1 - warm) / (marks[-1] - marks[warm]) if len(marks) > warm + 1 else float("nan")
print(f"{len(marks)} steps of {shape[0]} stacks (image batch {shape}): "
      f"{rate:.2f} steps/s after {warm} warm-up steps (first step {marks[0] - first:.1f} s); "
      f"g_total {losses.get('g_total', float('nan')):.3f}, d_total {losses.get('d_total', float('nan')):.3f}")
if cuda:
    print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated, "
          f"{torch.cuda.max_memory_reserved() / 2**30:.2f} GiB reserved "
          f"(of {torch.cuda.get_device_properties(0).total_memory / 2**30:.1f} GiB)")
else:
    print("peak CUDA memory: - (no CUDA device; tiny check of the script)")
EOF
check_part $? "the training run" "$TRAIN_TIMEOUT"
echo "gpu_check: outputs in $OUT; exit $status"
exit $status
