"""SceneMeta: the typed record of where a scene came from, stored in ``scene.json``.

Every stage reads the same named fields instead of guessing dictionary keys:

- ``generator``: what produced the arrays (``PIPELINE_GENERATOR`` and
  ``SYNTHETIC_GENERATOR`` name ours; an importer
  or a user may write any other non-empty string).
- ``caption``: the scene's text: the prompt it was generated from, or the caption
  of a synthetic or curated clip.
- ``seed``: the random seed of the generator, when it has one.
- ``settings``: the generator's settings (generation steps, guidance and model for
  the pipeline; the scene specification for the synthetic world).
- ``provenance``: library versions, command line and time (:mod:`fourdnex.provenance`).
- ``xyz_space``: ``"model"`` (the normalized space the model generates in) or
  ``"world"`` (metric or source units), and ``xyz_normalization``: the transform
  from world to model space when it is known.
- ``registration``: the summary of the camera registration, set by
  :func:`fourdnex.geometry.scene_cameras.register_scene`.
- ``notes``: lines for the user (input conversions, aspect warnings).
- ``extra``: anything a stage adds that is not above (validation step, object
  names, the input image's path); JSON values under string keys.

Scene format 1 stored a flat dictionary; :meth:`SceneMeta.from_v1` maps it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from fourdnex.errors import ValidationError

#: Generators fourdnex itself writes.
PIPELINE_GENERATOR = "fourdnex.pipeline"
SYNTHETIC_GENERATOR = "fourdnex.synthetic"

XYZSpace = Literal["model", "world"]
XYZ_SPACES: tuple[str, ...] = get_args(XYZSpace)


@dataclass
class SceneMeta:
    """Where a scene came from and how it was made (see the module docstring)."""

    generator: str = ""
    caption: str = ""
    seed: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    xyz_space: XYZSpace = "world"
    xyz_normalization: dict[str, Any] | None = None
    registration: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field's type and that the whole record is JSON; raise ValidationError."""
        for name in ("generator", "caption"):
            _expect(name, getattr(self, name), str, "a string")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ValidationError(f"meta.seed must be an integer or null, got {self.seed!r}")
        for name in ("settings", "provenance", "extra"):
            _expect(name, getattr(self, name), dict, "an object")
        for name in ("xyz_normalization", "registration"):
            value = getattr(self, name)
            if value is not None:
                _expect(name, value, dict, "an object or null")
        if self.xyz_space not in XYZ_SPACES:
            raise ValidationError(
                f"meta.xyz_space must be one of {XYZ_SPACES}, got {self.xyz_space!r}"
            )
        _expect("notes", self.notes, list, "a list of strings")
        if not all(isinstance(n, str) for n in self.notes):
            raise ValidationError("meta.notes must be a list of strings")
        for name in ("settings", "provenance", "extra", "xyz_normalization", "registration"):
            value = getattr(self, name)
            if value is not None and not all(isinstance(k, str) for k in value):
                raise ValidationError(f"meta.{name} keys must be strings")
        try:
            json.dumps(self.to_dict(), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"meta must be JSON-serializable: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored as ``meta`` in ``scene.json``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def copy(self) -> SceneMeta:
        """A deep copy (the containers are not shared)."""
        return SceneMeta.from_dict(json.loads(json.dumps(self.to_dict())))

    def replace(self, **changes: Any) -> SceneMeta:
        """A deep copy with some fields replaced (validated)."""
        return dataclasses.replace(self.copy(), **changes)

    @classmethod
    def from_dict(cls, data: Any) -> SceneMeta:
        """Read the stored object; unknown keys or wrong types raise ValidationError."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValidationError(f"meta must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValidationError(
                f"meta has unknown keys {unknown} (stage-specific values belong in meta.extra)"
            )
        return cls(**data)

    @classmethod
    def from_v1(cls, data: Any) -> SceneMeta:
        """Map the flat meta dictionary of scene format 1 onto the typed fields."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValidationError(f"meta must be a JSON object, got {type(data).__name__}")
        rest = dict(data)
        generator = str(rest.pop("generator", "") or rest.pop("source", "") or "")
        if generator.startswith(PIPELINE_GENERATOR):
            generator = PIPELINE_GENERATOR
        caption = rest.pop("caption", None) or rest.pop("prompt", None) or ""
        rest.pop("prompt", None)
        typed: dict[str, Any] = {
            "generator": generator,
            "caption": str(caption),
            "seed": rest.pop("seed", None),
            "provenance": rest.pop("provenance", None) or {},
            "xyz_space": rest.pop("xyz_space", "world"),
            "xyz_normalization": rest.pop("xyz_normalization", None),
            "registration": rest.pop("registration", None),
            "notes": rest.pop("notes", None) or [],
        }
        if generator == PIPELINE_GENERATOR:
            typed["settings"] = rest
            rest = {}
        elif "synthetic" in rest:
            typed["settings"] = rest.pop("synthetic")
        typed["extra"] = rest
        return cls(**typed)


def _expect(name: str, value: Any, kind: type, what: str) -> None:
    if not isinstance(value, kind):
        raise ValidationError(f"meta.{name} must be {what}, got {type(value).__name__}")
