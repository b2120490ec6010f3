#!/usr/bin/env bash
# Novel-view completion for fourdnex-small (docs/model-card.md, "Novel-view completion"):
# the bundled transformer fine-tuned, whole, on a mix of completion clips (the render of a
# synthetic scene along a drawn trajectory as known frames, the exact views as targets)
# and ordinary image-conditioned clips, so that one model does both. About 45 minutes on
# a 2-core CPU; DEVICE=cuda encodes on a GPU (train takes accelerate's device).
#   bash scripts/train_completion.sh [RUN_DIR] [MODEL_OUT]
# MODEL_OUT (default RUN_DIR/model) is a complete model directory; compare it with the
# bundled one (benchmarks/bench_completion.py --model, benchmarks/bench_quality.py --model)
# before copying it over src/fourdnex/assets/models/fourdnex-small.
set -euo pipefail
RUN="${1:-runs/completion}"
MODEL_OUT="${2:-$RUN/model}"
DEVICE="${DEVICE:-auto}"
BASE="src/fourdnex/assets/models/fourdnex-small"
X=".venv/bin/4dnex"
mkdir -p "$RUN"
step() { printf '\n== %s (%s) ==\n' "$*" "$(date +%T)"; }

step "1. data: training seeds 0-599 (as fourdnex-small), 60% of them completion clips"
[ -d "$RUN/train-data" ] || $X synth --count 600 --seed 0 --novel-views 0.6 --frames 17 \
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
.venv/bin/python scripts/package_small.py --base "$BASE" --completion-run "$RUN/transformer" \
    --out "$MODEL_OUT"
