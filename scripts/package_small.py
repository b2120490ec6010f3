"""Assemble the bundled fourdnex-small model directory from a recipe run.

    python scripts/package_small.py --base RUN/vae/model --run RUN/transformer \
        --out src/fourdnex/assets/models/fourdnex-small

The base directory (`4dnex train-vae`) gives the VAE, the encoders, the tokenizer, the
scheduler and ``fourdnex.json``; the latest checkpoint of the training run
(`4dnex train --preset small-synthetic`) gives the ONE transformer that serves every
condition mode (its EMA weights when the run kept an average), domain embeddings
included (without ``--run`` the base's is kept). Weights are stored in float16
safetensors (the package stays small; they are loaded back in float32 on a CPU), in
files of at most 16 MiB (larger components are sharded with an index, as diffusers and
transformers write them).
``fourdnex.json`` gets the training record, and the run's design settings (its
``design``, :mod:`fourdnex.design`) where they are not the released ones. Only
``transformer/`` is written: other ``transformer_*`` folders of the base (and their
training records) are left out.
Written atomically: a failed run leaves an existing model untouched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from huggingface_hub import save_torch_state_dict
from safetensors.torch import load_file

from fourdnex.design import DesignSettings
from fourdnex.io.atomic import atomic_directory
from fourdnex.models.small import MODEL_JSON, read_model_card, write_model_card
from fourdnex.train import checkpoint as ckpt

#: Components copied as they are (small configs, tokenizer files).
COPIED = ("scheduler", "tokenizer", "image_processor", "model_index.json")
#: Components whose weights are stored in float16.
HALVED = ("vae", "text_encoder", "image_encoder")
#: Largest weights file written (bigger components are sharded).
MAX_FILE_BYTES = 16 * 2**20


def halve_directory(src: Path, dst: Path) -> None:
    """Copy a component directory, storing floating safetensors weights in float16, in
    shards of at most :data:`MAX_FILE_BYTES` (file names and index as the libraries
    write them: ``NAME-00001-of-00002.safetensors`` and ``NAME.safetensors.index.json``)."""
    dst.mkdir(parents=True)
    for path in sorted(src.iterdir()):
        if path.suffix == ".safetensors":
            tensors = load_file(str(path))
            half = {
                k: v.half().contiguous() if v.is_floating_point() else v for k, v in tensors.items()
            }
            save_torch_state_dict(
                half,
                dst,
                filename_pattern=path.stem + "{suffix}.safetensors",
                max_shard_size=MAX_FILE_BYTES,
                metadata={"format": "pt"},
            )
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
    ap.add_argument("--out", type=Path, required=True, help="the model directory to write")
    ap.add_argument("--extra", type=Path, help="JSON merged into fourdnex.json's training record")
    ap.add_argument(
        "--inference",
        help="the model's recommended sampler settings, chosen by measurement, e.g. "
        "steps=20,guidance=2 (fourdnex.json's inference record)",
    )
    args = ap.parse_args(argv)

    card = read_model_card(args.base)
    if card is None:
        sys.exit(f"{args.base} has no {MODEL_JSON}: not a `4dnex train-vae` base model")
    # the record of the one transformer it ships; those of a base model's other
    # transformers (an earlier layout's ``transformer_*`` folders) are not carried over
    training = {k: v for k, v in card.training.items() if not k.startswith("transformer_")}
    transformer = args.base / "transformer"
    design = card.design
    if args.run is not None:
        transformer, training["transformer"] = trained_transformer(args.run)
        settings = training["transformer"]["settings"] or {}
        design = DesignSettings.from_record(settings.get("design"), f"{args.run} settings")
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
        inference = parse_inference(args.inference) if args.inference else card.inference
        write_model_card(
            tmp,
            type(card)(
                **{**card.__dict__, "training": training, "inference": inference, "design": design}
            ),
        )
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} (transformer from {transformer}; {size / 1e6:.1f} MB)")
    return 0


def parse_inference(spec: str) -> dict[str, float]:
    """``steps=20,guidance=2`` -> ``{"steps": 20.0, "guidance": 2.0}`` (known keys only)."""
    out: dict[str, float] = {}
    for item in spec.split(","):
        key, _, value = item.partition("=")
        if key not in ("steps", "guidance", "flow_shift"):
            sys.exit(f"--inference: unknown setting {key!r} (steps, guidance, flow_shift)")
        out[key] = float(value)
    return out


def trained_transformer(run: Path) -> tuple[Path, dict]:
    """The full transformer of a training run's latest checkpoint (its EMA when it has
    one), and its record."""
    latest = ckpt.latest_checkpoint(run)
    if latest is None:
        sys.exit(f"{run} has no complete checkpoint")
    step, path = latest
    ema = (path / ckpt.EMA_DIR / "config.json").is_file()
    transformer = path / (ckpt.EMA_DIR if ema else ckpt.FULL_DIR)
    if not (transformer / "config.json").is_file():
        sys.exit(f"{path} has no full transformer (was it trained with --full-finetune?)")
    run_config = json.loads((run / "config.json").read_text())
    record = {
        "step": step,
        "checkpoint": path.name,
        "weights": "ema" if ema else "raw",
        "settings": run_config.get("settings"),
        "versions": run_config.get("versions"),
    }
    return transformer, record


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
