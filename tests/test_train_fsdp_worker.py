"""Worker of tests/test_train_fsdp.py (not a test): FSDP2 (fully_shard) on CPU, gloo.

Every rank trains on the same batch, so the averaged gradient equals the
single-process one and the gathered state must equal an unsharded run's.
usage: worker.py TINY_MODEL DATA OUT single|fsdp|resume
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

from fourdnex.models import save_lora
from fourdnex.train import checkpoint as ckpt
from fourdnex.train.cache import CacheSettings, check_cache, load_null_prompt
from fourdnex.train.cache_entry import collate_entries
from fourdnex.train.config import preset_config
from fourdnex.train.distribution import export_copy
from fourdnex.train.objective import Objective, flow_loss, step_generator
from fourdnex.train.samples import LatentCacheDataset
from fourdnex.train.trainable import trainable_model


def main() -> None:
    tiny, data, out, mode = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    sharded = mode != "single"
    if sharded:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if sharded else 0
    cfg = preset_config("tiny-synthetic", data=data, out=out, model=tiny)
    settings = CacheSettings(model=tiny, frames=cfg.frames, height=cfg.height, width=cfg.width)
    dataset = LatentCacheDataset(check_cache(data, cfg.cache_dir, settings))
    batch = collate_entries([dataset[0]])
    null_prompt = load_null_prompt(cfg.cache_dir)
    no_dropout = dataclasses.replace(
        cfg.objective, text_dropout=0.0, image_dropout=0.0, motion_dropout=0.0
    )
    objective = Objective(no_dropout, cfg.frames, cfg.height, cfg.width)
    torch.manual_seed(0)
    model = trainable_model(cfg, tiny)
    names = ckpt.trainable_names(model)
    export = export_copy(model) if rank == 0 else None
    if sharded:
        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
        assert any(type(p).__name__ == "DTensor" for p in model.parameters())
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)

    def step(index: int) -> None:
        flow_loss(model, batch, null_prompt, objective, step_generator(0, index, 0, 0)).backward()
        opt.step()
        opt.zero_grad()

    def save(name: str) -> None:
        trainable = ckpt.trainable_state(model)  # collective
        optim = ckpt.optimizer_tensors(model, opt)
        if rank == 0:
            ckpt.write_state(out / mode / name, trainable, optim)
            ckpt.copy_trainable(export, trainable)
            save_lora(export, out / mode / name / "lora", overwrite=True)
        else:
            assert not trainable and not optim[0]

    if mode == "resume":
        ckpt.read_state(out / "fsdp" / "step1", model, opt, names)
    else:
        step(0)
        save("step1")
    step(1)
    save("step2")
    if sharded:
        # leave together: rank 1 tearing gloo down while rank 0 still writes aborted once
        # on a loaded machine ('terminate called without an active exception')
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
