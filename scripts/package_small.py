"""Assemble the bundled fourdnex-small model directory from a recipe run.

    python scripts/package_small.py --base RUN/vae/model --run RUN/transformer \
        --out src/fourdnex/assets/models/fourdnex-small

The base directory (`4dnex train-vae`) gives the VAE, the encoders, the tokenizer, the
scheduler and ``fourdnex.json``; the latest checkpoint of the training run
(`4dnex train --preset small-synthetic`) gives the transformer, domain embeddings
included. Weights are stored in float16 safetensors (the package stays small; they
are loaded back in float32 on a CPU). ``fourdnex.json`` gets the training record.
Written atomically: a failed run leaves an existing model untouched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from fourdnex.io.atomic import atomic_directory
from fourdnex.models.small import MODEL_JSON, read_model_card, write_model_card
from fourdnex.train import checkpoint as ckpt

#: Components copied as they are (small configs, tokenizer files).
COPIED = ("scheduler", "tokenizer", "image_processor", "model_index.json")
#: Components whose weights are stored in float16.
HALVED = ("vae", "text_encoder", "image_encoder")


def halve_directory(src: Path, dst: Path) -> None:
    """Copy a component directory, storing floating safetensors weights in float16."""
    dst.mkdir(parents=True)
    for path in sorted(src.iterdir()):
        if path.suffix == ".safetensors":
            tensors = load_file(str(path))
            half = {
                k: v.half().contiguous() if v.is_floating_point() else v for k, v in tensors.items()
            }
            save_file(half, str(dst / path.name), metadata={"format": "pt"})
        elif path.is_file():
            shutil.copy2(path, dst / path.name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="RUN/vae/model from train-vae")
    ap.add_argument("--run", type=Path, required=True, help="the `4dnex train` output directory")
    ap.add_argument("--out", type=Path, required=True, help="the model directory to write")
    ap.add_argument("--extra", type=Path, help="JSON merged into fourdnex.json's training record")
    args = ap.parse_args(argv)

    card = read_model_card(args.base)
    if card is None:
        sys.exit(f"{args.base} has no {MODEL_JSON}: not a `4dnex train-vae` base model")
    latest = ckpt.latest_checkpoint(args.run)
    if latest is None:
        sys.exit(f"{args.run} has no complete checkpoint")
    step, path = latest
    transformer = path / ckpt.FULL_DIR
    if not (transformer / "config.json").is_file():
        sys.exit(f"{path} has no full transformer (was it trained with --full-finetune?)")
    run_config = json.loads((args.run / "config.json").read_text())
    training = dict(card.training)
    training["transformer"] = {
        "step": step,
        "checkpoint": path.name,
        "settings": run_config.get("settings"),
        "versions": run_config.get("versions"),
    }
    if args.extra is not None:
        training.update(json.loads(args.extra.read_text()))
    with atomic_directory(args.out, overwrite=True) as tmp:
        for name in COPIED:
            src = args.base / name
            if src.is_dir():
                shutil.copytree(src, tmp / name)
            else:
                shutil.copy2(src, tmp / name)
        for name in HALVED:
            halve_directory(args.base / name, tmp / name)
        halve_directory(transformer, tmp / "transformer")
        write_model_card(tmp, type(card)(**{**card.__dict__, "training": training}))
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} (transformer step {step}, {size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
