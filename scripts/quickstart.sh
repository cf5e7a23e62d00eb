#!/usr/bin/env bash
# The main job on the built-in demo dataset (README, "Quick start"): install, then train, evaluate
# and synthesize with the anatomask_oasis bundle through its MONAI bundle configs, on the demo brain
# dataset the bundle generates (Learn2Reg OASIS layout), at a CPU-sized configuration.
# Outputs go to runs/quickstart/anatomask_oasis (the bundle folder itself stays clean; OUT=DIR puts
# them elsewhere). Running it again in the same folder trains afresh: the previous run's checkpoints
# and model move to models/earlier_run_<date>_<time>/ (the log says so).
# EPOCHS=N (default 60: about 4.5 minutes of training on 2 cores) sets the training length; SIZE=N
# (default 64) the slice size. At the end it prints the model against the label-mean baseline on
# the test subjects (psnr_slice and st_lpips, the target of README "Evaluation").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
ROOT="${OUT:-$(pwd)/runs/quickstart/anatomask_oasis}"
CONFIGS="$(pwd)/bundles/anatomask_oasis/configs"
EPOCHS="${EPOCHS:-60}"
SIZE="${SIZE:-64}"
# A small network for a CPU (the paper's is base_channels 64, 224 x 224). The perceptual term is
# off (lambda_vgg 0) so the job runs the same offline, where VGG19 weights cannot be downloaded.
NET=(--spatial_size "[$SIZE,$SIZE]" --num_slices 5 --base_channels 16 --channel_mults "[4,4,2,1]" --spade_hidden 32
     --stack_batch_size 8)
# run ID CONFIG... -- ARGS: evaluate.json is an overlay of train.json, so it runs as "train evaluate"
run() {
  local id="$1" files=() ; shift
  while [ "$1" != "--" ]; do files+=("'$CONFIGS/$1.json'"); shift; done; shift
  python -m monai.bundle run "$id" --config_file "[$(IFS=,; echo "${files[*]}")]" --bundle_root "$ROOT" "$@"
}

echo "== train ($EPOCHS epochs) =="
run training train -- "${NET[@]}" --disc_channels 32 --lambda_vgg 0 --batch_size 4 --stacks_per_volume 2 \
    --val_interval "$EPOCHS" --train#trainer#max_epochs "$EPOCHS"
echo "== evaluate (test subjects) =="
run evaluating train evaluate -- "${NET[@]}"
echo "== synthesize (test subjects' label maps, 2 noise seeds each) =="
run inferring inference -- "${NET[@]}" --num_samples 2
echo
echo "== model against the label-mean baseline (test subjects) =="
anatosynth floor "$ROOT/eval/metrics.json"
echo
echo "Demo data:        $ROOT/runs/demo_data  (Learn2Reg OASIS layout)"
echo "Trained model:    $ROOT/models/model.pt  (TensorBoard: tensorboard --logdir $ROOT/runs)"
echo "Metrics:          $ROOT/eval/metrics.csv, $ROOT/eval/metrics.json"
echo "Montage (PNG):    $ROOT/eval/montage.png"
echo "Synthesized NIfTI:"
ls -1 "$ROOT"/synth/*.nii.gz | sed 's/^/  /'
