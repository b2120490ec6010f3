"""The training loop: accelerate (DDP / FSDP / DeepSpeed), AdamW, warmup + cosine,
gradient clipping, checkpoints with exact resume, TensorBoard, validation.

Everything random in a step (data order, noise, noise levels, dropout) is a pure
function of ``(seed, step, micro-step, process)`` and the learning rate a pure
function of the step, so a checkpoint needs only the trainable parameters and the
optimizer state for a resumed run to match an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from fourdnex.errors import FourDNeXError
from fourdnex.io.atomic import publish_modes
from fourdnex.io.lock import output_lock
from fourdnex.io.paths import check_output_not_input
from fourdnex.models import save_lora
from fourdnex.precision import quiet_autocast_notes
from fourdnex.provenance import provenance, to_jsonable, write_json
from fourdnex.train import checkpoint as ckpt
from fourdnex.train.cache import CacheSettings, check_cache, load_null_prompt
from fourdnex.train.cache_entry import collate_entries
from fourdnex.train.config import MixedPrecision, TrainConfig, settings_leaves, settings_record
from fourdnex.train.distribution import (
    backend,
    check_backend,
    check_backend_available,
    export_copy,
)
from fourdnex.train.ema import EMA
from fourdnex.train.objective import Objective, flow_loss, step_generator
from fourdnex.train.samples import DataOrder, LatentCacheDataset, StepLayout, StepSampler
from fourdnex.train.throughput import ThroughputMeter
from fourdnex.train.trainable import (
    condition_encoding_of,
    count_parameters,
    model_location,
    trainable_model,
)

CONFIG_JSON = "config.json"
LOGS_DIR = "logs"
#: The TensorBoard scalar of the loss (read back by :mod:`fourdnex.train.loss_log`).
LOSS_TAG = "loss"
#: Under DeepSpeed, ``state/`` holds DeepSpeed's own checkpoint in this directory.
DEEPSPEED_DIR = "deepspeed"


@dataclass
class TrainResult:
    """What a run did."""

    out: Path
    start_step: int
    step: int
    losses: list[float] = field(default_factory=list)  # global mean loss per step run
    checkpoints: list[Path] = field(default_factory=list)
    validations: list[Path] = field(default_factory=list)  # validation scene directories
    main_process: bool = True


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup, then cosine/constant."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.learning_rate
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    ratio = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.learning_rate * ratio


def check_output_dir(cfg: TrainConfig) -> tuple[int, Path] | None:
    """Check OUT before any expensive work; returns the checkpoint to resume from."""
    try:
        cfg.out.mkdir(parents=True, exist_ok=True)
        probe = cfg.out / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise FourDNeXError(f"cannot write to output directory {cfg.out}: {exc.strerror}") from None
    latest = ckpt.latest_checkpoint(cfg.out)
    if latest is not None and not cfg.resume:
        raise FourDNeXError(
            f"{cfg.out} already holds checkpoints (latest step {latest[0]}): pass --resume to "
            "continue that run, or choose another --out"
        )
    if latest is not None and latest[0] >= cfg.max_steps:
        raise FourDNeXError(f"{cfg.out} is already trained to step {latest[0]} >= --max-steps")
    return latest


def _changed_settings(saved: dict[str, Any], cfg: TrainConfig) -> list[str]:
    """Settings that differ from those a checkpoint was made with (``resume`` aside), as
    dotted names; a record of an older layout is read as :func:`settings_record` does, and
    a setting it does not hold yet counts as unchanged."""
    old = settings_leaves(settings_record(saved))
    now = settings_leaves(to_jsonable(cfg))
    return [
        f"{k}: {old[k]!r} -> {now[k]!r}"
        for k in sorted(now)
        if k != "resume" and k in old and old[k] != now[k]
    ]


def _tracker_config(cfg: TrainConfig) -> dict[str, Any]:
    """The settings as TensorBoard hyperparameters: dotted names, scalar values."""
    return {
        k: v if isinstance(v, (int, float, str, bool)) else str(v)
        for k, v in settings_leaves(to_jsonable(cfg)).items()
    }


@dataclass
class Run:
    """Everything a running training job holds (built by :func:`setup`)."""

    cfg: TrainConfig
    accelerator: Any
    kind: str  # "ddp", "fsdp" or "deepspeed"
    accumulation: int
    location: str  # the base model's directory or hub id
    model: Any  # prepared by accelerate
    optimizer: Any
    unwrapped: torch.nn.Module
    export: torch.nn.Module | None  # what the LoRA / weights are written from (main only)
    params: list[torch.nn.Parameter]  # clipped parameters
    names: set[str]  # trainable parameter names
    entries: list[Path]  # the latent cache entries, in dataset order
    null_prompt: torch.Tensor
    objective: Objective
    latest: tuple[int, Path] | None  # the checkpoint to resume from
    ema: EMA | None = None  # the moving average of the weights (full fine-tunes)
    precision: str = ""  # which compute path runs, and why (fourdnex.precision)

    @property
    def main(self) -> bool:
        return bool(self.accelerator.is_main_process)


def setup(cfg: TrainConfig, hold: contextlib.ExitStack | None = None) -> Run:
    """Check everything cheap, then build the model, optimizer and objective.

    ``hold``: the main process takes the lock of ``cfg.out`` into it (one run per
    output directory; a second run fails with the holder's pid)."""
    from accelerate import Accelerator

    check_backend_available()
    if importlib.util.find_spec("tensorboard") is None:
        raise FourDNeXError("training logs need tensorboard: pip install 'fourdnex[train]'")
    cfg, precision = resolve_mixed_precision(cfg)
    _release_other_precision(cfg.mixed_precision)
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        log_with="tensorboard",
        project_dir=str(cfg.out / LOGS_DIR),
    )
    world, main = accelerator.num_processes, accelerator.is_main_process
    cfg.validate(world)
    accumulation = cfg.accumulation_steps(world)
    kind = check_backend(accelerator, cfg, accumulation)
    accelerator.gradient_accumulation_steps = accumulation
    # ---- 1. check everything cheap first (nothing is written before these pass)
    check_output_not_input(cfg.out, [cfg.data, cfg.cache_dir])
    settings = CacheSettings.for_design(
        cfg.design, cfg.model, cfg.frames, cfg.height, cfg.width,
        condition_encoding=condition_encoding_of(cfg.model),
    )  # fmt: skip
    entries = check_cache(cfg.data, cfg.cache_dir, settings)
    if main and hold is not None:
        hold.enter_context(output_lock(cfg.out))
    latest = check_output_dir(cfg) if main else None
    accelerator.wait_for_everyone()
    if not main:
        latest = ckpt.latest_checkpoint(cfg.out) if cfg.resume else None
    if main:
        model_location(cfg.model)  # builds the tiny model once, on the main process
    accelerator.wait_for_everyone()
    location = model_location(cfg.model, build=False)
    null_prompt = load_null_prompt(cfg.cache_dir)
    if main:
        write_json(
            cfg.out / CONFIG_JSON,
            {**provenance(cfg), "world_size": world, "accumulation_steps": accumulation,
             "backend": kind},
        )  # fmt: skip

    # ---- 2. model and optimizer
    torch.manual_seed(cfg.seed)  # LoRA initialization: the same on every process and run
    model = trainable_model(cfg, location)
    names = ckpt.trainable_names(model)
    # sharded runs write the LoRA from a copy holding the gathered trainable weights
    export = export_copy(model) if main and kind != "ddp" else None
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params,
        lr=cfg.learning_rate,
        betas=cfg.adam_betas,
        eps=cfg.adam_eps,
        weight_decay=cfg.weight_decay,
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    if kind == "fsdp":  # FSDP2 replaced the parameters; accelerate clips all of them
        params = list(model.parameters())
    if cfg.ema_decay and kind != "ddp":
        raise FourDNeXError(f"ema_decay is supported with DDP (one or more processes), not {kind}")
    ema = EMA(unwrapped, cfg.ema_decay) if cfg.ema_decay else None
    if export is None and main:
        export = unwrapped
    xyz_norm = cfg.design.latent_norm(cfg.objective.xyz_norm(location))
    objective = Objective(cfg.objective, cfg.frames, cfg.height, cfg.width, xyz_norm, cfg.design)
    return Run(cfg, accelerator, kind, accumulation, location, model, optimizer, unwrapped,
               export, params, names, entries, null_prompt, objective, latest, ema,
               precision)  # fmt: skip


