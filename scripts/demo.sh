#!/usr/bin/env bash
# `make demo`: the main job of fourdnex on the bundled examples, on a CPU, with the
# bundled trained model fourdnex-small (docs/model-card.md).
set -euo pipefail
OUT="${1:-demo_out}"
X=".venv/bin/4dnex"
PY=".venv/bin/python"
EX="$($PY -c 'from importlib import resources; print(resources.files("fourdnex") / "assets" / "examples")')"
NAMES="$($PY -c "import json; print(' '.join(e['name'] for e in json.load(open('$EX/examples.json'))['examples']))")"
FIRST="${NAMES%% *}"
rm -rf "$OUT"
mkdir -p "$OUT"
say() { printf '\n== %s ==\n' "$*"; }
START=$(date +%s)

cat <<'TXT'
fourdnex demo: one image in, a 4D scene out, with the bundled model fourdnex-small
(trained by fourdnex's own recipe on its synthetic world; it knows that world only).
The example images are first frames of held-out synthetic scenes, so every number
below is measured against exact ground truth.
With Wan2.1 + 4DNeX on a GPU:
  4dnex generate IMAGE --model Wan-AI/Wan2.1-I2V-14B-480P-Diffusers --lora LORA_DIR --out DIR
TXT

say "1. generate: each example image (+ its caption) -> a 4D scene"
IMAGES=()
for n in $NAMES; do IMAGES+=("$EX/$n.png"); done
$X generate "${IMAGES[@]}" --prompt-file "$EX/prompts.txt" --prompt-per-line --batch-size 3 \
    --out "$OUT/generated"
$X info "$OUT/generated/$FIRST"

say "2. the ground truth of the examples, regenerated exactly from their seeds"
for n in $NAMES; do
    seed="$($PY -c "import json; print(next(e['seed'] for e in json.load(open('$EX/examples.json'))['examples'] if e['name'] == '$n'))")"
    $X synth --seed "$seed" --frames 17 --height 64 --width 96 --no-previews --out "$OUT/ground_truth/$n" > /dev/null
done
echo "wrote $OUT/ground_truth/{$(echo $NAMES | tr ' ' ',')}"

say "3. register: cameras and depth from the generated XYZ alone"
for n in $NAMES; do $X register "$OUT/generated/$n" | sed -n 1,3p; done

say "4. exports of $FIRST"
$X export "$OUT/generated/$FIRST" --format ply --out "$OUT/export/ply"
$X export "$OUT/generated/$FIRST" --format glb --out "$OUT/export/scene.glb"
$X export "$OUT/generated/$FIRST" --format rrd --out "$OUT/export/scene.rrd"

say "5. novel views of $FIRST"
$X render "$OUT/generated/$FIRST" --trajectory orbit --out "$OUT/render/orbit.mp4"
$X render "$OUT/generated/$FIRST" --trajectory arc --time freeze:8 --out "$OUT/render/bullet_time.mp4"

say "6. evaluation against the ground truth"
GEN=()
for n in $NAMES; do GEN+=("$OUT/generated/$n"); done
$X eval "${GEN[@]}" --gt "$OUT/ground_truth" --out "$OUT/report" --no-plots | tail -4

say "7. summary"
$PY scripts/demo_summary.py "$OUT"

say "done in $(( $(date +%s) - START )) s"
echo "outputs in $OUT/: generated/ (scenes), ground_truth/, export/, render/, report/report.md,"
echo "sheet.png (the picture). View the 4D scene: rerun $OUT/export/scene.rrd"
