"""``4dnex train --preset NAME --data DIR --out DIR [--max-steps N] [--resume]``.

Every option of :class:`~fourdnex.train.config.TrainConfig` can be overridden; the
preset supplies the defaults. Several GPUs or machines: run it under accelerate, e.g.
``accelerate launch --config_file configs/accelerate/ddp-8gpu.yaml -m fourdnex.cli.train ...``;
two processes on one CPU machine: ``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu
--num_processes 2 -m fourdnex.cli.train ...`` (see docs/training.md).
"""

from __future__ import annotations

import sys

import tyro

from fourdnex.cli.args import UsageError
from fourdnex.cli.args import parse as parse_args
from fourdnex.train.config import TRAIN_PRESETS, TrainConfig, preset_config

#: The preset when --preset is not given.
DEFAULT_PRESET = "tiny-synthetic"


def parse(argv: list[str]) -> TrainConfig:
    """The config of a command line: the preset's values, then the overrides."""
    preset = DEFAULT_PRESET
    for i, arg in enumerate(argv):
        if arg == "--preset":
            if i + 1 >= len(argv):
                raise UsageError("--preset needs a value (see `4dnex train --help`)")
            preset = argv[i + 1]
        elif arg.startswith("--preset="):
            preset = arg.split("=", 1)[1]
    if preset not in TRAIN_PRESETS:
        raise UsageError(f"unknown --preset {preset!r} (one of {', '.join(sorted(TRAIN_PRESETS))})")
    default = preset_config(preset, data=tyro.MISSING, out=tyro.MISSING)
    return parse_args(TrainConfig, args=argv, default=default, prog="4dnex train")


def main(argv: list[str]) -> int:
    from fourdnex.train.trainer import train

    cfg = parse(argv)
    result = train(cfg)
    if result.checkpoints and result.main_process:
        print(f"train: step {result.step}; last checkpoint {result.checkpoints[-1]}")
    return 0


if __name__ == "__main__":  # `accelerate launch -m fourdnex.cli.train ...`
    from fourdnex.cli.main import main as cli_main

    raise SystemExit(cli_main(["train", *sys.argv[1:]]))
