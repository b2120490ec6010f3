#!/usr/bin/env bash
# The fourdnex-small recipe, end to end (docs/model-card.md): synthetic data -> VAE ->
# latent cache -> transformer -> the bundled model directory. About 2 hours on a 2-core
# CPU; pass DEVICE=cuda to run the encode and train steps on a GPU.
#   bash scripts/train_small.sh [RUN_DIR] [MODEL_OUT]
set -euo pipefail
RUN="${1:-runs/fourdnex-small}"
MODEL_OUT="${2:-src/fourdnex/assets/models/fourdnex-small}"
DEVICE="${DEVICE:-auto}"
X=".venv/bin/4dnex"
mkdir -p "$RUN"
step() { printf '\n== %s (%s) ==\n' "$*" "$(date +%T)"; }

step "1. synthetic data: training seeds 0-599, held-out seeds 1000000-1000099"
[ -d "$RUN/train-data" ] || $X synth --count 600 --seed 0 --frames 17 --height 64 --width 96 \
    --out "$RUN/train-data"
[ -d "$RUN/eval-data" ] || $X synth --count 100 --seed 1000000 --frames 17 --height 64 \
    --width 96 --out "$RUN/eval-data"

step "2a. the VAE from scratch on 5-frame crops (the first frame, then one group of 4)"
[ -d "$RUN/vae-stage1/model" ] || $X train-vae --data "$RUN/train-data" \
    --eval-data "$RUN/eval-data" --out "$RUN/vae-stage1" --steps 2000 --max-clips 400 \
    --stats-clips 200 --eval-clips 20 --seed 0

step "2b. the VAE on 9-frame crops (a group after a group: what later chunks see), base model"
[ -d "$RUN/vae/model" ] || $X train-vae --data "$RUN/train-data" --eval-data "$RUN/eval-data" \
    --out "$RUN/vae" --init "$RUN/vae-stage1/vae" --steps 1000 --batch-size 6 \
    --crop-frames 9 --learning-rate 5e-4 --warmup-steps 50 --max-clips 400 --stats-clips 200 \
    --eval-clips 20 --seed 1

step "3. the latent cache (resumable)"
$X encode --data "$RUN/train-data" --preset small-synthetic --model "$RUN/vae/model" \
    --device "$DEVICE"

step "4. the transformer, from scratch (resumable with --resume)"
RESUME=()
[ -d "$RUN/transformer/checkpoints" ] && RESUME=(--resume)
$X train --preset small-synthetic --data "$RUN/train-data" --model "$RUN/vae/model" \
    --out "$RUN/transformer" "${RESUME[@]}"

step "5. the model directory"
.venv/bin/python scripts/package_small.py --base "$RUN/vae/model" --run "$RUN/transformer" \
    --out "$MODEL_OUT"
