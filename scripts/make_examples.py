"""Write the bundled example images: first frames of held-out synthetic scenes.

    python scripts/make_examples.py [--count 3]

Picks the first held-out seeds (from ``HELD_OUT_SEED_START``; never used for training)
whose camera travels (orbit, pan, dolly or arc), renders each scene at fourdnex-small's
size, and writes ``src/fourdnex/assets/examples/<name>.png`` and ``examples.json``
(name, image, seed, size, caption, and the SHA-256 of the ground truth's arrays, so
`make demo` can regenerate the exact truth with `4dnex synth --seed` and check it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from fourdnex.models.presets import SMALL_FRAMES, SMALL_HEIGHT, SMALL_WIDTH
from fourdnex.synthetic import HELD_OUT_SEED_START, make_scene

OUT = Path(__file__).resolve().parents[1] / "src" / "fourdnex" / "assets" / "examples"
TRAVELLING = ("orbit", "pan", "dolly", "arc")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=3)
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    items, seed = [], HELD_OUT_SEED_START
    while len(items) < args.count:
        scene = make_scene(seed, SMALL_FRAMES, SMALL_HEIGHT, SMALL_WIDTH)
        motion = scene.meta.settings["camera"]["motion"]
        if motion in TRAVELLING:
            name = f"scene{len(items) + 1}"
            rgb = np.rint(scene.rgb[0] * 255).astype(np.uint8)
            Image.fromarray(rgb).save(OUT / f"{name}.png")
            items.append({
                "name": name,
                "image": f"{name}.png",
                "seed": seed,
                "frames": SMALL_FRAMES,
                "height": SMALL_HEIGHT,
                "width": SMALL_WIDTH,
                "camera_motion": motion,
                "caption": scene.meta.caption,
                "truth_sha256": scene.digest(),
            })  # fmt: skip
        seed += 1
    record = {"format": "fourdnex.examples", "version": 1, "examples": items}
    (OUT / "examples.json").write_text(json.dumps(record, indent=2) + "\n")
    (OUT / "prompts.txt").write_text("".join(i["caption"] + "\n" for i in items))
    print(f"wrote {len(items)} examples to {OUT}: seeds {[i['seed'] for i in items]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
