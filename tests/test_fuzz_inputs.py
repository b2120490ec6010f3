"""Malformed scene, dataset, clip, trajectory and LoRA files fed to every reader.

Each mutation of a valid file is given to every command that reads that kind of file:
the command must end with ONE error line and exit status 2 (a broken clip in
``encode``: the clip is reported, the run goes on, exit 1), and nothing may be
written anywhere (the output does not appear, no other file changes).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fourdnex.cli.main import main
from fourdnex.synthetic import make_scene

T, H, W = 5, 16, 24


def tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
        for p in sorted(root.rglob("*"))
    }


def edit_json(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        data = json.loads((d / name).read_text())
        result = change(data)
        (d / name).write_text(json.dumps(data if result is None else result))

    return apply


def write(name: str, content: bytes) -> Callable[[Path], None]:
    return lambda d: (d / name).write_bytes(content)


def truncate(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).write_bytes((d / name).read_bytes()[:-100])


def check_failure(capsys, args: list[str], root: Path, status: int = 2) -> None:
    before = tree(root)
    got = main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and "%|" not in ln]
    assert got == status, (args, err)
    if status == 2:
        assert len(lines) == 1 and "error:" in lines[0], (args, err)
    assert "Traceback" not in err and "internal error" not in err, (args, err)
    assert tree(root) == before, f"{args} wrote or changed files"


SCENE_MUTATIONS: dict[str, Callable[[Path], None]] = {
    "json garbage": write("scene.json", b"{not json"),
    "json list": write("scene.json", b"[1, 2]"),
    "binary json": write("scene.json", b"\xff\xfe\x00"),
    "fields a list": edit_json("scene.json", lambda h: h.update(fields=["rgb", "xyz"])),
    "fields empty": edit_json("scene.json", lambda h: h.update(fields={})),
    "listed field missing": edit_json(
        "scene.json", lambda h: h["fields"].update(conf={"shape": [T, H, W], "dtype": "float32"})
    ),
    "shape wrong": edit_json("scene.json", lambda h: h["fields"]["rgb"].update(shape=[1, 2, 3])),
    "shape not ints": edit_json("scene.json", lambda h: h["fields"]["rgb"].update(shape="x")),
    "frames differ": edit_json("scene.json", lambda h: h.update(frames=T + 3)),
    "frames string": edit_json("scene.json", lambda h: h.update(frames="5")),
    "bytes wrong": edit_json("scene.json", lambda h: h.update(arrays_bytes=12)),
    "version 99": edit_json("scene.json", lambda h: h.update(format_version=99)),
    "version bool": edit_json("scene.json", lambda h: h.update(format_version=True)),
    "format other": edit_json("scene.json", lambda h: h.update(format="other")),
    "meta a list": edit_json("scene.json", lambda h: h.update(meta=[1])),
    "meta unknown key": edit_json("scene.json", lambda h: h["meta"].update(prompt="x")),
    "meta seed text": edit_json("scene.json", lambda h: h["meta"].update(seed="7")),
    "meta notes ints": edit_json("scene.json", lambda h: h["meta"].update(notes=[1])),
    "arrays truncated": truncate("scene.safetensors"),
    "arrays garbage": write("scene.safetensors", b"\x00" * 64),
    "arrays missing": lambda d: (d / "scene.safetensors").unlink(),
    "no scene.json": lambda d: (d / "scene.json").unlink(),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    make_scene(2, T, H, W).save(root / "scene", previews=False)
    return root / "scene"


@pytest.mark.parametrize("mutation", sorted(SCENE_MUTATIONS))
def test_malformed_scenes(mutation, pristine, tmp_path, capsys):
    scene = tmp_path / "scene"
    shutil.copytree(pristine, scene)
    SCENE_MUTATIONS[mutation](scene)
    gt = tmp_path / "gt"
    shutil.copytree(pristine, gt)
    out = tmp_path / "out"
    for args in [
        ["info", scene],
        ["register", scene, "--overwrite"],
        ["export", scene, "--format", "npz", "--out", out / "s.npz"],
        ["export", scene, "--format", "ply", "--out", out / "ply"],
        ["render", scene, "--out", out / "v.mp4"],
        ["eval", scene, "--out", out / "report"],
        ["eval", gt, "--gt", scene, "--out", out / "report"],
    ]:
        check_failure(capsys, args, tmp_path)


# ------------------------------------------------------------- datasets and clips
@pytest.fixture(scope="module")
def pristine_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pristine_ds") / "ds"
    assert main(["synth", "--count", "2", "--frames", "5", "--height", "16", "--width", "16",
                 "--out", str(root)]) == 0  # fmt: skip
    return root


def edit_index(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        lines = (d / "index.jsonl").read_text().splitlines()
        first = json.loads(lines[0])
        result = change(first)
        lines[0] = json.dumps(first if result is None else result)
        (d / "index.jsonl").write_text("\n".join(lines) + "\n")

    return apply


DATASET_MUTATIONS: dict[str, Callable[[Path], None]] = {
    "dataset.json garbage": write("dataset.json", b"nope"),
    "dataset version 99": edit_json("dataset.json", lambda h: h.update(format_version=99)),
    "no index": lambda d: (d / "index.jsonl").unlink(),
    "index garbage": lambda d: (d / "index.jsonl").write_text("{oops\n"),
    "index a list": edit_index(lambda e: [e]),
    "index id missing": edit_index(lambda e: e.pop("id") and None),
    "index id traversal": edit_index(lambda e: e.update(id="../../evil")),
    "index id absolute": edit_index(lambda e: e.update(id="/tmp/evil")),
    "index id number": edit_index(lambda e: e.update(id=3)),
    "index path traversal": edit_index(lambda e: e.update(path="../../etc")),
    "index path absolute": edit_index(lambda e: e.update(path="/etc")),
    "index frames float": edit_index(lambda e: e.update(frames=5.5)),
    "index frames huge": edit_index(lambda e: e.update(frames=10**9)),
    "index duplicate id": lambda d: (d / "index.jsonl").write_text(
        (d / "index.jsonl").read_text().splitlines()[0] * 0
        + "\n".join([(d / "index.jsonl").read_text().splitlines()[0]] * 2)
        + "\n"
    ),
}


@pytest.mark.parametrize("mutation", sorted(DATASET_MUTATIONS))
def test_malformed_datasets(mutation, pristine_dataset, tmp_path, capsys):
    data = tmp_path / "ds"
    shutil.copytree(pristine_dataset, data)
    DATASET_MUTATIONS[mutation](data)
    for args in [
        ["encode", "--data", data, "--model", "tiny", "--no-progress"],
        ["train", "--data", data, "--out", tmp_path / "run", "--max-steps", "1"],
        ["train-vae", "--data", data, "--out", tmp_path / "vae", "--steps", "1"],
    ]:
        check_failure(capsys, args, tmp_path)


CLIP_MUTATIONS: dict[str, Callable[[Path], None]] = {
    "clip.json garbage": write("clip.json", b"{"),
    "clip version 99": edit_json("clip.json", lambda h: h.update(format_version=99)),
    "clip frames wrong": edit_json("clip.json", lambda h: h.update(frames=9)),
    "clip normalization broken": edit_json("clip.json", lambda h: h.update(xyz_normalization=1)),
    "geometry truncated": truncate("geometry.safetensors"),
    "geometry garbage": write("geometry.safetensors", b"\x01" * 40),
    "rgb garbage": write("rgb.mkv", b"not a video"),
    "rgb missing": lambda d: (d / "rgb.mkv").unlink(),
}


@pytest.mark.parametrize("mutation", sorted(CLIP_MUTATIONS))
def test_malformed_clips(mutation, pristine_dataset, tmp_path, capsys):
    data = tmp_path / "ds"
    shutil.copytree(pristine_dataset, data)
    CLIP_MUTATIONS[mutation](data / "clips" / "synth_000000")
    before = {k: v for k, v in tree(tmp_path).items() if not k.startswith("ds/cache")}
    status = main(["encode", "--data", str(data), "--model", "tiny", "--no-progress"])
    captured = capsys.readouterr()
    assert status == 1, captured.err  # the broken clip is reported, the rest encoded
    assert "failed synth_000000:" in captured.out and "Traceback" not in captured.err
    after = {k: v for k, v in tree(tmp_path).items() if not k.startswith("ds/cache")}
    assert after == before
    assert not (data / "cache" / "entries" / "synth_000000.safetensors").exists()


# ------------------------------------------------------------------ trajectories
TRAJECTORY_MUTATIONS: dict[str, Callable[[dict], object]] = {
    "not an object": lambda t: [t],
    "frames not a list": lambda t: t.update(frames=3),
    "no frames": lambda t: t.update(frames=[]),
    "frame not an object": lambda t: t.update(frames=[1, 2]),
    "width float": lambda t: t.update(width=64.9),
    "width string": lambda t: t.update(width="64"),
    "width huge": lambda t: t.update(width=20000, height=20000),
    "too many frames": lambda t: t.update(frames=t["frames"] * 2000),
    "time float": lambda t: t["frames"][0].update(time=1.7),
    "time negative": lambda t: t["frames"][0].update(time=-1),
    "time past the scene": lambda t: t["frames"][0].update(time=T),
    "K ragged": lambda t: t["frames"][0].update(K=[[1, 0], [0, 1]]),
    "K negative focal": lambda t: t["frames"][0].update(K=[[-5, 0, 1], [0, 5, 1], [0, 0, 1]]),
    "K missing": lambda t: t["frames"][0].pop("K") and None,
    "cam2world not rigid": lambda t: t["frames"][0].update(
        cam2world=np.diag([2, 1, 1, 1]).tolist()
    ),
    "cam2world NaN": lambda t: t["frames"][0]["cam2world"][0].__setitem__(0, float("nan")),
}


@pytest.mark.parametrize("mutation", sorted(TRAJECTORY_MUTATIONS))
def test_malformed_trajectories(mutation, pristine, tmp_path, capsys):
    from fourdnex.geometry import make_trajectory, with_cameras
    from fourdnex.scene import Scene4D

    s = with_cameras(Scene4D.load(pristine)).scene
    traj = make_trajectory("orbit", s.K, s.cam2world, s.depth).to_json()
    result = TRAJECTORY_MUTATIONS[mutation](traj)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(traj if result is None else result))
    check_failure(capsys, ["render", pristine, "--trajectory", path, "--out",
                           tmp_path / "o" / "v.mp4"], tmp_path)  # fmt: skip


# ------------------------------------------------------------------------ LoRA
@pytest.fixture(scope="module")
def pristine_lora(tmp_path_factory) -> Path:
    import torch
    from diffusers import WanTransformer3DModel

    from fourdnex.models.lora import LoraSettings, add_lora, save_lora
    from fourdnex.models.presets import get_preset
    from fourdnex.models.transformer import adapt_transformer

    torch.manual_seed(0)
    model = adapt_transformer(WanTransformer3DModel(**get_preset("tiny").transformer).eval())
    add_lora(model, LoraSettings(rank=2, alpha=2.0))
    return save_lora(model, tmp_path_factory.mktemp("lora") / "lora", base_model="tiny")


LORA_MUTATIONS: dict[str, Callable[[Path], None]] = {
    "record garbage": write("fourdnex_lora.json", b"{"),
    "record unknown key": edit_json("fourdnex_lora.json", lambda r: r.update(colour="red")),
    "record version 99": edit_json("fourdnex_lora.json", lambda r: r.update(format_version=99)),
    "record alpha NaN": edit_json("fourdnex_lora.json", lambda r: r.update(alpha=float("nan"))),
    "record alpha text": edit_json("fourdnex_lora.json", lambda r: r.update(alpha="big")),
    "record rank wrong": edit_json("fourdnex_lora.json", lambda r: r.update(rank=3)),
    "record stats broken": edit_json("fourdnex_lora.json", lambda r: r.update(xyz_latent=[1])),
    "weights garbage": write("pytorch_lora_weights.safetensors", b"\x02" * 50),
    "weights missing": lambda d: (d / "pytorch_lora_weights.safetensors").unlink(),
    "domain missing": lambda d: (d / "domain_embeddings.safetensors").unlink(),
}


@pytest.mark.parametrize("mutation", sorted(LORA_MUTATIONS))
def test_malformed_loras(mutation, pristine_lora, tiny_wan_dir, tmp_path, capsys):
    from PIL import Image

    lora = tmp_path / "lora"
    shutil.copytree(pristine_lora, lora)
    LORA_MUTATIONS[mutation](lora)
    Image.new("RGB", (48, 32)).save(tmp_path / "img.png")
    check_failure(capsys, ["generate", tmp_path / "img.png", "--model", tiny_wan_dir, "--lora",
                           lora, "--out", tmp_path / "out", "--steps", "1"], tmp_path)  # fmt: skip
