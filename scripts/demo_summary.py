"""The last step of `make demo`: a short table and one picture of what the demo made.

    python scripts/demo_summary.py DEMO_OUT

Reads the bundled examples (``fourdnex/assets/examples/examples.json``), the scenes
generated and registered from them (``DEMO_OUT/generated/<name>``), their ground
truth (``DEMO_OUT/ground_truth/<name>``) and the novel views of the first example
(``DEMO_OUT/render/*.mp4``). Prints, per example, frame-0 depth delta<1.25 and AbsRel
(median-scaled) of the model against the plane-init baseline, the RGB-XYZ consistency
of the generated clip against the truth's own, and seconds per scene; writes
``DEMO_OUT/sheet.png`` (input, generated RGB, XYZ, depth, novel views).
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from fourdnex.eval.consistency import rgb_xyz_consistency
from fourdnex.eval.generation import first_frame_depth
from fourdnex.eval.sheet import SheetEntry, write_sheet
from fourdnex.geometry import register
from fourdnex.io.video_files import read_video, to_uint8
from fourdnex.scene import Scene4D
from fourdnex.sixd import plane_init


def examples() -> tuple[Path, list[dict]]:
    root = Path(str(resources.files("fourdnex").joinpath("assets", "examples")))
    return root, json.loads((root / "examples.json").read_text())["examples"]


def consistency(scene: Scene4D) -> float:
    assert scene.K is not None and scene.cam2world is not None
    return rgb_xyz_consistency(
        scene.rgb, scene.xyz, scene.K, scene.cam2world, depth=scene.depth
    ).photometric_l1


def main(out: Path) -> int:
    root, items = examples()
    rows: list[tuple] = []
    entries: list[SheetEntry] = []
    drifted: list[str] = []
    for item in items:
        name = item["name"]
        gen = Scene4D.load(out / "generated" / name)
        gt = Scene4D.load(out / "ground_truth" / name)
        image = np.asarray(Image.open(root / item["image"]).convert("RGB"))
        if not np.array_equal(to_uint8(gt.rgb[0]), image):
            sys.exit(f"{name}: the regenerated ground truth does not show the example image")
        if gt.digest() != item["truth_sha256"]:  # the last float bits follow numpy's version
            drifted.append(name)
        assert gen.depth is not None and gt.depth is not None, "register the scenes first"
        plane = register(np.broadcast_to(plane_init(gt.height, gt.width), gt.xyz.shape))
        model_d0 = first_frame_depth(gen.depth, gt.depth)
        plane_d0 = first_frame_depth(plane.depth, gt.depth)
        if model_d0 is None or plane_d0 is None:
            sys.exit(f"{name}: frame 0 has no valid depth after registration")
        record = json.loads((out / "generated" / name / "generation.json").read_text())
        rows.append(
            (name, model_d0, plane_d0, consistency(gen), consistency(gt), record["seconds"])
        )
        views = {}
        if not entries:  # the novel views of the first example
            for video in ("orbit", "bullet_time"):
                path = out / "render" / f"{video}.mp4"
                if path.is_file():
                    views[video.replace("_", " ")] = read_video(path).astype(np.float32) / 255
        with Image.open(root / item["image"]) as im:
            image = np.asarray(im.convert("RGB"), dtype=np.float32) / 255
        entries.append(SheetEntry(f"{name}: {item['caption']}", image, gen, views))

    print(f"{'example':<12}{'d1 model':>10}{'d1 plane':>10}{'AbsRel model':>14}"
          f"{'AbsRel plane':>14}{'RGB-XYZ L1 (truth)':>20}{'s/scene':>9}")  # fmt: skip
    for name, m, p, c, c_gt, sec in rows:
        print(f"{name:<12}{m.delta1:>10.3f}{p.delta1:>10.3f}{m.abs_rel:>14.3f}{p.abs_rel:>14.3f}"
              f"{f'{c:.3f} ({c_gt:.3f})':>20}{sec:>9.1f}")  # fmt: skip
    print("(frame-0 depth from the registered XYZ, median-scaled, against the exact truth)")
    if drifted:
        print(f"note: the regenerated truth of {', '.join(drifted)} shows the example images "
              "exactly but differs from the recorded digests in the last float bits (another "
              "numpy or platform than the one that recorded them)")  # fmt: skip
    sheet = write_sheet(out / "sheet.png", entries)
    print(f"picture: {sheet}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/demo_summary.py DEMO_OUT")
    sys.exit(main(Path(sys.argv[1])))
