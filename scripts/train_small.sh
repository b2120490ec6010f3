#!/usr/bin/env bash
# The fourdnex-small recipe, end to end (docs/model-card.md): synthetic data -> a 4x VAE
# in two stages -> latent cache -> ONE transformer for every condition mode -> the
# bundled model directory. Every step is skipped when its output exists and the
# transformer resumes exactly from its latest checkpoint, so the recipe can be stopped
# and re-run across sittings.
#   bash scripts/train_small.sh [RUN_DIR] [MODEL_OUT]
# Environment:
#   DEVICE=cuda        train the VAE (race and train-vae: --device cuda, bf16 autocast),
#                      encode and train the transformer on a GPU (one process; bf16); the
#                      VAE stages then use every CPU core for loading clips and scoring
#                      instead of the one thread each they keep on a CPU
#   PROCESSES=2        CPU: encoding processes (one thread each, --shard); training runs
#                      in one process on every core (measured faster than two DDP ones)
#   TRANSFORMER_STEPS  the transformer's legs: optimizer steps each leg trains to, comma
#                      separated (default "1000,3500,7000": a cosine to 1,000 steps, then
#                      resumed with the cosine re-computed to 3,500, then to 7,000 (warm
#                      restarts); the shipped run's legs are in docs/model-card.md)
#   FROM_SCRATCH=1     retrain everything even where committed weights could be the start
#   INFERENCE          the sampler defaults written into the model card (default
#                      "steps=20,guidance=3": chosen by measurement, docs/model-card.md)
set -euo pipefail
RUN="${1:-runs/fourdnex-small}"
MODEL_OUT="${2:-src/fourdnex/assets/models/fourdnex-small}"
DEVICE="${DEVICE:-cpu}"
PROCESSES="${PROCESSES:-2}"
LEGS="${TRANSFORMER_STEPS:-1000,3500,7000}"
INFERENCE="${INFERENCE:-steps=20,guidance=3}"
X=".venv/bin/4dnex"
mkdir -p "$RUN"
step() { printf '\n== %s (%s) ==\n' "$*" "$(date +%T)"; }

step "1. synthetic data: VAE clips 0-1999, mixture clips 100000-102999, held-out 1000000-1000099"
[ -d "$RUN/train-data" ] || $X synth --count 2000 --seed 0 --out "$RUN/train-data"
[ -d "$RUN/eval-data" ] || $X synth --count 100 --seed 1000000 --out "$RUN/eval-data"
# every condition mode in one dataset: 15% novel-view completion clips, the rest control
# clips (image 30%, frames at indices 25%, video 15%, camera 30%; each with a motion label)
[ -d "$RUN/mix-data" ] || $X synth --count 3000 --seed 100000 --control --novel-views 0.15 \
    --out "$RUN/mix-data"

# A machine without this run's VAE or checkpoints (a fresh clone) continues from the
# committed weights: the shipped model (when it is this recipe's version) becomes the
# base model (VAE, encoders, statistics) and its transformer the start of training (a
# warm start: optimizer state is not committed). FROM_SCRATCH=1 retrains everything.
FROM_SHIPPED=""
if [ -z "${FROM_SCRATCH:-}" ] && [ ! -d "$RUN/vae/model" ] && [ ! -d "$RUN/transformer/checkpoints" ] \
    && .venv/bin/python -c "import json,sys; sys.exit(json.load(open('$MODEL_OUT/fourdnex.json')).get('condition_encoding') != 'per-modality')" 2>/dev/null; then
    step "2. the committed model is the start: $MODEL_OUT -> $RUN/vae/model"
    mkdir -p "$RUN/vae" && cp -r "$MODEL_OUT" "$RUN/vae/model"
    FROM_SHIPPED=1
fi

