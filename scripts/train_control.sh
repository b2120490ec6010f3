#!/usr/bin/env bash
# Conditions beyond one image for fourdnex-small (docs/control.md): the bundled scene
# transformer fine-tuned, whole, on control clips: frame 0 known (the 4DNeX image
# condition, 30%), whole frames at drawn indices (25%), every frame (video to 4D, 15%)
# and frame 0's points rendered into every camera (camera control, 30%), each with a
# drawn motion strength (its label; 20% static worlds). About 50 minutes on a 2-core
# CPU; DEVICE=cuda encodes on a GPU (train takes accelerate's device).
#   bash scripts/train_control.sh [RUN_DIR] [MODEL_OUT]
# MODEL_OUT (default RUN_DIR/model) is a complete model directory; compare it with the
# bundled one (benchmarks/bench_control.py --model, benchmarks/bench_quality.py --model)
# before packaging it (scripts/package_small.py --control-run).
set -euo pipefail
RUN="${1:-runs/control}"
MODEL_OUT="${2:-$RUN/model}"
DEVICE="${DEVICE:-auto}"
BASE="src/fourdnex/assets/models/fourdnex-small"
X=".venv/bin/4dnex"
mkdir -p "$RUN"
step() { printf '\n== %s (%s) ==\n' "$*" "$(date +%T)"; }

step "1. data: training seeds 0-599 (as fourdnex-small), every clip a control clip"
[ -d "$RUN/train-data" ] || $X synth --count 600 --seed 0 --control --frames 17 \
    --height 64 --width 96 --out "$RUN/train-data"

step "2. the latent cache with the bundled model's encoders (resumable)"
$X encode --data "$RUN/train-data" --preset small-synthetic --model fourdnex-small \
    --device "$DEVICE"

step "3. the whole transformer, from the bundled weights (resumable with --resume)"
RESUME=()
[ -d "$RUN/transformer/checkpoints" ] && RESUME=(--resume)
$X train --preset small-synthetic --model fourdnex-small --data "$RUN/train-data" \
    --out "$RUN/transformer" --max-steps 1200 --learning-rate 2e-4 --warmup-steps 50 \
    "${RESUME[@]}"

step "4. the model directory"
.venv/bin/python scripts/package_small.py --base "$BASE" --control-run "$RUN/transformer" \
    --out "$MODEL_OUT"