def _release_other_precision(mixed_precision: str) -> None:
    """accelerate keeps one mixed-precision setting per process: a second run in the same
    process (a library caller, a test) with another setting would be refused, so the
    earlier run's state is dropped (its process group, if any, is kept)."""
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)


def resolve_mixed_precision(cfg: TrainConfig) -> tuple[TrainConfig, str]:
    """``cfg`` with ``mixed_precision: auto`` resolved for this machine, and a line that
    says which compute path runs and why."""
    from fourdnex.precision import resolve_precision

    if cfg.mixed_precision != "auto":
        return cfg, f"mixed precision {cfg.mixed_precision}: asked for"
    device = (
        "cuda" if torch.cuda.is_available() and not os.environ.get("ACCELERATE_USE_CPU") else "cpu"
    )
    chosen = resolve_precision("auto", device)
    value: MixedPrecision = "bf16" if chosen.autocast else "no"
    return dataclasses.replace(cfg, mixed_precision=value), chosen.reason


def resume(run: Run) -> int:
    """Load the latest checkpoint (if any) into the model and optimizer; the step to start at."""
    if run.latest is None:
        return 0
    cfg, path = run.cfg, run.latest[1]
    record = ckpt.read_checkpoint_json(path)
    if run.kind == "deepspeed":
        run.accelerator.load_state(str(path / ckpt.STATE_DIR / DEEPSPEED_DIR))
    else:
        ckpt.read_state(path / ckpt.STATE_DIR, run.model, run.optimizer.optimizer, run.names)
    if run.ema is not None:
        run.ema.load(ckpt.read_ema(path / ckpt.STATE_DIR))
    changed = _changed_settings(record.get("settings") or {}, cfg)
    if run.main and changed:
        print(
            f"train: resuming step {record['step']} with changed settings (not an exact "
            f"continuation): {'; '.join(changed)}"
        )
    return int(record["step"])


