#!/usr/bin/env bash
# `make demo`: the main job of fourdnex on the bundled default image, on a CPU.
set -euo pipefail
OUT="${1:-demo_out}"
X=".venv/bin/4dnex"
PY=".venv/bin/python"
rm -rf "$OUT"
mkdir -p "$OUT"
say() { printf '\n== %s ==\n' "$*"; }

cat <<'TXT'
fourdnex demo
-------------
No trained 4DNeX weights ship with fourdnex yet, and none can be downloaded here, so:
  1. the generation path (image -> Scene4D) runs with a tiny Wan2.1 image-to-video
     model built locally with RANDOM weights. Its output is noise by construction:
     this step shows the path, the files and the timing, not a result.
  2. everything after generation (registration, exports, novel views, evaluation)
     runs on a procedural scene with exact ground truth, where the numbers mean something.
With real weights:
  4dnex generate IMAGE --model Wan-AI/Wan2.1-I2V-14B-480P-Diffusers --lora LORA_DIR --out DIR
TXT

say "1. generation path: bundled image -> Scene4D (random-weight tiny model)"
TRANSFORMERS_VERBOSITY=error $PY -c \
    "from fourdnex.models.tiny import build_tiny_wan_i2v; build_tiny_wan_i2v('$OUT/tiny-wan-random')"
$X generate assets/demo.png --model "$OUT/tiny-wan-random" --steps 4 --frames 17 \
    --height 64 --width 96 --out "$OUT/generated"
$X info "$OUT/generated/demo"

say "2. a procedural scene with exact ground truth"
$X synth --seed 3 --frames 17 --height 96 --width 144 --out "$OUT/ground_truth"
cp -r "$OUT/ground_truth" "$OUT/scene"

say "3. recover cameras and depth from XYZ alone (replaces the true cameras)"
$X register "$OUT/scene" --overwrite

say "4. exports"
$X export "$OUT/scene" --format ply --out "$OUT/export/ply" --stride 2
$X export "$OUT/scene" --format glb --out "$OUT/export/scene.glb" --stride 2
$X export "$OUT/scene" --format rrd --out "$OUT/export/scene.rrd"
$X export "$OUT/scene" --format transforms --out "$OUT/export/transforms"

say "5. novel views"
$X render "$OUT/scene" --trajectory orbit --out "$OUT/render/orbit.mp4"
$X render "$OUT/scene" --trajectory arc --time freeze:8 --out "$OUT/render/bullet_time.mp4"

say "6. evaluation against the ground truth"
$X eval "$OUT/scene" --gt "$OUT/ground_truth" --out "$OUT/report"

say "done"
echo "outputs in $OUT/: generated/ (random-weight generation), scene/ (registered),"
echo "export/, render/, report/report.md. View the 4D scene: rerun $OUT/export/scene.rrd"
