"""Shared fixtures. ``tiny_wan_dir``: a tiny random Wan2.1 I2V diffusers directory,
built once per test session (per xdist worker) and loaded through the user path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_wan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete tiny diffusers-format Wan2.1 I2V directory (read-only by convention)."""
    from fourdnex.models.tiny import build_tiny_wan_i2v

    return build_tiny_wan_i2v(tmp_path_factory.mktemp("tiny_wan") / "wan2.1-i2v-tiny", seed=0)


@pytest.fixture()
def one_torch_thread() -> Iterator[None]:
    """Run a test on one torch thread (on a busy 2-core machine, two threads contend)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
