"""``4dnex encode --data DIR [--model ...]``: build the latent cache for training.

Resumable (valid entries are skipped); a clip that fails is reported and the run
goes on; the exit status is 1 if any clip failed. ``--shard I/N`` encodes every N-th
clip from the I-th (0-based), so N processes (or machines sharing the folder) fill one
cache together, e.g. two one-thread processes on a 2-core CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from fourdnex.cli.args import parse
from fourdnex.design import DesignSettings
from fourdnex.errors import FourDNeXError


@dataclass
class EncodeConfig:
    """Encode a training dataset into the latent cache (VAE latents, prompts, CLIP)."""

    data: Path
    """Dataset directory (dataset.json, index.jsonl, clips/)."""
    preset: str = "tiny-synthetic"
    """Training preset whose model and size to encode for (see `4dnex train --help`)."""
    model: str | None = None
    """Base model (diffusers Wan2.1 I2V directory, hub id or 'tiny'); default: the preset's."""
    cache: Path | None = None
    """Cache directory (default: DATA/cache)."""
    frames: int | None = None
    """Frames per clip (default: the preset's)."""
    height: int | None = None
    """Height of each modality (default: the preset's)."""
    width: int | None = None
    """Width of each modality (default: the preset's)."""
    device: str = "auto"
    """Device of the encoders: auto (CUDA if available), cpu, cuda, cuda:1 ..."""
    shard: str | None = None
    """I/N: encode only every N-th clip from the I-th (0 <= I < N), to split the work
    between N processes writing one cache."""
    progress: bool = True
    """Show a progress bar."""
    design: Annotated[DesignSettings, tyro.conf.arg(name="")] = field(
        default_factory=DesignSettings
    )
    """The design settings of the model to train (:class:`~fourdnex.design.DesignSettings`):
    --xyz-condition and --condition-mask change the cached image condition; the others
    are accepted, so the design flags of a `4dnex train` command line work unchanged."""


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``"I/N"`` -> ``(I, N)`` with 0 <= I < N (a one-line error otherwise)."""
    if spec is None:
        return None
    index, sep, count = spec.partition("/")
    if not (sep and index.isdigit() and count.isdigit() and 0 <= int(index) < int(count)):
        raise FourDNeXError(f"--shard must be I/N with 0 <= I < N, got {spec!r}")
    return int(index), int(count)


def main(argv: list[str]) -> int:
    from fourdnex.devices import resolve_device
    from fourdnex.train.cache import CacheSettings, encode_dataset
    from fourdnex.train.config import preset_config
    from fourdnex.train.encoder import WanEncoder
    from fourdnex.train.trainable import condition_encoding_of, model_location

    cfg = parse(EncodeConfig, args=argv, prog="4dnex encode")
    base = preset_config(cfg.preset)
    model = cfg.model if cfg.model is not None else base.model
    settings = CacheSettings.for_design(
        cfg.design,
        model,
        frames=cfg.frames if cfg.frames is not None else base.frames,
        height=cfg.height if cfg.height is not None else base.height,
        width=cfg.width if cfg.width is not None else base.width,
        condition_encoding=condition_encoding_of(model),
    )
    if not cfg.data.is_dir():
        raise FourDNeXError(f"dataset directory not found: {cfg.data}")
    device = str(resolve_device(cfg.device))
    cache = cfg.cache if cfg.cache is not None else cfg.data / "cache"
    report = encode_dataset(
        cfg.data,
        cache,
        settings,
        lambda: WanEncoder(model_location(model), device),
        cfg.progress,
        shard=parse_shard(cfg.shard),
    )
    print(
        f"encode: {report.total} clips: {len(report.encoded)} encoded, "
        f"{len(report.skipped)} already cached, {len(report.failed)} failed -> {cache}"
    )
    for clip_id, reason in report.failed:
        print(f"  failed {clip_id}: {reason}")
    return 1 if report.failed else 0
