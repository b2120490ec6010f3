"""The ablation table of 4DNeX's design choices: every arm trained and measured alike.

    python benchmarks/ablations.py [--work runs/ablations] [--budget table]
        [--steps N] [--clips N] [--scenes N] [--arms NAME,...] [--doc docs/ablations.md]

The paper shows its five design choices only as pictures (Fig. 10); this driver gives
numbers. Each arm is a set of design settings (:class:`fourdnex.design.DesignSettings`,
one training setting each, never a fork of the code): ``released`` (the paper's choices,
seed 0) and ``released-seed1`` (the same with seed 1: the seed-to-seed spread), then one
arm per other value of a setting (:data:`ARMS`).

Protocol, the same for every arm:

- data: ``clips`` synthetic training scenes (seeds 0, 1, ...) at the base model's clip
  size, encoded once per image condition (plane / zeros, guided / hard mask);
- model: the base model's VAE, text and image encoders (``--base``, fourdnex-small by
  default), its condition encoded per modality (each modality's condition latent is what
  its targets are, so every fusion packs exact halves); a transformer of the base's
  configuration (the channels its fusion needs) trained from random weights drawn with
  the arm's seed, every weight trained, its output layer zeroed first;
- compute: the ``small-synthetic`` preset (AdamW, lr 5e-4, weight decay 0.01, cosine to
  5%, bf16 where fast) at a reduced budget: ``steps`` optimizer steps of batch ``batch``
  with ``warmup`` warmup steps, no EMA (:class:`Budget`);
- evaluation: ``scenes`` held-out scenes (seeds from 1,000,000), each generated from its
  first frame and caption with the same sampler settings and noise, scored by
  :func:`fourdnex.eval.generation.generation_scores`; medians with 95% bootstrap
  intervals, and the share of scenes whose generated camera travels the true way.

Resumable, under ``--work``: every stage is skipped when its output is there, an
interrupted arm resumes from its last checkpoint (``4dnex train --resume``) and its
evaluation from its last scored scene, and a finished arm (``arms/NAME/result.json``)
is neither trained nor evaluated again::

    data/               the training clips
    base/               the base model (its components, card: per-modality condition)
    caches/COND/        the latent cache of each image condition
    arms/NAME/train/    the training run (checkpoints, TensorBoard log)
    arms/NAME/model/    the trained model: base + transformer + card with its design
                        (`4dnex generate --model arms/NAME/model` runs it)
    arms/NAME/scenes.jsonl, picture.npz, result.json

When every arm of the table is finished it writes ``--doc`` (the table, the picture and
the loss plot in ``images/`` beside it, the budget, the machine and this command:
:func:`fourdnex.eval.ablation_table.write_ablation_table`).

Time (``--budget table``), measured on the 2-core CPU (AMX bf16, two threads, other work
beside it at times): an arm trains 600 steps in 9-19 minutes (channel fusion, half the
tokens, is the fastest; batch fusion the slowest; most arms 11-15) and is evaluated in 3-4
minutes; a latent cache of 1,000 clips takes about 10 minutes (three of them): about 3.5
hours for the table. On a machine with a GPU the same command trains there (accelerate
places it) and encodes and evaluates there (``--device auto``); the table names the
machine (not run on one yet: no GPU was lent to the sittings that ran it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fourdnex.design import CHOICES, RELEASED, DesignSettings
from fourdnex.errors import FourDNeXError

#: Sampler settings of the evaluation (the next fourdnex-small's recommended ones).
EVAL_SAMPLER_STEPS, EVAL_GUIDANCE = 20, 1.0
RESULT_JSON, SCENES_JSONL, PICTURE_NPZ, WORK_JSON = (
    "result.json", "scenes.jsonl", "picture.npz", "ablations.json",
)  # fmt: skip


@dataclass(frozen=True)
class Budget:
    """What every arm gets (equal compute), and what it is measured on."""

    steps: int = 600
    """Optimizer steps per arm (the shipped fourdnex-small trained 7,000)."""
    batch: int = 8
    """Clips per optimizer step (the recipe's)."""
    warmup: int = 60
    """Warmup steps (the recipe: 200, before a cosine to 1,000 steps)."""
    clips: int = 1000
    """Training clips (the recipe: 3,000 of the condition-mode mixture)."""
    scenes: int = 50
    """Held-out evaluation scenes."""
    sampler_steps: int = EVAL_SAMPLER_STEPS
    """Denoising steps of an evaluation scene."""
    guidance: float = EVAL_GUIDANCE
    """Classifier-free guidance of an evaluation scene."""
    checkpoint_every: int = 50
    """Checkpoint interval: an interrupted arm loses at most this many steps."""


#: Named budgets: ``table`` is the one docs/ablations.md is measured at (about 3.5 hours of
#: a 2-core CPU, measured per arm: see the module doc); ``smoke`` runs in seconds
#: per arm on the tiny model (the test suite).
BUDGETS = {
    "table": Budget(),
    "smoke": Budget(steps=10, batch=2, warmup=2, clips=4, scenes=2, sampler_steps=2,
                    checkpoint_every=5),
}  # fmt: skip


@dataclass(frozen=True)
class Arm:
    """One row of the table: design settings and a seed."""

    name: str
    design: DesignSettings
    seed: int = 0

    @property
    def cache(self) -> str:
        """The latent cache it trains from (its image condition)."""
        return f"{self.design.xyz_condition}-{self.design.condition_mask}"


def _one_change_arms() -> list[Arm]:
    return [
        Arm(f"{name.replace('_', '-')}-{value}", DesignSettings(**{name: value}))
        for name, choices in CHOICES.items()
        for value in choices[1:]
    ]


#: The arms, in table order.
ARMS: tuple[Arm, ...] = (
    Arm("released", RELEASED),
    Arm("released-seed1", RELEASED, seed=1),
    *_one_change_arms(),
)
REFERENCE, SPREAD = ARMS[0].name, ARMS[1].name


@dataclass(frozen=True)
class Work:
    """The work directory's layout (see the module doc)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def base(self) -> Path:
        return self.root / "base"

    def cache(self, arm: Arm) -> Path:
        return self.root / "caches" / arm.cache

    def arm(self, arm: Arm) -> Path:
        return self.root / "arms" / arm.name


# ------------------------------------------------------------------------- stages
def prepare_base(work: Work, base: str, budget: Budget) -> Any:
    """``WORK/base``: the base model's components and its card, the condition encoded per
    modality, the evaluation's sampler settings as its recommended ones; its card."""
    from fourdnex.io.atomic import atomic_directory
    from fourdnex.models.loading import REQUIRED_COMPONENTS
    from fourdnex.models.small import read_model_card, resolve_model_name, write_model_card

    if not work.base.is_dir():
        source = Path(resolve_model_name(base))
        card = read_model_card(source)
        if card is None or not (card.frames and card.height and card.width):
            raise FourDNeXError(f"--base {base} needs a fourdnex.json with frames and size")
        card = dataclasses.replace(
            card, condition_encoding="per-modality", design=RELEASED, training={"base": base},
            inference={"steps": float(budget.sampler_steps), "guidance": budget.guidance},
        )  # fmt: skip
        with atomic_directory(work.base) as tmp:
            for name in (*REQUIRED_COMPONENTS, "model_index.json"):
                copy = shutil.copytree if (source / name).is_dir() else shutil.copy2
                copy(source / name, tmp / name)
            write_model_card(tmp, card)
    card = read_model_card(work.base)
    assert card is not None
    return card


def prepare_data(work: Work, budget: Budget, card: Any, progress: bool) -> None:
    """``WORK/data``: the training clips (synthetic scenes 0 .. clips - 1)."""
    from tqdm import tqdm

    from fourdnex.data import write_dataset
    from fourdnex.synthetic import make_scene

    if (work.data / "dataset.json").is_file():
        return
    seeds = tqdm(range(budget.clips), desc="data", unit="clip", disable=not progress)
    scenes = ((f"s{i:06d}", make_scene(i, card.frames, card.height, card.width)) for i in seeds)
    write_dataset(work.data, scenes, settings={"seeds": [0, budget.clips - 1]})


def prepare_cache(work: Work, arm: Arm, card: Any, device: str, progress: bool) -> None:
    """``WORK/caches/COND``: the latent cache of the arm's image condition (resumable)."""
    from fourdnex.train.cache import CacheSettings, encode_dataset
    from fourdnex.train.encoder import WanEncoder

    settings = CacheSettings.for_design(
        arm.design, str(work.base), card.frames, card.height, card.width,
        condition_encoding=card.condition_encoding,
    )  # fmt: skip
    report = encode_dataset(
        work.data, work.cache(arm), settings, lambda: WanEncoder(work.base, device), progress
    )
    if report.failed:
        raise FourDNeXError(f"encoding failed for {len(report.failed)} clips: {report.failed[0]}")


def train_config(work: Work, arm: Arm, budget: Budget, card: Any) -> Any:
    """The arm's training run: the small-synthetic preset at the budget, from scratch."""
    from fourdnex.train import checkpoint as ckpt
    from fourdnex.train.config import preset_config

    out = work.arm(arm) / "train"
    return preset_config(
        "small-synthetic", data=work.data, out=out, model=str(work.base),
        cache=work.cache(arm), frames=card.frames, height=card.height, width=card.width,
        max_steps=budget.steps, batch_size=budget.batch, micro_batch_size=budget.batch,
        warmup_steps=budget.warmup, seed=arm.seed, design=arm.design,
        transformer_init="random", zero_init_output=True,
        checkpoint_every=budget.checkpoint_every, keep_last=1, log_every=1, flops_every=0,
        resume=ckpt.latest_checkpoint(out) is not None,
    )  # fmt: skip


def train_arm(work: Work, arm: Arm, budget: Budget, card: Any, progress: bool) -> None:
    """Train (or resume) the arm to ``budget.steps``."""
    from fourdnex.train import checkpoint as ckpt
    from fourdnex.train.trainer import train

    cfg = train_config(work, arm, budget, card)
    latest = ckpt.latest_checkpoint(cfg.out)
    if latest is None or latest[0] < budget.steps:
        train(cfg, progress=progress)


def package_arm(work: Work, arm: Arm) -> Path:
    """``arms/NAME/model``: the base model with the trained transformer and a card that
    records the arm's design (what `4dnex generate --model` reads)."""
    from fourdnex.io.atomic import atomic_directory
    from fourdnex.models.small import read_model_card, write_model_card
    from fourdnex.train import checkpoint as ckpt

    model = work.arm(arm) / "model"
    if model.is_dir():
        return model
    latest = ckpt.latest_checkpoint(work.arm(arm) / "train")
    assert latest is not None
    card = read_model_card(work.base)
    assert card is not None
    record = {"arm": arm.name, "seed": arm.seed, "step": latest[0], "checkpoint": latest[1].name}
    with atomic_directory(model) as tmp:
        shutil.copytree(work.base, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            "transformer"))  # fmt: skip
        shutil.copytree(latest[1] / ckpt.FULL_DIR, tmp / "transformer")
        write_model_card(tmp, dataclasses.replace(
            card, design=arm.design, training={"ablation": record}))  # fmt: skip
    return model


