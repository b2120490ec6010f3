"""Video captions: one caption per video or per clip, from a vision-language model or a CSV.

4DNeX-10M captions come from LLaVA-NeXT-Video-7B-Qwen2: 32 uniformly sampled frames and
the prompt :data:`CAPTION_PROMPT`. Anything with a ``name`` and a ``caption(frames)``
method is a :class:`Captioner`; two are provided:

* :class:`VLMCaptioner` runs a transformers LLaVA-NeXT-Video model (or another video
  vision-language model of the same kind) from a local directory or a hub id, with greedy
  (deterministic) decoding.
* :class:`CsvCaptions` looks captions up in a CSV file (the released ``number,caption``
  files or a user's ``video,caption`` table).

Frames are preprocessed by transformers' CLIP image processor on its PIL backend
(:class:`~transformers.models.clip.image_processing_pil_clip.CLIPImageProcessorPil`) with
the model's saved video-processor settings: LLaVA-NeXT-Video's own video processor
(``LlavaNextVideoVideoProcessor``) runs the same steps (shortest-edge resize, centre crop,
rescale, CLIP normalization, the same defaults) but needs torchvision, which does not work
in this environment; older LLaVA-NeXT-Video checkpoints shipped exactly this CLIP image
processor for their video frames. Values agree with the torchvision path to within the
rounding of the resize.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from fourdnex.curate.model_files import (
    check_frames,
    first_line,
    read_json_object,
    resolve_model_dir,
)
from fourdnex.errors import FourDNeXError, ValidationError

#: The captioning prompt of the 4DNeX-10M pipeline, verbatim.
CAPTION_PROMPT = (
    "Please provide a concise description of the video, focusing on the main subjects and "
    "the background scenes."
)
#: Frames sampled uniformly from each video for its caption.
CAPTION_FRAMES = 32
#: Longest caption generated, in tokens (the paper asks for "concise"; 4DNeX-10M captions
#: are a few sentences).
DEFAULT_MAX_NEW_TOKENS = 128
#: Transformers model type of LLaVA-NeXT-Video checkpoints.
LLAVA_NEXT_VIDEO = "llava_next_video"
#: Placeholder the LLaVA-NeXT-Video chat template writes for a video.
DEFAULT_VIDEO_TOKEN = "<video>"
#: The frame settings of a saved video (or image) processor that the captioner uses; the
#: defaults of what a checkpoint does not save are LLaVA-NeXT-Video's (the same as CLIP's).
FRAME_SETTINGS = (
    "size",
    "crop_size",
    "resample",
    "default_to_square",
    "do_resize",
    "do_center_crop",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
)
#: Files of a checkpoint needed to caption (fetched from the hub for a hub id).
_HUB_PATTERNS = ["*.json", "*.jinja", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]


def uniform_frame_indices(num_frames: int, count: int = CAPTION_FRAMES) -> NDArray[np.int64]:
    """Indices of ``count`` frames sampled uniformly from a video of ``num_frames`` frames.

    Exactly what LLaVA-NeXT(-Video)'s ``load_video`` does:
    ``np.linspace(0, num_frames - 1, count, dtype=int)``, i.e. evenly spaced positions
    from the first to the last frame, truncated (floored) to integers. The first and last
    frames are always included. A video with fewer than ``count`` frames gives every frame,
    some repeated (still ``count`` indices, in order), so the model always sees the same
    number of frames.

    Returns:
        (count,) int64 indices into the video, non-decreasing.
    """
    if num_frames < 1:
        raise ValidationError(f"cannot sample frames from a video of {num_frames} frames")
    if count < 1:
        raise ValidationError(f"frame count must be >= 1, got {count}")
    return np.linspace(0, num_frames - 1, count).astype(np.int64)


@runtime_checkable
class Captioner(Protocol):
    """Makes one caption for the frames of a video (or clip)."""

    #: Short name recorded with each caption (which model or file it came from).
    name: str

    def caption(self, frames: NDArray[np.uint8]) -> str:
        """``frames``: (T, H, W, 3) uint8 RGB frames; returns the caption."""
        ...


# --------------------------------------------------------------------------- preprocessing


def frame_processor(settings: dict[str, Any]) -> Any:
    """transformers' CLIP image processor (PIL backend) with the :data:`FRAME_SETTINGS` of
    a saved video or image processor config; it maps (F, H, W, 3) uint8 frames to
    ``pixel_values`` (F, 3, h, w)."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    kwargs = {k: settings[k] for k in FRAME_SETTINGS if settings.get(k) is not None}
    try:
        return CLIPImageProcessorPil(**kwargs)
    except (TypeError, ValueError) as exc:
        raise FourDNeXError(f"unsupported video processor settings: {first_line(exc)}") from None


