"""The ablation table: models of different design settings (arms) scored alike.

``benchmarks/ablations.py`` trains and scores the arms (docs/ablations.md); this module
turns an arm's per-scene scores (:func:`fourdnex.eval.generation.generation_scores`)
into its statistics (:func:`arm_statistics`) and writes the report
(:func:`write_ablation_table`): a Markdown table with a median and its 95% bootstrap
interval per metric, bold where an arm differs from the reference arm beyond both kinds of
chance (:func:`beyond_spread`): by more than the reference differs from itself trained with
another seed, and with a paired 95% bootstrap interval over the same scenes that excludes
zero (:func:`paired_difference`); one picture with a row per arm, and one plot of every
arm's training loss.

An arm's record (``result``, a JSON object) holds ``stats`` (:func:`arm_statistics`),
``rows`` (its per-scene scores, each with the scene's ``seed``), ``loss`` (``{"steps",
"values"}``: its logged training loss) and ``seconds`` (``{"train", "evaluate"}``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fourdnex.eval.ladder import bootstrap_interval, median_and_interval
from fourdnex.io.atomic import atomic_file

#: The table's metrics: (score key, header, format). ``direction`` is the share of scenes
#: whose generated camera travels the true way (cosine > 0), of those where both move.
METRICS = (
    ("d1_frame0", "frame-0 depth d<1.25", ".3f"),
    ("absrel_frame0", "frame-0 AbsRel", ".3f"),
    ("d1_all", "all-frame depth d<1.25", ".3f"),
    ("consistency_ratio", "RGB-XYZ consistency / truth's", ".2f"),
    ("residual_rel", "registration residual", ".2%"),
    ("direction", "camera direction agreement", ".0%"),
    ("rgb_psnr_frame0", "frame-0 RGB PSNR (dB)", ".1f"),
)
#: The last share of the logged losses whose mean is the table's final loss.
FINAL_LOSS_SHARE = 0.1
#: The picture's columns: what each arm's row shows.
PICTURE_COLUMNS = ("input", "RGB, last frame", "XYZ, last frame", "depth (registered)",
                   "novel view (orbit)")  # fmt: skip


def arm_statistics(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float] | None]:
    """Per metric of :data:`METRICS`: the median of the scenes' scores and its 95% bootstrap
    interval (``direction``: the share and its interval; None when no camera moved)."""
    stats: dict[str, dict[str, float] | None] = {}
    for key, _, _ in METRICS:
        if key == "direction":
            flags = [r["direction_cosine"] > 0 for r in rows if r["direction_cosine"] is not None]
            stats[key] = bootstrap_interval(flags, np.mean, name="share") if flags else None
        else:
            stats[key] = median_and_interval([r[key] for r in rows])
    return stats


def _value(stat: dict[str, float] | None) -> float | None:
    return None if stat is None else float(stat.get("median", stat.get("share", np.nan)))


def paired_difference(
    arm_rows: Sequence[dict[str, Any]],
    reference_rows: Sequence[dict[str, Any]],
    key: str,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, float] | None:
    """The arm's statistic of metric ``key`` minus the reference's, over the scenes both
    scored (matched by their ``seed``), and its 95% paired-bootstrap interval: each draw
    resamples scenes once for both arms, so the scenes' own spread cancels. ``direction``
    compares shares over the scenes where both cameras moved; None when no scene is left.

    Returns:
        ``{"difference", "lo", "hi", "n"}``.
    """
    ref = {r["seed"]: r for r in reference_rows}
    pairs = [(r, ref[r["seed"]]) for r in arm_rows if r["seed"] in ref]
    if key == "direction":
        pairs = [
            p for p in pairs if None not in (p[0]["direction_cosine"], p[1]["direction_cosine"])
        ]
        values = np.array(
            [[a["direction_cosine"] > 0, b["direction_cosine"] > 0] for a, b in pairs], float
        )
        statistic: Any = np.mean
    else:
        values = np.array([[a[key], b[key]] for a, b in pairs], np.float64)
        statistic = np.median
    if not len(values):
        return None
    draws = values[np.random.default_rng(seed).integers(0, len(values), (resamples, len(values)))]
    differences = statistic(draws[..., 0], axis=1) - statistic(draws[..., 1], axis=1)
    lo, hi = np.percentile(differences, [2.5, 97.5])
    return {"difference": float(statistic(values[:, 0]) - statistic(values[:, 1])),
            "lo": float(lo), "hi": float(hi), "n": len(values)}  # fmt: skip


def beyond_spread(
    results: dict[str, dict[str, Any]], reference: str, spread: str, paired: bool = True
) -> dict[str, dict[str, bool]]:
    """Per arm and metric: whether the arm differs from the ``reference`` arm beyond both
    kinds of chance: by more than the ``spread`` arm (the reference's design, another seed)
    does, the training seed's; and (``paired``) with a paired 95% interval over the same
    scenes (:func:`paired_difference`) that excludes zero, the scenes'."""
    ref, other = results[reference]["stats"], results[spread]["stats"]
    out: dict[str, dict[str, bool]] = {}
    for name, result in results.items():
        out[name] = {}
        for key, _, _ in METRICS:
            a, r, s = _value(result["stats"][key]), _value(ref[key]), _value(other[key])
            if a is None or r is None or s is None or name in (reference, spread):
                out[name][key] = False
                continue
            out[name][key] = abs(a - r) > abs(s - r)
            if paired and out[name][key]:
                diff = paired_difference(result["rows"], results[reference]["rows"], key)
                out[name][key] = diff is not None and (diff["lo"] > 0 or diff["hi"] < 0)
    return out


def final_loss(values: Sequence[float]) -> float:
    """The mean of the last :data:`FINAL_LOSS_SHARE` of a run's logged losses."""
    return float(np.mean(values[-max(1, int(len(values) * FINAL_LOSS_SHARE)) :]))


def _cell(stat: dict[str, float] | None, fmt: str, bold: bool) -> str:
    if stat is None:
        return "-"
    value = _value(stat)
    text = f"{format(value, fmt)} [{format(stat['lo'], fmt)}, {format(stat['hi'], fmt)}]"
    return f"**{text}**" if bold else text


def write_ablation_table(
    doc: str | Path,
    title: str,
    header: Sequence[str],
    results: dict[str, dict[str, Any]],
    pictures: dict[str, np.ndarray],
    reference: str,
    spread: str,
    notes: Sequence[str] = (),
) -> Path:
    """Write the report (Markdown, atomically) and its two images under ``images/`` beside
    it (``DOC-STEM.png``, ``DOC-STEM-loss.png``).

    Args:
        title: the page's title; ``header``: Markdown lines under it (what was run, where).
        results: arm name -> record (see the module doc), in table order.
        pictures: arm name -> its row of the picture, (5, H, W, 3) in [0, 1]
            (:data:`PICTURE_COLUMNS`).
        reference, spread: the reference arm and the same design with another seed.
        notes: Markdown lines after the table (how to read it).
    """
    from fourdnex.eval.sheet import write_image_rows

    doc = Path(doc)
    images = doc.parent / "images"
    picture = write_image_rows(
        images / f"{doc.stem}.png", PICTURE_COLUMNS, [(n, list(pictures[n])) for n in results]
    )
    plot = plot_losses(images / f"{doc.stem}-loss.png", results)
    marks = beyond_spread(results, reference, spread)
    seed_marks = beyond_spread(results, reference, spread, paired=False)
    lines = [f"# {title}", "", *header, ""]
    lines += ["| arm | " + " | ".join(h for _, h, _ in METRICS) + " | final loss | minutes |",
              "|---|" + "---|" * (len(METRICS) + 2)]  # fmt: skip
    for name, r in results.items():
        cells = [_cell(r["stats"][k], fmt, marks[name][k]) for k, _, fmt in METRICS]
        minutes = " + ".join(f"{r['seconds'][k] / 60:.0f}" for k in ("train", "evaluate"))
        cells += [f"{final_loss(r['loss']['values']):.4f}", minutes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"**Bold**: the arm differs from `{reference}` beyond both kinds of chance: by more "
        f"than `{spread}` (the same design, another seed) does, and with a paired 95% "
        "bootstrap interval of the difference over the same scenes that excludes zero; "
        "every other difference is within the seed-to-seed spread or the scenes' own. "
        "Beyond both:",
        "",
    ]
    for name in results:
        if name not in (reference, spread):
            both = [h for k, h, _ in METRICS if marks[name][k]]
            seed = [h for k, h, _ in METRICS if seed_marks[name][k] and not marks[name][k]]
            alone = f" (beyond the seed's spread alone: {', '.join(seed)})" if seed else ""
            lines.append(f"- `{name}`: " + (", ".join(both) if both else "none") + alone)
    lines += ["", *notes, "", f"![one held-out scene per arm]({picture.relative_to(doc.parent)})",
              "", f"![training loss of every arm]({plot.relative_to(doc.parent)})", ""]  # fmt: skip
    doc.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(doc) as tmp:
        tmp.write_text("\n".join(lines))
    return doc


def plot_losses(path: str | Path, results: dict[str, dict[str, Any]]) -> Path:
    """One plot of every arm's training loss (a moving average), PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in results.items():
        steps, values = np.array(r["loss"]["steps"]), np.array(r["loss"]["values"])
        window = max(1, min(25, len(values) // 10))
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, label=name, lw=1.2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("flow-matching loss (moving average)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out