step "2a. the 4x VAE on 5-frame crops (the first frame, then one group of 4), bf16 autocast"
# the race winner's own run (scripts/vae_race.py: constant lr 1e-3 after 50 warmup steps),
# continued for 929 steps, then 1800 steps with a cosine to 10%. On a CPU each VAE stage
# keeps to one thread (the shipped run's setting); on a GPU the CPU only loads clips,
# cuts crops and scores the race, so it gets every core.
if [ "$DEVICE" = cpu ]; then VAE_THREADS=1; else VAE_THREADS="$(nproc)"; fi
VR=(.venv/bin/python scripts/vae_race.py --candidate 4x-b16 --data "$RUN/train-data"
    --out "$RUN/race" --minutes 100000 --device "$DEVICE" --threads "$VAE_THREADS"
    --precision bf16)
if [ ! -d "$RUN/vae/model" ]; then
[ -d "$RUN/race/4x-b16/vae" ] || "${VR[@]}" --steps 1474
[ -d "$RUN/race/b16-cont-bf16/vae" ] || "${VR[@]}" --steps 929 --init "$RUN/race/4x-b16/vae" \
    --name b16-cont-bf16
[ -d "$RUN/vae-stage1/model" ] || FOURDNEX_THREADS="$VAE_THREADS" $X train-vae \
    --data "$RUN/train-data" --eval-data "$RUN/eval-data" --out "$RUN/vae-stage1" \
    --init "$RUN/race/b16-cont-bf16/vae" --steps 1800 --warmup-steps 10 --max-clips 1000 \
    --stats-clips 200 --eval-clips 20 --seed 2 --device "$DEVICE" --threads "$VAE_THREADS" \
    --precision auto

step "2b. the VAE on 9-frame crops (a group after a group: what later chunks see), base model"
[ -d "$RUN/vae/model" ] || FOURDNEX_THREADS="$VAE_THREADS" $X train-vae \
    --data "$RUN/train-data" --eval-data "$RUN/eval-data" --out "$RUN/vae" \
    --init "$RUN/vae-stage1/vae" --steps 1200 --batch-size 6 --crop-frames 9 \
    --learning-rate 5e-4 --warmup-steps 50 --max-clips 1000 --stats-clips 200 --eval-clips 20 \
    --seed 1 --device "$DEVICE" --threads "$VAE_THREADS" --precision auto

fi  # the VAE stages

step "3. the latent cache of the mixture (resumable; two one-thread shards on a CPU)"
if [ "$DEVICE" = cpu ] && [ "$PROCESSES" -gt 1 ]; then
    for i in $(seq 0 $((PROCESSES - 1))); do
        FOURDNEX_THREADS=1 $X encode --data "$RUN/mix-data" --preset small-synthetic \
            --model "$RUN/vae/model" --device cpu --shard "$i/$PROCESSES" --no-progress &
    done
    wait
fi
$X encode --data "$RUN/mix-data" --preset small-synthetic --model "$RUN/vae/model" \
    --device "$DEVICE"

step "4. one transformer for every condition, from scratch (resumes from its checkpoints)"
for STEPS in ${LEGS//,/ }; do
    LAST="$(ls -d "$RUN"/transformer/checkpoints/step-* 2>/dev/null | tail -1 | sed -E 's/.*step-0*//')"
    if [ -n "$LAST" ] && [ "$LAST" -ge "$STEPS" ]; then continue; fi
    RESUME=()
    [ -n "$LAST" ] && RESUME=(--resume)
    ARGS=(--preset small-synthetic --data "$RUN/mix-data" --model "$RUN/vae/model"
          --out "$RUN/transformer" --max-steps "$STEPS" --ema-decay 0.999 --probe-every 500
          "${RESUME[@]}")
    # from scratch the output layer starts at zero; a start from committed weights keeps it
    [ -z "$FROM_SHIPPED" ] && ARGS+=(--zero-init-output)
    # accelerate places it on a GPU when there is one
    FOURDNEX_THREADS="${TRAIN_THREADS:-$(nproc)}" $X train "${ARGS[@]}"
done

step "5. the model directory (the EMA transformer)"
.venv/bin/python scripts/package_small.py --base "$RUN/vae/model" --run "$RUN/transformer" \
    --inference "$INFERENCE" --out "$MODEL_OUT"
