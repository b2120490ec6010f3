"""The loss curves of the fourdnex-small recipe, as one PNG for the model card.

    python scripts/plot_losses.py RUN_DIR OUT.png

Reads ``RUN_DIR/vae-stage1/vae_losses.jsonl`` and ``RUN_DIR/vae/vae_losses.jsonl`` (the
two VAE stages), the TensorBoard log of ``RUN_DIR/transformer`` (the flow-matching loss
of every logged step) and, when the run kept one, its learning curve
``RUN_DIR/transformer/probe.jsonl`` (frame-0 delta1 of the one-step posterior mean on
held-out scenes, :mod:`fourdnex.train.probe`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fourdnex.train.loss_log import loss_curve  # noqa: E402


def smooth(y: np.ndarray, window: int = 25) -> np.ndarray:
    if len(y) < window:
        return y
    kernel = np.ones(window) / window
    return np.convolve(y, kernel, mode="valid")


def vae_curve(path: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return np.array([r["step"] for r in rows]), np.array([r["l1"] for r in rows])


def probe_curve(path: Path) -> dict[int, dict]:
    """The probe rows by step (a resumed run's repeated steps: the last row wins)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {int(r["step"]): r for r in rows}


def main(run: Path, out: Path) -> int:
    probe_path = run / "transformer" / "probe.jsonl"
    panels = 3 if probe_path.is_file() else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.4))
    a, b = axes[0], axes[1]
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
    ts, tl = loss_curve(run / "transformer")
    b.plot(ts, tl, alpha=0.3, color="C2")
    sm = smooth(tl, 9)
    b.plot(ts[len(ts) - len(sm) :], sm, color="C2")
    b.set_xlabel("transformer step (batch 8)")
    b.set_ylabel("flow-matching loss (MSE of velocity)")
    b.set_title("transformer")
    if panels == 3:
        rows = probe_curve(probe_path)
        steps = sorted(rows)
        c = axes[2]
        # the XYZ itself, in the true first camera: the registered figure of a one-step
        # mean (a blurred XYZ) says more about registration than about learning
        c.plot(steps, [rows[k]["d1_frame0_true_camera"] for k in steps], "s-",
               label="true camera")  # fmt: skip
        c.set_xlabel("transformer step")
        c.set_ylabel("frame-0 depth delta<1.25 (median)")
        c.set_title("one-step posterior mean, held-out")
        c.set_ylim(0, 1)
        c.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/plot_losses.py RUN_DIR OUT.png")
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