# --------------------------------------------------------------------------- model files


def _video_settings(directory: Path, model_type: str) -> dict[str, Any]:
    """The saved video preprocessing settings, newest format first.

    ``processor_config.json``'s ``video_processor`` (transformers 5),
    ``video_preprocessor_config.json``, then the image processor's (older LLaVA-NeXT-Video
    checkpoints preprocess video frames with it); LLaVA-NeXT-Video's defaults otherwise.
    """
    processor = directory / "processor_config.json"
    composite = read_json_object(processor) if processor.is_file() else {}
    if isinstance(composite.get("video_processor"), dict):
        return dict(composite["video_processor"])
    video = directory / "video_preprocessor_config.json"
    if video.is_file():
        return read_json_object(video)
    if isinstance(composite.get("image_processor"), dict):
        return dict(composite["image_processor"])
    image = directory / "preprocessor_config.json"
    if image.is_file():
        return read_json_object(image)
    if model_type == LLAVA_NEXT_VIDEO:
        return {}
    raise FourDNeXError(f"{directory} has no video or image processor settings")


def _chat_template(directory: Path, tokenizer: Any) -> str:
    """The processor's chat template (``chat_template.jinja``, ``chat_template.json``,
    ``processor_config.json``), else the tokenizer's."""
    jinja = directory / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    for name in ("chat_template.json", "processor_config.json"):
        path = directory / name
        if path.is_file():
            template = read_json_object(path).get("chat_template")
            if isinstance(template, str) and template:
                return template
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and template:
        return template
    raise FourDNeXError(f"{directory} has no chat template (processor or tokenizer)")


# --------------------------------------------------------------------------- captioners


