"""One scene on several GPUs: diffusers' context parallelism for the 4DNeX transformer.

The 14B transformer's 35,100 tokens per step are split over the ranks of a
``torch.distributed`` group with diffusers' ``ContextParallelConfig`` (diffusers >= 0.36;
Wan's ``_cp_plan`` splits the sequence at the first block and gathers it at the output
projection):

- **Ulysses** (``ulysses`` ranks): an all-to-all swaps the sequence split for a head
  split around each attention; every rank attends over the whole sequence for its share
  of the heads. Works with every attention backend that diffusers marks as context
  parallel, PyTorch's native SDPA included. The heads (40 for the 14B model) must divide
  by the degree.
- **Ring** (``ring`` ranks): keys and values circulate around the ranks; needs an
  attention backend that returns the log-sum-exp (flash, cuDNN, sage: CUDA only).

The 4DNeX adaptations live before the split (domain embeddings after the patch
embedding, shared RoPE in the ``rope`` module the plan splits), so they hold under
either. What was run where: on the 2-core CPU machine, two gloo processes with
Ulysses on the adapted tiny transformer give the single-process output exactly
(``tests/test_context_parallel.py``; diffusers builds its device mesh on the
accelerator, so the test runs it on the CPU by reporting one device). Ring attention
and any GPU run were NOT run: no multi-GPU machine was available.

Usage, one process per GPU (every rank runs the same pipeline call with the same seed;
rank 0 keeps the result)::

    torchrun --nproc_per_node 4 my_script.py   # in it:
    torch.distributed.init_process_group("nccl")
    pipe = FourDNeXPipeline.from_model(...).to(f"cuda:{local_rank}")
    enable_context_parallel(pipe, ulysses=4)
"""

from __future__ import annotations

from typing import Any

import torch

from fourdnex.errors import ValidationError

#: Attention backends (diffusers' names) that return the log-sum-exp ring attention needs.
RING_BACKENDS = ("flash", "flash_hub", "_native_cudnn", "sage")


def enable_context_parallel(pipe: Any, ulysses: int = 1, ring: int = 1) -> dict[str, int]:
    """Split the transformer's sequence over the initialized process group.

    Args:
        pipe: a :class:`~fourdnex.pipeline.FourDNeXPipeline` (or anything with a
            diffusers ``transformer``), on this rank's device.
        ulysses, ring: the degrees; their product must be the group's world size.

    Returns:
        The record of what was enabled (for ``generation.json``).

    Raises:
        ValidationError: no process group, degrees that do not match it or the heads,
            ring attention with an attention backend that cannot do it.
    """
    import torch.distributed as dist
    from diffusers import ContextParallelConfig

    if ulysses < 1 or ring < 1:
        raise ValidationError(f"context-parallel degrees must be >= 1, got {ulysses}, {ring}")
    if not (dist.is_available() and dist.is_initialized()):
        raise ValidationError(
            "context parallelism needs torch.distributed initialized (launch with torchrun)"
        )
    world = dist.get_world_size()
    if ulysses * ring != world:
        raise ValidationError(
            f"context-parallel degrees {ulysses} x {ring} must equal the world size {world}"
        )
    heads = int(pipe.transformer.config.num_attention_heads)
    if heads % ulysses:
        raise ValidationError(f"the transformer's {heads} heads do not divide by {ulysses}")
    if ring > 1:
        backends = {
            getattr(m.processor, "_attention_backend", None)
            for m in pipe.transformer.modules()
            if hasattr(m, "processor")
        }
        names = {str(getattr(b, "value", b)) for b in backends}
        if not names or not names <= set(RING_BACKENDS):
            raise ValidationError(
                f"ring attention needs one of the attention backends {', '.join(RING_BACKENDS)} "
                "(CUDA): set it first (--attention flash), or use Ulysses"
            )
    config = ContextParallelConfig(
        ulysses_degree=ulysses if ulysses > 1 else None, ring_degree=ring if ring > 1 else None
    )
    pipe.transformer.enable_parallelism(config=config)
    return {"ulysses": ulysses, "ring": ring, "world_size": world}


def is_main_rank() -> bool:
    """Whether this process writes outputs (rank 0, or no process group)."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
