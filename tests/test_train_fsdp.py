"""FSDP2 (torch ``fully_shard``) on CPU over gloo: the trainer's checkpoint path.

accelerate 1.x will not run FSDP on CPU (an FSDP config becomes plain multi-CPU DDP,
which the trainer refuses), so these tests shard the trainer's own model with torch's
public ``fully_shard`` in two real processes (torchrun) and check the pieces the
trainer uses under accelerate's FSDP2: gathering the trainable state and the
optimizer state on rank 0, writing the LoRA from :func:`export_copy`, and scattering
a checkpoint back into a sharded model (exact resume). A DeepSpeed config without the
deepspeed package and an FSDP config on CPU fail with one-line errors.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from fourdnex.data import write_dataset
from fourdnex.errors import FourDNeXError
from fourdnex.synthetic import make_scene
from fourdnex.train.cache import CacheSettings, encode_dataset
from fourdnex.train.config import preset_config
from fourdnex.train.encoder import WanEncoder
from fourdnex.train.trainer import train

FRAMES, HEIGHT, WIDTH = 5, 32, 48
WORKER = Path(__file__).with_name("test_train_fsdp_worker.py")
FILES = (
    "trainable.safetensors",
    "optimizer.safetensors",
    "lora/pytorch_lora_weights.safetensors",
    "lora/domain_embeddings.safetensors",
)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def _run(script: Path, args: list[str], processes: int) -> None:
    if processes == 1:
        cmd = [sys.executable, str(script), *args]
    else:
        torchrun = Path(sys.executable).with_name("torchrun")
        cmd = [str(torchrun), "--standalone", "--nproc_per_node", str(processes), str(script)]
        cmd += args
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]


def _max_diff(a: Path, b: Path, name: str) -> float:
    x, y = load_file(str(a / name)), load_file(str(b / name))
    assert set(x) == set(y) and x
    return max((x[k].double() - y[k].double()).abs().max().item() for k in x)


@pytest.mark.slow
def test_fsdp2_gathered_state_lora_and_resume_match_unsharded(
    tmp_path: Path, tiny_wan_dir: Path
) -> None:
    data = tmp_path / "data"
    write_dataset(data, [("s0", make_scene(0, frames=FRAMES, height=HEIGHT, width=WIDTH))])
    settings = CacheSettings(model=str(tiny_wan_dir), frames=FRAMES, height=HEIGHT, width=WIDTH)
    assert not encode_dataset(
        data, data / "cache", settings, lambda: WanEncoder(tiny_wan_dir), False
    ).failed
    script = WORKER
    out = tmp_path / "out"
    args = [str(tiny_wan_dir), str(data), str(out)]
    _run(script, [*args, "single"], 1)
    _run(script, [*args, "fsdp"], 2)
    _run(script, [*args, "resume"], 2)  # restores fsdp/step1 into a sharded model
    for name in FILES:
        # a step really changes the state, so the comparisons below can fail
        assert _max_diff(out / "single" / "step1", out / "single" / "step2", name) > 1e-3
        # sharded = unsharded up to the order of the gradient reduction
        assert _max_diff(out / "single" / "step2", out / "fsdp" / "step2", name) < 1e-4
        # resume of a sharded checkpoint continues exactly
        assert _max_diff(out / "fsdp" / "step2", out / "resume" / "step2", name) < 1e-6
    lora = load_file(str(out / "fsdp" / "step2" / FILES[2]))
    assert any(k.endswith("lora_B.weight") and v.abs().max() > 0 for k, v in lora.items())


@pytest.mark.parametrize(
    ("flag", "message"),
    [("ACCELERATE_USE_DEEPSPEED", "pip install deepspeed"), ("ACCELERATE_USE_FSDP", "on CPU")],
)
def test_sharding_configs_that_cannot_run_here_fail_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: str, message: str
) -> None:
    pytest.importorskip("accelerate")
    if flag == "ACCELERATE_USE_DEEPSPEED" and _has_deepspeed():
        pytest.skip("deepspeed is installed")
    monkeypatch.setenv(flag, "true")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    cfg = preset_config("tiny-synthetic", data=tmp_path / "missing", out=tmp_path / "out")
    with pytest.raises(FourDNeXError, match=message) as info:
        train(cfg, progress=False)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()  # refused before any output


def _has_deepspeed() -> bool:
    import importlib.util

    return importlib.util.find_spec("deepspeed") is not None
