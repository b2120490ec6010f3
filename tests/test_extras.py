"""Optional extras: a missing one is a one-line error naming the extra, before any output."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fourdnex import FourDNeXError
from fourdnex.export import export_scene
from fourdnex.geometry import register
from fourdnex.synthetic import make_scene


def test_rrd_export_without_rerun_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene = make_scene(0, frames=1, height=8, width=12)
    reg = register(scene.xyz)
    scene = scene.replace(K=reg.K, cam2world=reg.cam2world, depth=reg.depth)
    monkeypatch.setitem(sys.modules, "rerun", None)  # makes `import rerun` fail
    with pytest.raises(FourDNeXError, match=r"pip install 'fourdnex\[rerun\]'"):
        export_scene(scene, "rrd", tmp_path / "x.rrd", progress=False)
    assert list(tmp_path.iterdir()) == []