def data_loader(run: Run, start: int) -> DataLoader:
    """The samples of steps ``start`` .. ``max_steps`` of this process, in run order."""
    cfg, acc = run.cfg, run.accelerator
    dataset = LatentCacheDataset(run.entries)
    layout = StepLayout(cfg.micro_batch_size, run.accumulation, acc.num_processes)
    order = DataOrder(cfg.seed, len(dataset))
    sampler = StepSampler(order, layout, acc.process_index, start, cfg.max_steps)
    return DataLoader(
        dataset,
        batch_size=cfg.micro_batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        collate_fn=collate_entries,
    )


def train_step(run: Run, step: int, batches: Any) -> tuple[float, float]:
    """One optimizer step (with its accumulation micro-steps); ``(global loss, lr)``."""
    cfg, acc = run.cfg, run.accelerator
    lr = learning_rate(cfg, step)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    total_loss = torch.zeros((), device=acc.device)
    for micro in range(run.accumulation):
        batch = next(batches)
        gen = step_generator(cfg.seed, 0 if cfg.overfit_batch else step, micro, acc.process_index)
        with acc.accumulate(run.model):  # no_sync but at the last micro-step
            with acc.autocast(), quiet_autocast_notes():
                loss = flow_loss(run.model, batch, run.null_prompt, run.objective, gen)
            acc.backward(loss)  # divides by the accumulation steps
        total_loss += loss.detach() / run.accumulation
    if cfg.max_grad_norm > 0:
        acc.clip_grad_norm_(run.params, cfg.max_grad_norm)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    if run.ema is not None:
        run.ema.update(run.unwrapped, step)
    global_loss = acc.reduce(total_loss, reduction="mean").item()
    if not math.isfinite(global_loss):
        raise FourDNeXError(f"training diverged: loss is {global_loss} at step {step + 1}")
    return global_loss, lr


def train(cfg: TrainConfig, progress: bool = True, stop_after: int | None = None) -> TrainResult:
    """Run (or resume) a training run as configured; every process calls this.

    ``stop_after``: return after this optimizer step (its checkpoint, if due, is
    written) as if the run were killed there; the learning-rate schedule still
    follows ``max_steps``. For tests and benchmarks.
    """
    with contextlib.ExitStack() as hold:
        return _train(setup(cfg, hold), progress, stop_after)


