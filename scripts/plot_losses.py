"""The loss curves of the fourdnex-small recipe, as one PNG for the model card.

    python scripts/plot_losses.py RUN_DIR OUT.png

Reads ``RUN_DIR/vae-stage1/vae_losses.jsonl`` and ``RUN_DIR/vae/vae_losses.jsonl`` (the
two VAE stages) and the TensorBoard log of ``RUN_DIR/transformer`` (the flow-matching
loss of every logged step).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def smooth(y: np.ndarray, window: int = 25) -> np.ndarray:
    if len(y) < window:
        return y
    kernel = np.ones(window) / window
    return np.convolve(y, kernel, mode="valid")


def vae_curve(path: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return np.array([r["step"] for r in rows]), np.array([r["l1"] for r in rows])


def transformer_curve(run: Path) -> tuple[np.ndarray, np.ndarray]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps: dict[int, float] = {}
    for events in sorted((run / "logs").rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        if "loss" in acc.Tags().get("scalars", []):
            for e in acc.Scalars("loss"):
                steps[e.step] = e.value
    keys = sorted(steps)
    return np.array(keys), np.array([steps[k] for k in keys])


def main(run: Path, out: Path) -> int:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    s1, l1 = vae_curve(run / "vae-stage1" / "vae_losses.jsonl")
    s2, l2 = vae_curve(run / "vae" / "vae_losses.jsonl")
    a.plot(s1, l1, alpha=0.25, color="C0")
    a.plot(s1[len(s1) - len(smooth(l1)) :], smooth(l1), color="C0", label="stage 1: 5-frame crops")
    a.plot(s2 + s1[-1], l2, alpha=0.25, color="C1")
    a.plot((s2 + s1[-1])[len(s2) - len(smooth(l2)) :], smooth(l2), color="C1",
           label="stage 2: 9-frame crops")  # fmt: skip
    a.set_xlabel("VAE step")
    a.set_ylabel("L1 reconstruction (crops, [-1, 1] units)")
    a.set_title("VAE")
    a.legend(fontsize=8)
    ts, tl = transformer_curve(run / "transformer")
    b.plot(ts, tl, alpha=0.3, color="C2")
    sm = smooth(tl, 9)
    b.plot(ts[len(ts) - len(sm) :], sm, color="C2")
    b.set_xlabel("transformer step (batch 8)")
    b.set_ylabel("flow-matching loss (MSE of velocity)")
    b.set_title("transformer")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/plot_losses.py RUN_DIR OUT.png")
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