class VLMCaptioner:
    """Captions with a transformers video vision-language model (LLaVA-NeXT-Video).

    Args:
        model: a local checkpoint directory (``config.json``, weights, tokenizer, processor
            settings and chat template) or a hub id. ``llava_next_video`` checkpoints load
            with ``LlavaNextVideoForConditionalGeneration``; other model types with
            ``AutoModelForImageTextToText`` (a video VLM whose processor takes
            ``pixel_values_videos`` and a video placeholder token, e.g. LLaVA-OneVision).
        device: torch device to run on.
        dtype: weights' dtype; None: :func:`fourdnex.precision.weights_dtype` of the device.
        max_new_tokens: longest caption, in tokens.
        prompt: the user turn's text.
        frames: frames sampled uniformly from each video (:func:`uniform_frame_indices`).

    The prompt is the processor's chat template applied to one user turn holding the video
    and the prompt, with the generation prompt added. The video placeholder is expanded to
    as many tokens as the model makes features for the sampled frames (measured once per
    frame shape). Decoding is greedy, so a caption depends only on the frames.
    """

    def __init__(
        self,
        model: str | Path,
        device: str = "cpu",
        dtype: Any = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        prompt: str = CAPTION_PROMPT,
        frames: int = CAPTION_FRAMES,
    ) -> None:
        import torch

        if frames < 1 or max_new_tokens < 1:
            raise ValidationError("frames and max_new_tokens must be >= 1")
        self.directory = resolve_model_dir(model, "captioning model", _HUB_PATTERNS)
        self.name = f"vlm:{model if not Path(str(model)).exists() else self.directory.name}"
        self.prompt = prompt
        self.frames = int(frames)
        self.max_new_tokens = int(max_new_tokens)
        self.device = torch.device(device)
        from fourdnex.precision import weights_dtype

        self.dtype = weights_dtype(self.device) if dtype is None else dtype
        config = read_json_object(self.directory / "config.json")
        self.model_type = str(config.get("model_type", ""))
        self.processor = frame_processor(_video_settings(self.directory, self.model_type))
        self.model = self._load_model()
        self.tokenizer = self._load_tokenizer()
        self.chat_template = _chat_template(self.directory, self.tokenizer)
        self.video_token_id, self.video_token = self._video_token()
        self._token_counts: dict[tuple[int, ...], int] = {}

    def _load_model(self) -> Any:
        from fourdnex.models.loading import quiet_dtype_deprecation, quiet_loading

        try:
            with quiet_loading(), quiet_dtype_deprecation():
                if self.model_type == LLAVA_NEXT_VIDEO:
                    from transformers import LlavaNextVideoForConditionalGeneration as cls
                else:
                    from transformers import AutoModelForImageTextToText as cls
                model = cls.from_pretrained(str(self.directory), dtype=self.dtype)
        except (OSError, ValueError, KeyError) as exc:
            raise FourDNeXError(
                f"cannot load captioning model {self.directory} "
                f"(model type {self.model_type!r}): {first_line(exc)}"
            ) from None
        if not hasattr(model, "get_video_features"):
            raise FourDNeXError(f"{self.directory}: {type(model).__name__} does not take video")
        return model.to(self.device).eval().requires_grad_(False)

    def _load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        from fourdnex.models.loading import quiet_loading

        try:
            with quiet_loading():
                return AutoTokenizer.from_pretrained(str(self.directory))
        except (OSError, ValueError, KeyError) as exc:
            msg = f"cannot load the tokenizer of {self.directory}: {first_line(exc)}"
            raise FourDNeXError(msg) from None

    def _video_token(self) -> tuple[int, str]:
        """The video placeholder's id (from the model config) and its text."""
        config = self.model.config
        token_id = getattr(config, "video_token_id", None)
        if token_id is None:
            token_id = getattr(config, "video_token_index", None)
        if token_id is None:
            raise FourDNeXError(f"{self.directory}: the model config names no video token")
        processor = self.directory / "processor_config.json"
        token = read_json_object(processor).get("video_token") if processor.is_file() else None
        if not isinstance(token, str):
            token = self.tokenizer.convert_ids_to_tokens(int(token_id))
        if not isinstance(token, str) or self.tokenizer.convert_tokens_to_ids(token) != token_id:
            token = DEFAULT_VIDEO_TOKEN
        return int(token_id), token

    def pixel_values(self, frames: NDArray[np.uint8]) -> Any:
        """(1, F, 3, h, w) model input of the ``self.frames`` frames sampled from ``frames``."""

        frames = check_frames(frames)
        sampled = frames[uniform_frame_indices(frames.shape[0], self.frames)]
        x = self.processor(list(sampled), return_tensors="pt")["pixel_values"][None]
        return x.to(self.device, self.dtype)

    def prompt_text(self) -> str:
        """The chat-template text of the captioning request (one video placeholder)."""
        messages = [
            {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": self.prompt}]}
        ]
        try:
            text = self.tokenizer.apply_chat_template(
                messages,
                chat_template=self.chat_template,
                tokenize=False,
                add_generation_prompt=True,
            )
        except Exception as exc:  # noqa: BLE001 - jinja raises many types
            raise FourDNeXError(f"cannot apply the chat template: {first_line(exc)}") from None
        return str(text)

    def _video_token_count(self, pixel_values: Any) -> int:
        """Placeholder tokens the model expects for video input of this shape (cached)."""
        import torch

        shape = tuple(pixel_values.shape)
        if shape not in self._token_counts:
            with torch.inference_mode():
                out = self.model.get_video_features(pixel_values_videos=pixel_values)
            features = getattr(out, "pooler_output", out)
            if isinstance(features, torch.Tensor):
                features = [features]
            tensors: Sequence[Any] = features
            self._token_counts[shape] = sum(int(f.numel() // f.shape[-1]) for f in tensors)
        return self._token_counts[shape]

    def input_ids(self, pixel_values: Any) -> list[int]:
        """Token ids of the prompt with the video placeholder expanded."""
        text = self.prompt_text()
        bos = getattr(self.tokenizer, "bos_token", None)
        add_special = not (isinstance(bos, str) and bos and text.startswith(bos))
        ids = list(self.tokenizer(text, add_special_tokens=add_special)["input_ids"])
        where = [i for i, t in enumerate(ids) if t == self.video_token_id]
        if len(where) != 1:
            raise FourDNeXError(
                f"the chat template of {self.directory} must place exactly one video token "
                f"{self.video_token!r}, found {len(where)}"
            )
        count = self._video_token_count(pixel_values)
        i = where[0]
        return ids[:i] + [self.video_token_id] * count + ids[i + 1 :]

    def caption(self, frames: NDArray[np.uint8]) -> str:
        """Caption (T, H, W, 3) uint8 frames: greedy decoding, new text only, stripped."""
        import torch

        from fourdnex.models.loading import quiet_loading

        pixel_values = self.pixel_values(frames)
        ids = torch.tensor([self.input_ids(pixel_values)], device=self.device)
        generation = self.model.generation_config
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        kwargs: dict[str, Any] = {
            "do_sample": False,
            "num_beams": 1,
            "max_new_tokens": self.max_new_tokens,
            "pad_token_id": pad,
        }
        # greedy decoding ignores sampling settings; unset them so generate does not warn
        for key in ("temperature", "top_p", "top_k"):
            if getattr(generation, key, None) is not None:
                kwargs[key] = None
        with torch.inference_mode(), quiet_loading():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                pixel_values_videos=pixel_values,
                **kwargs,
            )
        new = out[0, ids.shape[1] :]
        return str(self.tokenizer.decode(new, skip_special_tokens=True)).strip()


class CsvCaptions:
    """Captions from a CSV table, looked up by video name.

    Args:
        path: the CSV file, with a header row.
        key_column: the column naming the video (``number`` in the released 4DNeX-10M
            files, ``video`` in a user's table); None takes the first column.
        caption_column: the caption column; None takes ``caption`` if present, else the
            second column.

    A video is looked up by its name as written, then by its file name, then by its file
    name without suffix (``clips/0042.mp4`` finds ``0042``), then, for a numeric name, by
    its number (``42.mp4`` finds ``0042``). A missing or empty caption is an error naming
    the video. (A lookup, not a :class:`Captioner`: it needs the video's name, not frames.)
    """

    def __init__(
        self,
        path: str | Path,
        key_column: str | None = None,
        caption_column: str | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self.name = f"csv:{self.path.name}"
        if not self.path.is_file():
            raise FourDNeXError(f"caption file not found: {self.path}")
        try:
            with self.path.open(newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise FourDNeXError(f"cannot read {self.path}: {first_line(exc)}") from None
        if not rows or len(rows[0]) < 2:
            raise FourDNeXError(f"{self.path}: needs a header row with at least two columns")
        header = [h.strip() for h in rows[0]]
        key = header[0] if key_column is None else key_column
        if caption_column is None:
            caption_column = "caption" if "caption" in header and key != "caption" else header[1]
        for column in (key, caption_column):
            if column not in header:
                raise FourDNeXError(
                    f"{self.path}: no column {column!r} (columns: {', '.join(header)})"
                )
        ki, ci = header.index(key), header.index(caption_column)
        self.key_column, self.caption_column = key, caption_column
        self.captions: dict[str, str] = {}
        self._numbers: dict[int, str] | None = None
        for line, row in enumerate(rows[1:], start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(ki, ci):
                raise FourDNeXError(f"{self.path}:{line}: expected {len(header)} columns")
            name = row[ki].strip()
            if name in self.captions:
                raise FourDNeXError(f"{self.path}:{line}: video {name!r} has two captions")
            self.captions[name] = row[ci].strip()

    def __len__(self) -> int:
        return len(self.captions)

    def __contains__(self, video: object) -> bool:
        return isinstance(video, (str, Path)) and self._find(video) is not None

    def _find(self, video: str | Path) -> str | None:
        text = str(video).strip()
        stem = Path(text).stem
        for candidate in (text, Path(text).name, stem):
            if candidate in self.captions:
                return candidate
        if stem.isdigit():  # released numbers may be written with or without zero padding
            if self._numbers is None:
                self._numbers = {int(k): k for k in self.captions if k.isdigit()}
            return self._numbers.get(int(stem))
        return None

    def get(self, video: str | Path) -> str:
        """The caption of ``video`` (a name or a path); an error naming it when missing."""
        key = self._find(video)
        if key is None:
            raise FourDNeXError(f"{self.path}: no caption for video {str(video)!r}")
        caption = self.captions[key]
        if not caption:
            raise FourDNeXError(f"{self.path}: the caption of video {str(video)!r} is empty")
        return caption

    __getitem__ = get
