"""``4dnex train-vae --data DATA --out DIR``: train a small model's VAE, write its base model.

The first step of the fourdnex-small recipe (docs/model-card.md): the VAE is trained
from scratch on the dataset's fused RGB | XYZ clips; its latent statistics and the
XYZ latent normalization are measured; ``DIR/model`` is then a complete Wan2.1 I2V
directory (trained VAE, random transformer, frozen encoders) for `4dnex encode` and
`4dnex train --full-finetune`.

``--device`` (auto: cuda when available) places training, statistics and reports; an
absent device is a one-line error before anything is read or written.
"""

from __future__ import annotations

from fourdnex.cli.args import parse
from fourdnex.train.vae import MODEL_DIR, REPORT, VAETrainConfig


def main(argv: list[str]) -> int:
    cfg = parse(VAETrainConfig, args=argv, prog="4dnex train-vae")
    from fourdnex.train.vae import train_vae

    report = train_vae(cfg)
    held = report.get("held_out")
    if held:
        print(
            f"held-out reconstruction ({held['clips']} clips): RGB {held['rgb_psnr_db']} dB PSNR, "
            f"XYZ mean abs error {held['xyz_mae']}"
        )
    stats = report["xyz_latent"]
    print(f"XYZ latent normalization: mean {stats['mean']}, std {stats['std']}")
    print(
        f"wrote {cfg.out / MODEL_DIR} and {cfg.out / REPORT} "
        f"({report['train_seconds']} s on {report['device']})"
    )
    return 0
