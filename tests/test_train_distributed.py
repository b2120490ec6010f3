"""A real two-process run on CPU: DDP over gloo, launched by `accelerate launch`.

accelerate 1.x starts several CPU processes only through torchrun (``--multi_gpu``)
with ``ACCELERATE_USE_CPU`` set; ``--cpu --num_processes 2`` alone starts ONE process
unless MPI is installed. The test checks that two processes really took part.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from fourdnex.data import write_dataset
from fourdnex.synthetic import make_scene
from fourdnex.train.cache import CacheSettings, encode_dataset
from fourdnex.train.encoder import WanEncoder

FRAMES, HEIGHT, WIDTH = 5, 32, 48


@pytest.mark.slow
def test_two_process_run_trains_and_writes_one_checkpoint(
    tmp_path: Path, tiny_wan_dir: Path
) -> None:
    data = tmp_path / "data"
    write_dataset(
        data,
        ((f"s{i}", make_scene(i, frames=FRAMES, height=HEIGHT, width=WIDTH)) for i in range(2)),
    )
    settings = CacheSettings(model=str(tiny_wan_dir), frames=FRAMES, height=HEIGHT, width=WIDTH)
    assert not encode_dataset(
        data, data / "cache", settings, lambda: WanEncoder(tiny_wan_dir), False
    ).failed
    out = tmp_path / "out"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [
        str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "fourdnex.cli.train",
        "--data", str(data), "--out", str(out), "--model", str(tiny_wan_dir),
        "--max-steps", "2", "--batch-size", "4", "--checkpoint-every", "0", "--validate-every", "0",
    ]  # fmt: skip
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "ACCELERATE_USE_CPU": "true",
        "CUDA_VISIBLE_DEVICES": "",
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "config.json").read_text())
    assert record["world_size"] == 2 and record["accumulation_steps"] == 2
    checkpoints = sorted((out / "checkpoints").iterdir())
    assert [p.name for p in checkpoints] == ["step-00000002"]
    lora = load_file(str(checkpoints[0] / "lora" / "pytorch_lora_weights.safetensors"))
    assert any(k.endswith("lora_B.weight") and v.abs().max() > 0 for k, v in lora.items())
