"""Worker of tests/test_context_parallel.py (not a test): the adapted tiny transformer
under diffusers' Ulysses context parallelism, two gloo processes on the CPU.

diffusers places its device mesh on the accelerator (``rank % device_count``); a CPU has
none, so the worker reports one device: the mesh is then built on the CPU with gloo and
everything else is diffusers' own context-parallel code.
usage: worker.py TINY_MODEL OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from fourdnex.pipeline import FourDNeXPipeline
from fourdnex.pipeline.parallel import enable_context_parallel, is_main_rank


def main() -> None:
    tiny, out = sys.argv[1], Path(sys.argv[2])
    dist.init_process_group("gloo")
    torch.accelerator.device_count = lambda: 1  # type: ignore[assignment]  # see the module doc
    torch.set_num_threads(1)
    pipe = FourDNeXPipeline.from_model(tiny, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 36, 2, 4, 12, generator=gen)
    text, image = torch.randn(1, 512, 16, generator=gen), torch.randn(1, 17, 16, generator=gen)

    def run() -> torch.Tensor:
        with torch.no_grad():
            return pipe.transformer(
                x, torch.tensor([300.0]), text, encoder_hidden_states_image=image, return_dict=False
            )[0]

    single = run()
    seen: list[int] = []
    pipe.transformer.blocks[0].attn1.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].shape[1])
    )
    record = enable_context_parallel(pipe, ulysses=2)
    parallel = run()
    if is_main_rank():
        save_file({"single": single, "parallel": parallel,
                   "tokens": torch.tensor(seen)}, str(out / "cp.safetensors"))  # fmt: skip
        (out / "record.txt").write_text(str(record))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
