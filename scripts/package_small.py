"""Assemble the bundled fourdnex-small model directory from a recipe run.

    python scripts/package_small.py --base RUN/vae/model --run RUN/transformer \
        --out src/fourdnex/assets/models/fourdnex-small
    python scripts/package_small.py --base src/fourdnex/assets/models/fourdnex-small \
        --completion-run RUN/transformer --out MODEL   # add a completion transformer
    python scripts/package_small.py --base src/fourdnex/assets/models/fourdnex-small \
        --control-run RUN/transformer --out MODEL      # add a control transformer

The base directory (`4dnex train-vae`) gives the VAE, the encoders, the tokenizer, the
scheduler and ``fourdnex.json``; the latest checkpoint of the training run
(`4dnex train --preset small-synthetic`) gives the transformer, domain embeddings
included (without ``--run`` the base's is kept); ``--completion-run`` adds a second
transformer for novel-view completion (``transformer_completion/``), ``--control-run``
one for the conditions beyond one image (``transformer_control/``). Weights are
stored in float16 safetensors (the package stays small; they are loaded back in
float32 on a CPU). ``fourdnex.json`` gets the training record.
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
from fourdnex.models.loading import COMPLETION_TRANSFORMER, CONTROL_TRANSFORMER
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
    ap.add_argument(
        "--run",
        type=Path,
        help="the `4dnex train` output directory (default: keep the base's transformer)",
    )
    ap.add_argument(
        "--completion-run",
        type=Path,
        help="a `4dnex train` run whose transformer "
        f"becomes the completion transformer ({COMPLETION_TRANSFORMER}/)",
    )
    ap.add_argument(
        "--control-run",
        type=Path,
        help="a `4dnex train` run whose transformer "
        f"becomes the control transformer ({CONTROL_TRANSFORMER}/)",
    )
    ap.add_argument("--out", type=Path, required=True, help="the model directory to write")
    ap.add_argument("--extra", type=Path, help="JSON merged into fourdnex.json's training record")
    args = ap.parse_args(argv)

    card = read_model_card(args.base)
    if card is None:
        sys.exit(f"{args.base} has no {MODEL_JSON}: not a `4dnex train-vae` base model")
    training = dict(card.training)
    transformers = {"transformer": args.base / "transformer"}
    runs = {
        "transformer": args.run,
        COMPLETION_TRANSFORMER: args.completion_run,
        CONTROL_TRANSFORMER: args.control_run,
    }
    for key, run in runs.items():
        if run is not None:
            transformers[key], training[key] = trained_transformer(run)
        elif key != "transformer" and (args.base / key).is_dir():
            transformers[key] = args.base / key
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
        for name, src in transformers.items():
            halve_directory(src, tmp / name)
        write_model_card(tmp, type(card)(**{**card.__dict__, "training": training}))
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({', '.join(transformers)}; {size / 1e6:.1f} MB)")
    return 0


def trained_transformer(run: Path) -> tuple[Path, dict]:
    """The full transformer of a training run's latest checkpoint, and its record."""
    latest = ckpt.latest_checkpoint(run)
    if latest is None:
        sys.exit(f"{run} has no complete checkpoint")
    step, path = latest
    transformer = path / ckpt.FULL_DIR
    if not (transformer / "config.json").is_file():
        sys.exit(f"{path} has no full transformer (was it trained with --full-finetune?)")
    run_config = json.loads((run / "config.json").read_text())
    record = {
        "step": step,
        "checkpoint": path.name,
        "settings": run_config.get("settings"),
        "versions": run_config.get("versions"),
    }
    return transformer, record


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