def evaluate_arm(work: Work, arm: Arm, budget: Budget, device: str, progress: bool) -> None:
    """Score the arm's model on the held-out scenes (one row per scene in scenes.jsonl,
    with its seconds; resumable) and keep the picture of the first scene."""
    import torch
    from tqdm import tqdm

    from fourdnex.eval.generation import generation_scores, truth_consistency
    from fourdnex.pipeline import FourDNeXPipeline, GenerationSettings
    from fourdnex.synthetic import HELD_OUT_SEED_START, make_scene

    rows_path = work.arm(arm) / SCENES_JSONL
    done = {json.loads(line)["seed"] for line in _lines(rows_path)}
    seeds = [HELD_OUT_SEED_START + i for i in range(budget.scenes)]
    todo = [s for s in seeds if s not in done]
    if not todo:
        return
    pipe = FourDNeXPipeline.from_model(package_arm(work, arm), dtype=torch.float32).to(device)
    pipe.set_progress_bar_config(disable=True)
    card = pipe.model_card
    assert card is not None and pipe.design == arm.design
    settings = pipe.resolve_settings(
        GenerationSettings(frames=card.frames, height=card.height, width=card.width)
    )
    with rows_path.open("a") as rows:
        for seed in tqdm(todo, desc=f"eval {arm.name}", unit="scene", disable=not progress):
            start = time.perf_counter()
            gt = make_scene(seed, card.frames, card.height, card.width)
            scene = pipe.generate([gt.rgb[0]], prompt=str(gt.meta.caption), settings=settings)[0]
            scores = generation_scores(scene, gt, truth_consistency(gt))
            if seed == seeds[0]:
                save_picture(work.arm(arm) / PICTURE_NPZ, gt.rgb[0], scene)
            seconds = round(time.perf_counter() - start, 3)
            rows.write(json.dumps({"seed": seed, **scores, "seconds": seconds}) + "\n")
            rows.flush()