def _train(run: Run, progress: bool, stop_after: int | None) -> TrainResult:
    from tqdm import tqdm

    cfg = run.cfg
    start = resume(run)
    loader = data_loader(run, start)
    acc, main = run.accelerator, run.main
    if main:
        trainable, total = count_parameters(run.unwrapped)
        acc.init_trackers("train", config=_tracker_config(cfg))
        print(
            f"train: {len(loader.dataset)} clips, {run.kind}, {acc.num_processes} process(es) x "  # type: ignore[arg-type]
            f"{cfg.micro_batch_size} x {run.accumulation} accumulation = batch {cfg.batch_size}; "
            f"trainable {trainable:,} of {total:,} parameters; steps {start} -> {cfg.max_steps}; "
            f"{run.precision}; {torch.get_num_threads()} thread(s) per process"
        )
    result = TrainResult(cfg.out, start, start, main_process=main)
    bar = tqdm(total=cfg.max_steps, initial=start, desc="train", unit="step",
               disable=not (progress and main), dynamic_ncols=True)  # fmt: skip
    batches = iter(loader)
    validator: Any = None
    meter = ThroughputMeter(acc.num_processes) if cfg.flops_every else None
    probe: Any = None
    for step in range(start, cfg.max_steps):
        if meter is not None and meter.flops is None:
            with meter.count(step + 1):
                loss, lr = train_step(run, step, batches)
        else:
            loss, lr = train_step(run, step, batches)
        result.losses.append(loss)
        result.step = done = step + 1
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        bar.update(1)
        if meter is not None and done % cfg.flops_every == 0 and main:
            line = meter.report(done)
            if line:
                bar.write(f"train: step {done}: {line}")
        if main and (done % cfg.log_every == 0 or done == cfg.max_steps):
            acc.log({LOSS_TAG: loss, "lr": lr}, step=done)
        if done == cfg.max_steps or (cfg.checkpoint_every and done % cfg.checkpoint_every == 0):
            path = save_checkpoint(acc, run.model, run.optimizer, run.export, cfg, done,
                                   run.location, run.ema)  # fmt: skip
            result.checkpoints.append(path)
        if cfg.probe_every and (done % cfg.probe_every == 0 or done == cfg.max_steps):
            if main:
                if probe is None:
                    from fourdnex.train.probe import MMSEProbe

                    probe = MMSEProbe(cfg, run.location)
                row = probe.run_and_log(run.unwrapped, run.ema, done, acc.autocast())
                bar.write(f"train: step {done}: {probe.summary(row)}")
            acc.wait_for_everyone()
        if cfg.validate_every and (done % cfg.validate_every == 0 or done == cfg.max_steps):
            if main:
                if validator is None:
                    from fourdnex.train.validation import Validator

                    validator = Validator(cfg, run.location, acc.device)
                scene_dir = validator(run.unwrapped, done, acc.autocast())
                result.validations.append(scene_dir)
                bar.write(f"train: validation scene at step {done}: {scene_dir}")
            acc.wait_for_everyone()
        if stop_after is not None and done >= stop_after:
            break
    bar.close()
    acc.end_training()
    return result


def save_checkpoint(
    accelerator: Any,
    model: torch.nn.Module,
    optimizer: Any,
    export: torch.nn.Module | None,
    cfg: TrainConfig,
    step: int,
    location: str,
    ema: EMA | None = None,
) -> Path:
    """Write ``OUT/checkpoints/step-N`` atomically, then prune to keep_last.

    Every process calls it: the trainable weights and optimizer state are gathered
    (collective under FSDP / DeepSpeed) and written by the main process; ``export``
    (main process only) is the unwrapped model, or under sharding a copy into which
    the gathered weights are loaded before the LoRA is written from it.
    """
    root = cfg.out / ckpt.CHECKPOINTS_DIR
    final = root / ckpt.checkpoint_name(step)
    tmp = root / f".{final.name}.tmp"
    main = accelerator.is_main_process
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / ckpt.STATE_DIR).mkdir(parents=True)
    accelerator.wait_for_everyone()
    if backend(accelerator) == "deepspeed":
        accelerator.save_state(str(tmp / ckpt.STATE_DIR / DEEPSPEED_DIR))  # collective
        full = accelerator.get_state_dict(model)  # collective under ZeRO-3
        wanted = ckpt.trainable_names(export) if export is not None else set()
        trainable = {k: v.to("cpu").contiguous() for k, v in full.items() if k in wanted}
        optim = None
    else:
        trainable = ckpt.trainable_state(model)
        optim = ckpt.optimizer_tensors(model, optimizer.optimizer)
    if main:
        assert export is not None
        try:
            if optim is not None:
                ckpt.write_state(tmp / ckpt.STATE_DIR, trainable, optim)
            if ema is not None:
                ckpt.write_ema(tmp / ckpt.STATE_DIR, ema.state())
            if export is not accelerator.unwrap_model(model):
                ckpt.copy_trainable(export, trainable)
            model = export
            record = {"step": step, "model": cfg.model, "model_location": location}
            if cfg.full_finetune:
                model.save_pretrained(str(tmp / ckpt.FULL_DIR))  # type: ignore[operator]
                if ema is not None:
                    with ema.swapped_in(model):
                        model.save_pretrained(str(tmp / ckpt.EMA_DIR))  # type: ignore[operator]
            else:
                stats = cfg.objective.xyz_norm(location)  # what inference de-normalizes with
                save_lora(model, tmp / ckpt.LORA_DIR, stats, base_model=cfg.model,
                          extra={"step": step}, design=cfg.design)  # fmt: skip
            write_json(tmp / ckpt.CHECKPOINT_JSON, {**record, **provenance(cfg)})
            publish_modes(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        ckpt.prune_checkpoints(cfg.out, cfg.keep_last)
    accelerator.wait_for_everyone()
    return final
