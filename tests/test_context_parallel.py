"""One scene on several ranks: diffusers' Ulysses context parallelism keeps the 4DNeX
adaptations (shared RoPE, domain embeddings) exact, and misuse fails in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fourdnex.errors import ValidationError
from fourdnex.pipeline.parallel import enable_context_parallel

WORKER = Path(__file__).with_name("test_context_parallel_worker.py")


def test_ulysses_over_two_processes_equals_one_process(tmp_path: Path, tiny_wan_dir: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", str(WORKER),
           str(tiny_wan_dir), str(tmp_path)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = load_file(str(tmp_path / "cp.safetensors"))
    # the first block's attention got half of the 24 tokens on each rank (the split
    # happened), and the output is the single-process one exactly
    assert got["tokens"].tolist() == [12]
    assert torch.equal(got["single"], got["parallel"])
    assert "'ulysses': 2" in (tmp_path / "record.txt").read_text()


def test_context_parallel_needs_a_process_group(tiny_wan_dir: Path) -> None:
    from fourdnex.pipeline import FourDNeXPipeline

    pipe = FourDNeXPipeline.from_model(tiny_wan_dir, dtype=torch.float32)
    with pytest.raises(ValidationError, match="torchrun"):
        enable_context_parallel(pipe, ulysses=2)
    with pytest.raises(ValidationError, match=">= 1"):
        enable_context_parallel(pipe, ulysses=0)