def save_picture(path: Path, image: np.ndarray, scene: Any) -> None:
    """The arm's row of the picture: input, last RGB and XYZ frame, its registered depth
    and a novel view (the middle of an orbit) of the generated scene."""
    from fourdnex.eval.sheet import depth_colors
    from fourdnex.geometry import make_trajectory, render_trajectory, with_cameras
    from fourdnex.io.atomic import atomic_file
    from fourdnex.scene import xyz_to_colors

    placed = with_cameras(scene).scene
    assert placed.K is not None and placed.cam2world is not None and placed.depth is not None
    orbit = make_trajectory("orbit", placed.K, placed.cam2world, placed.depth)
    views = render_trajectory(placed.rgb, placed.xyz, orbit, progress=False).rgb
    images = (image, placed.rgb[-1], xyz_to_colors(placed.xyz)[-1],
              depth_colors(placed.depth)[-1], views[len(views) // 2])  # fmt: skip
    with atomic_file(path) as tmp, tmp.open("wb") as f:
        np.savez(f, images=np.stack([np.asarray(x, np.float32) for x in images]))


def summarize_arm(work: Work, arm: Arm, budget: Budget) -> dict:
    """``arms/NAME/result.json``: the arm's statistics, loss curve and times, over all
    sittings (its end: a finished arm)."""
    from fourdnex.eval.ablation_table import arm_statistics
    from fourdnex.provenance import machine_description, write_json
    from fourdnex.train.loss_log import logged_seconds, loss_curve

    rows = [json.loads(line) for line in _lines(work.arm(arm) / SCENES_JSONL)]
    steps, losses = loss_curve(work.arm(arm) / "train")
    seconds = {"train": logged_seconds(work.arm(arm) / "train"),
               "evaluate": float(sum(r["seconds"] for r in rows))}  # fmt: skip
    result = {
        "arm": arm.name, "design": arm.design.to_record(), "seed": arm.seed,
        "budget": dataclasses.asdict(budget), "scenes": len(rows),
        "frame0_failed": int(sum(r["frame0_failed"] for r in rows)),
        "stats": arm_statistics(rows), "loss": {"steps": steps.tolist(), "values": losses.tolist()},
        "seconds": seconds, "machine": machine_description(),
    }  # fmt: skip
    write_json(work.arm(arm) / RESULT_JSON, result)
    return result


def run_arm(work: Work, arm: Arm, budget: Budget, card: Any, device: str, progress: bool) -> str:
    """Everything of one arm that is not done yet; what happened (``finished`` when it was)."""
    from fourdnex.train import checkpoint as ckpt

    if (work.arm(arm) / RESULT_JSON).is_file():  # the budget is the work directory's
        return "finished"

    latest = ckpt.latest_checkpoint(work.arm(arm) / "train")
    started = "resumed" if latest is not None else "trained"
    if latest is None or latest[0] < budget.steps:
        prepare_cache(work, arm, card, device, progress)
    train_arm(work, arm, budget, card, progress)
    evaluate_arm(work, arm, budget, device, progress)
    summarize_arm(work, arm, budget)
    return started


# ---------------------------------------------------------------------- the table
def write_doc(doc: Path, work: Work, arms: list[Arm], budget: Budget, command: str) -> Path:
    """docs/ablations.md: the table, the picture, the loss plot, the budget, the machine and
    the reproducing command (:func:`fourdnex.eval.ablation_table.write_ablation_table`)."""
    from fourdnex.eval.ablation_table import write_ablation_table

    results = {a.name: json.loads((work.arm(a) / RESULT_JSON).read_text()) for a in arms}
    for a in arms:  # the per-scene scores, for the paired comparisons
        results[a.name]["rows"] = [json.loads(line) for line in _lines(work.arm(a) / SCENES_JSONL)]
    pictures = {a.name: np.load(work.arm(a) / PICTURE_NPZ)["images"] for a in arms}
    card = json.loads((work.base / "fourdnex.json").read_text())
    minutes = sum(sum(r["seconds"].values()) for r in results.values()) / 60
    machines = "; ".join(sorted({r["machine"] for r in results.values()}))
    header = [
        "Written by `benchmarks/ablations.py` (do not edit by hand). Every arm is the released",
        "design with one setting changed (`fourdnex.design.DesignSettings`), trained from random",
        "weights drawn with seed 0 (`released-seed1`: seed 1) on the same clips with the same",
        "compute, and scored on the same held-out synthetic scenes against exact ground truth.",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machines}; {minutes:.0f} minutes in all (training and evaluation, every "
        "sitting)",
        f"- Base: {card['name']} (its VAE, text and image encoders), {card['frames']} x "
        f"{card['height']} x {card['width']} per modality, the condition encoded per modality; "
        f"XYZ latent statistics mean {card['xyz_latent']['mean']:g}, std "
        f"{card['xyz_latent']['std']:g}",
        f"- Budget per arm: {budget.steps} optimizer steps of batch {budget.batch} (the shipped "
        f"fourdnex-small: 7,000 on 3,000 clips), warmup {budget.warmup}, otherwise the "
        f"small-synthetic preset, no EMA; {budget.clips} image-mode training clips",
        f"- Evaluation: {budget.scenes} held-out scenes (seeds from 1,000,000), "
        f"{budget.sampler_steps} sampler steps, guidance {budget.guidance:g}; median [95% "
        "bootstrap interval]; camera direction: the share of scenes whose generated camera "
        "travels the true way (cosine > 0), of those where both cameras move",
    ]
    notes = [
        "Reading it: the arms train from scratch (no pretrained video prior, unlike the paper's "
        "fine-tuning), so the fusions compare token layouts alone. With shared RoPE and domain "
        "embeddings, width, height and frame fusion are one model up to token order (attention "
        "does not see order, and each token keeps its position and domain row: "
        "`tests/test_ablations.py::test_grid_fusions_are_one_model_up_to_token_order`), so "
        "`fusion-height` and `fusion-frame` differ from `released` by arithmetic order alone; "
        "channel fusion has half the "
        "tokens of the others and a transformer of its own channels; batch fusion never lets an "
        "RGB token attend to an XYZ token; the loss of `xyz-normalization-off` is measured on "
        "unnormalized XYZ latents (another scale); minutes: training + evaluation."
    ]
    title = "Ablations: 4DNeX's design choices, measured"
    return write_ablation_table(doc, title, header, results, pictures, REFERENCE, SPREAD, notes)


def _lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln.strip()] if path.is_file() else []


def check_work(work: Work, base: str, budget: Budget) -> None:
    """A work directory holds one table: the same base and budget in every sitting."""
    from fourdnex.provenance import write_json

    record = {"base": base, "budget": dataclasses.asdict(budget)}
    path = work.root / WORK_JSON
    if path.is_file():
        old = json.loads(path.read_text())
        if old != record:
            raise FourDNeXError(
                f"{work.root} holds a table of {old}, not {record}: use another --work"
            )
        return
    work.root.mkdir(parents=True, exist_ok=True)
    write_json(path, record)


def run(args: argparse.Namespace) -> dict[str, str]:
    """Every selected arm, then the doc when all of the table's are finished; what
    happened to each arm."""
    from fourdnex.devices import resolve_device

    budget = dataclasses.replace(
        BUDGETS[args.budget],
        **{k: v for k in ("steps", "clips", "scenes") if (v := getattr(args, k)) is not None},
    )
    names = args.arms.split(",") if args.arms else [a.name for a in ARMS]
    unknown = sorted(set(names) - {a.name for a in ARMS})
    if unknown:
        raise FourDNeXError(f"unknown arms {unknown} (one of {', '.join(a.name for a in ARMS)})")
    arms = [a for a in ARMS if a.name in names]
    work = Work(args.work)
    check_work(work, args.base, budget)
    device = str(resolve_device(args.device))
    card = prepare_base(work, args.base, budget)
    prepare_data(work, budget, card, args.progress)
    status: dict[str, str] = {}
    for arm in arms:
        status[arm.name] = run_arm(work, arm, budget, card, device, args.progress)
        print(f"ablations: {arm.name}: {status[arm.name]}")
    if len(arms) == len(ARMS):
        print(f"ablations: wrote {write_doc(args.doc, work, arms, budget, args.command)}")
    return status


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``command``: itself, for the doc)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("runs/ablations"), help="work directory")
    ap.add_argument("--base", default="fourdnex-small", help="base model (VAE and encoders)")
    ap.add_argument("--budget", choices=sorted(BUDGETS), default="table", help="named budget")
    ap.add_argument("--steps", type=int, help="optimizer steps per arm (overrides the budget)")
    ap.add_argument("--clips", type=int, help="training clips (overrides the budget)")
    ap.add_argument("--scenes", type=int, help="held-out scenes (overrides the budget)")
    ap.add_argument("--arms", help="comma-separated arms to run (default: all)")
    ap.add_argument("--device", default="auto", help="encoding and evaluation device")
    ap.add_argument("--doc", type=Path, default=Path("docs/ablations.md"), help="the table")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    args = ap.parse_args(argv)
    args.command = " ".join(["python benchmarks/ablations.py", *(argv or sys.argv[1:])])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from fourdnex.threads import apply_thread_policy

    apply_thread_policy()
    try:
        run(args)
    except FourDNeXError as exc:
        print(f"ablations: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
