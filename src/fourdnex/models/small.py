"""fourdnex-small: the bundled trained model, and the files that describe a model directory.

A fourdnex model directory is a diffusers Wan2.1 I2V directory plus ``fourdnex.json``:

- ``name``: the model's name (``"fourdnex-small"``);
- ``xyz_latent``: ``{"mean", "std"}`` of the XYZ latent normalization (method 3.3),
  measured on the model's own training latents;
- ``frames``, ``height``, ``width``: the generation size the model was trained at;
- ``inference``: the model's recommended sampler settings (``steps``, ``guidance``,
  ``flow_shift``), chosen by measurement; settings a user leaves unset take them
  (:meth:`fourdnex.pipeline.GenerationSettings.with_defaults`);
- ``condition_encoding``: how the condition video is VAE-encoded
  (:data:`fourdnex.condition.ConditionEncoding`; absent means ``"fused"``, the
  released weights' way);
- ``design``: the design settings the transformer was trained with, where they are not
  the released ones (:class:`fourdnex.design.DesignSettings`; absent means released);
- ``training``: how each component was made (free-form, for the model card).

The bundled weights live in the package (``fourdnex/assets/models/fourdnex-small``).
The recipe that makes them is in docs/model-card.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fourdnex.condition import CONDITION_ENCODINGS, ConditionEncoding
from fourdnex.design import RELEASED, DesignSettings
from fourdnex.errors import FourDNeXError
from fourdnex.models.presets import SMALL_FRAMES, SMALL_HEIGHT, SMALL_NAME, SMALL_WIDTH
from fourdnex.sixd import XYZLatentNorm

#: The model description file in a model directory's root.
MODEL_JSON = "fourdnex.json"
#: Where the bundled model lives inside the package.
BUNDLED_SUBDIR = ("assets", "models", SMALL_NAME)


@dataclass(frozen=True)
class ModelCard:
    """What ``fourdnex.json`` says about a model directory."""

    name: str
    xyz_latent: XYZLatentNorm
    frames: int | None = None
    height: int | None = None
    width: int | None = None
    condition_encoding: ConditionEncoding = "fused"
    training: dict[str, Any] = field(default_factory=dict)
    inference: dict[str, float] = field(default_factory=dict)
    design: DesignSettings = RELEASED

    def to_dict(self) -> dict[str, Any]:
        """The ``fourdnex.json`` record; ``design`` only where it is not the released one
        (so the records of released-design models stay as they were)."""
        record = {
            "name": self.name,
            "xyz_latent": {"mean": self.xyz_latent.mean, "std": self.xyz_latent.std},
            "frames": self.frames,
            "height": self.height,
            "width": self.width,
            "condition_encoding": self.condition_encoding,
            "inference": self.inference,
            "training": self.training,
        }
        if not self.design.released:
            record["design"] = self.design.changed()
        return record

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> ModelCard:
        try:
            stats = d["xyz_latent"]
            card = cls(
                name=str(d["name"]),
                xyz_latent=XYZLatentNorm(float(stats["mean"]), float(stats["std"])),
                frames=None if d.get("frames") is None else int(d["frames"]),
                height=None if d.get("height") is None else int(d["height"]),
                width=None if d.get("width") is None else int(d["width"]),
                condition_encoding=d.get("condition_encoding", "fused"),
                training=dict(d.get("training") or {}),
                inference={
                    str(k): float(v)
                    for k, v in (d.get("inference") or {}).items()
                    if k in ("steps", "guidance", "flow_shift")
                },
                design=DesignSettings.from_record(d.get("design"), "design"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FourDNeXError(f"invalid {MODEL_JSON} in {where}: {exc}") from None
        if card.condition_encoding not in CONDITION_ENCODINGS:
            raise FourDNeXError(
                f"invalid {MODEL_JSON} in {where}: condition_encoding "
                f"{card.condition_encoding!r} is not one of {', '.join(CONDITION_ENCODINGS)}"
            )
        if not card.xyz_latent.std > 0:
            raise FourDNeXError(f"invalid {MODEL_JSON} in {where}: xyz_latent std must be > 0")
        return card


def read_model_card(directory: str | Path) -> ModelCard | None:
    """The ``fourdnex.json`` of a local model directory (None when it has none)."""
    path = Path(directory) / MODEL_JSON
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FourDNeXError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise FourDNeXError(f"{path} is not a JSON object")
    return ModelCard.from_dict(data, str(directory))


def write_model_card(directory: str | Path, card: ModelCard) -> None:
    from fourdnex.provenance import write_json

    write_json(Path(directory) / MODEL_JSON, card.to_dict())


def bundled_model_dir() -> Path:
    """The installed fourdnex-small directory (a clear error if the package lacks it)."""
    root = resources.files("fourdnex")
    path = Path(str(root.joinpath(*BUNDLED_SUBDIR)))
    if not (path / "model_index.json").is_file():
        raise FourDNeXError(
            f"the bundled model {SMALL_NAME} is not installed at {path} (reinstall fourdnex)"
        )
    return path


def resolve_model_name(model: str) -> str:
    """``fourdnex-small`` -> its installed directory; anything else unchanged."""
    return str(bundled_model_dir()) if model == SMALL_NAME else model


__all__ = [
    "BUNDLED_SUBDIR",
    "MODEL_JSON",
    "SMALL_FRAMES",
    "SMALL_HEIGHT",
    "SMALL_NAME",
    "SMALL_WIDTH",
    "ModelCard",
    "bundled_model_dir",
    "read_model_card",
    "resolve_model_name",
    "write_model_card",
]
