"""The latent cache: per training clip, everything the trainer reads, precomputed.

Layout of a cache directory (default ``DATA/cache``)::

    cache.json                 settings, their key, provenance
    null_prompt.safetensors    prompt_embeds (512, D) of the empty prompt (text dropout)
    entries/<clip_id>.safetensors

An entry holds the tensors of :class:`~fourdnex.train.cache_entry.CacheEntry` (the
VAE latents of the RGB, XYZ and condition videos and their posterior std, the latent
mask, the prompt and CLIP image embeddings and the motion label; its field names are
the file's keys), built by :func:`encode_clip` with :mod:`fourdnex.condition`, the same
code generation runs.

Its metadata ``key`` hashes the clip's files (content), the settings and the model
id: when any of them changes the entry is stale and is encoded again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from fourdnex.condition import (
    ConditionEncoding,
    KnownFrames,
    encode_condition,
    known_condition,
    prepare_modalities,
)
from fourdnex.data.clip_dataset import DATASET_JSON, INDEX_JSONL
from fourdnex.data.clips import RGB_LOSSLESS, RGB_VIDEO
from fourdnex.design import RELEASED, ConditionMask, DesignSettings, XYZCondition
from fourdnex.errors import FourDNeXError
from fourdnex.io.atomic import atomic_file, sweep
from fourdnex.io.paths import check_output_not_input
from fourdnex.models.presets import TEXT_CONTEXT_LENGTH
from fourdnex.provenance import provenance, write_json
from fourdnex.sixd import PROMPT_SUFFIX, check_frames, pack_mask_latent, with_prompt_suffix
from fourdnex.train.cache_entry import CacheEntry
from fourdnex.train.clipsource import ClipRef, list_clips, load_clip_arrays
from fourdnex.train.encoder import LatentEncoder, to_vae_video

CACHE_FORMAT = "fourdnex.latent_cache"
#: Version 3: entries hold ``cond_mask`` (clips with known frames). Version 4: ``motion``
#: (motion labels) and the CLIP image of known frames without frame 0.
CACHE_VERSION = 4
CACHE_JSON = "cache.json"
ENTRIES_DIR = "entries"
NULL_PROMPT_FILE = "null_prompt.safetensors"
#: Negative prompt of the released inference (method 2): empty.
NULL_PROMPT = ""
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class CacheSettings:
    """What an encoded entry depends on besides the clip itself."""

    model: str
    frames: int
    height: int
    width: int
    prompt_suffix: str = PROMPT_SUFFIX
    text_tokens: int = TEXT_CONTEXT_LENGTH
    condition_encoding: ConditionEncoding = "fused"
    """The model's (:func:`fourdnex.train.encoder.model_condition_encoding`)."""
    version: int = CACHE_VERSION
    xyz_condition: XYZCondition = "plane"
    """Frame 0's XYZ in the image condition (:class:`fourdnex.design.DesignSettings`)."""
    condition_mask: ConditionMask = "guided"
    """Frame 0's XYZ mask in the image condition (:class:`fourdnex.design.DesignSettings`)."""

    def __post_init__(self) -> None:
        check_frames(self.frames)
        if self.height % 16 or self.width % 16 or min(self.height, self.width) < 16:
            raise FourDNeXError(
                f"height and width must be positive multiples of 16, got {self.height}x{self.width}"
            )
        self.design.check()

    @classmethod
    def for_design(
        cls,
        design: DesignSettings,
        model: str,
        frames: int,
        height: int,
        width: int,
        condition_encoding: ConditionEncoding = "fused",
    ) -> CacheSettings:
        """The cache a model of ``design`` trains from (of its settings only the
        condition's, ``xyz_condition`` and ``condition_mask``, change what is cached)."""
        return cls(
            model, frames, height, width, condition_encoding=condition_encoding,
            xyz_condition=design.xyz_condition, condition_mask=design.condition_mask,
        )  # fmt: skip

    @property
    def design(self) -> DesignSettings:
        """The design settings of the cached image condition (the rest released)."""
        return DesignSettings(xyz_condition=self.xyz_condition, condition_mask=self.condition_mask)

    def record(self) -> dict[str, Any]:
        """The settings by name, the condition's design settings only where they are not
        the released ones (so the key of a released-design cache is what it always was)."""
        record = asdict(self)
        for name in ("xyz_condition", "condition_mask"):
            if record[name] == getattr(RELEASED, name):
                del record[name]
        return record

    def key(self) -> str:
        return _sha(json.dumps(self.record(), sort_keys=True).encode())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def clip_fingerprint(clip_dir: Path) -> str:
    """SHA-256 over the names and contents of the files of a clip directory: every file
    but the H.264 preview when the lossless RGB of record is there (the preview's bytes
    are not reproducible under load, see :func:`fourdnex.io.write_video`)."""
    h = hashlib.sha256()
    files = sorted(p for p in clip_dir.rglob("*") if p.is_file())
    if (clip_dir / RGB_LOSSLESS).is_file():
        files = [p for p in files if p != clip_dir / RGB_VIDEO]
    for path in files:
        h.update(str(path.relative_to(clip_dir)).encode() + b"\0")
        with path.open("rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def entry_key(settings: CacheSettings, fingerprint: str) -> str:
    return _sha(f"{settings.key()}:{fingerprint}".encode())


def entry_path(cache_dir: Path, clip_id: str) -> Path:
    return cache_dir / ENTRIES_DIR / f"{clip_id}.safetensors"


def stored_key(path: Path) -> str | None:
    """The key in an entry's metadata, or ``None`` if it is missing or unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("key")
    except (OSError, SafetensorError):
        return None


# ------------------------------------------------------------------------ encoding
@dataclass
class EncodeReport:
    """What an encode run did, clip by clip."""

    encoded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already cached and valid
    failed: list[tuple[str, str]] = field(default_factory=list)  # (clip id, reason)

    @property
    def total(self) -> int:
        return len(self.encoded) + len(self.skipped) + len(self.failed)


@dataclass(frozen=True)
class EncodedClip:
    """One encoded clip: its cache entry and the prompt it was encoded with."""

    entry: CacheEntry
    prompt: str


def encode_clip(encoder: LatentEncoder, ref: ClipRef, settings: CacheSettings) -> EncodedClip:
    """Encode one clip into its cache entry."""
    clip = load_clip_arrays(ref)
    rgb, xyz = prepare_modalities(
        clip.rgb, clip.xyz, settings.frames, settings.height, settings.width
    )
    # RGB and XYZ in one VAE batch; the condition alone, as generation encodes it.
    both, both_std = encoder.encode_video(
        torch.cat([to_vae_video(rgb * 2.0 - 1.0), to_vae_video(xyz)])
    )
    known = clip.condition or KnownFrames.first_frame(rgb[0], settings.frames, settings.design)
    if (known.frames, known.height, known.width) != (settings.frames, settings.height,
                                                    settings.width):  # fmt: skip
        raise FourDNeXError(
            f"clip {ref.clip_id}: its known frames are {known.frames} x {known.height} x "
            f"{known.width}, the cache encodes {settings.frames} x {settings.height} x "
            f"{settings.width}"
        )
    if encoder.condition_encoding != settings.condition_encoding:
        raise FourDNeXError(
            f"the model encodes conditions {encoder.condition_encoding!r}, the cache settings "
            f"say {settings.condition_encoding!r}"
        )
    video, pixel_mask = known_condition(known)
    cond, cond_std = encode_condition(encoder.encode_video, video, settings.condition_encoding)
    prompt = with_prompt_suffix(clip.caption, settings.prompt_suffix)
    entry = CacheEntry(
        rgb_latent=both[0],
        xyz_latent=both[1],
        cond_latent=cond[0],
        rgb_latent_std=both_std[0],
        xyz_latent_std=both_std[1],
        cond_latent_std=cond_std[0],
        cond_mask=pack_mask_latent(pixel_mask, encoder.factors.spatial)[0],
        prompt_embeds=encoder.encode_prompts([prompt])[0],
        image_embeds=encoder.encode_images([known.clip_image()])[0],
        motion=torch.tensor(
            [0.0, 0.0] if clip.motion_strength is None else [1.0, clip.motion_strength]
        ),
    )
    for name, t in entry.tensors().items():
        if not torch.isfinite(t).all():
            raise FourDNeXError(f"{name} of clip {ref.clip_id} is not finite")
    return EncodedClip(entry, prompt)


def encode_dataset(
    data_dir: Path,
    cache_dir: Path,
    settings: CacheSettings,
    make_encoder: Callable[[], LatentEncoder],
    progress: bool = True,
    shard: tuple[int, int] | None = None,
) -> EncodeReport:
    """Encode every clip of a dataset that is not cached with these settings yet.

    Resumable: valid entries are skipped. A clip that fails is recorded with its
    reason and the run goes on. The encoder is built only if something needs encoding.
    ``shard=(i, n)``: only every n-th clip from the i-th, so n processes can fill one
    cache (each entry and the shared files are written atomically).
    """
    from tqdm import tqdm

    clips = list_clips(data_dir)
    if not clips:
        raise FourDNeXError(f"dataset {data_dir} has no clips: nothing to encode")
    data = Path(data_dir)
    if Path(cache_dir).resolve() == data.resolve():
        raise FourDNeXError(f"the cache {cache_dir} is the dataset itself: choose a subfolder")
    check_output_not_input(cache_dir, [data / DATASET_JSON, data / INDEX_JSONL,
                                       *{r.path.parent for r in clips}], "--cache")  # fmt: skip
    try:
        (cache_dir / ENTRIES_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FourDNeXError(f"cannot write the cache to {cache_dir}: {exc.strerror}") from None
    if shard is None:  # temporaries of a killed encode (other shards may be writing theirs)
        sweep(cache_dir / ENTRIES_DIR)
        sweep(cache_dir)
    write_json(
        cache_dir / CACHE_JSON,
        {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "settings": settings.record(),
            "settings_key": settings.key(),
            "data": str(data_dir),
            "provenance": provenance(settings),
        },
    )
    report = EncodeReport()
    encoder: LatentEncoder | None = None
    null_path = cache_dir / NULL_PROMPT_FILE
    if stored_key(null_path) != settings.key():
        encoder = make_encoder()
        null = encoder.encode_prompts([NULL_PROMPT])[0]
        with atomic_file(null_path) as tmp:
            save_file({"prompt_embeds": null}, str(tmp), metadata={"key": settings.key()})
    if shard is not None:
        clips = clips[shard[0] :: shard[1]]
    bar = tqdm(clips, desc="encode", unit="clip", disable=not progress)
    for ref in bar:
        path = entry_path(cache_dir, ref.clip_id)
        try:
            key = entry_key(settings, clip_fingerprint(ref.path))
            if stored_key(path) == key:
                report.skipped.append(ref.clip_id)
                continue
            if encoder is None:
                encoder = make_encoder()
            out = encode_clip(encoder, ref, settings)
            meta = {"key": key, "clip_id": ref.clip_id, "prompt": out.prompt}
            with atomic_file(path) as tmp:
                save_file(out.entry.tensors(), str(tmp), metadata=meta)
            report.encoded.append(ref.clip_id)
        except (FourDNeXError, OSError, ValueError, RuntimeError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            report.failed.append((ref.clip_id, reason))
            bar.write(f"encode: clip {ref.clip_id} failed: {reason}")
    return report


# ---------------------------------------------------------------------- checking
def check_cache(data_dir: Path, cache_dir: Path, settings: CacheSettings) -> list[Path]:
    """The entry of every clip in the dataset, all present and current, in index order.

    Raises :class:`FourDNeXError` (before training starts) if the dataset is empty or
    any clip is not encoded with these settings, naming the first few.
    """
    clips = list_clips(data_dir)
    if not clips:
        raise FourDNeXError(f"dataset {data_dir} has no clips")
    if stored_key(cache_dir / NULL_PROMPT_FILE) != settings.key():
        raise FourDNeXError(
            f"no latent cache for these settings in {cache_dir}: run `4dnex encode --data "
            f"{data_dir}` with the same model and size first"
        )
    entries, problems = [], []
    for ref in clips:
        path = entry_path(cache_dir, ref.clip_id)
        key = stored_key(path)
        if key is None:
            problems.append(f"{ref.clip_id} (not encoded)")
        elif key != entry_key(settings, clip_fingerprint(ref.path)):
            problems.append(f"{ref.clip_id} (stale: clip or settings changed)")
        entries.append(path)
    if problems:
        raise FourDNeXError(
            f"{len(problems)} of {len(clips)} clips are not in the latent cache {cache_dir}: "
            f"{', '.join(problems[:3])}{' ...' if len(problems) > 3 else ''}; "
            f"run `4dnex encode --data {data_dir}` with the same settings"
        )
    return entries


def load_null_prompt(cache_dir: Path) -> torch.Tensor:
    """(512, D) embedding of the empty prompt (used for text dropout)."""
    from safetensors.torch import load_file

    return load_file(str(cache_dir / NULL_PROMPT_FILE))["prompt_embeds"]
