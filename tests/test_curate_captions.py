"""Captions: frame sampling, a tiny random LLaVA-NeXT-Video through VLMCaptioner, CSV lookup."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fourdnex.curate.captions import (
    CAPTION_FRAMES,
    CAPTION_PROMPT,
    Captioner,
    CsvCaptions,
    VLMCaptioner,
    frame_processor,
    uniform_frame_indices,
)
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.models.loading import quiet_loading

WORDS = ["<unk>", "<|im_start|>", "<|im_end|>", "<video>", "<image>", "user", "assistant"]
WORDS += ["a", "video", "of", "the", "scene", "and", "background", "with", "main"]
WORDS += ["subjects", "Please", "provide"]
VIDEO_ID = WORDS.index("<video>")
IMAGE_ID = WORDS.index("<image>")
TEMPLATE = (
    "{% for message in messages %}<|im_start|> {{ message['role'] }} "
    "{% for c in message['content'] %}{% if c['type'] == 'video' %}<video> "
    "{% else %}{{ c['text'] }} {% endif %}{% endfor %}<|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)
SIDE, PATCH = 28, 7


def test_prompt_is_the_paper_prompt():
    assert CAPTION_PROMPT == (
        "Please provide a concise description of the video, focusing on the main subjects "
        "and the background scenes."
    )
    assert CAPTION_FRAMES == 32


def test_uniform_frame_indices_exact():
    np.testing.assert_array_equal(uniform_frame_indices(10, 4), [0, 3, 6, 9])
    np.testing.assert_array_equal(uniform_frame_indices(100, 5), [0, 24, 49, 74, 99])
    idx = uniform_frame_indices(321)
    assert idx.shape == (32,) and idx.dtype == np.int64
    np.testing.assert_array_equal(idx, np.linspace(0, 320, 32, dtype=int))
    assert idx[0] == 0 and idx[-1] == 320
    # fewer frames than asked: every frame, some repeated, in order
    short = uniform_frame_indices(5, 8)
    np.testing.assert_array_equal(short, [0, 0, 1, 1, 2, 2, 3, 4])
    np.testing.assert_array_equal(uniform_frame_indices(1, 3), [0, 0, 0])
    with pytest.raises(ValidationError):
        uniform_frame_indices(0)


def _released_frames(frames: np.ndarray, short: int, crop: tuple[int, int]) -> np.ndarray:
    """The hand-written preprocessing fourdnex used before transformers' processor: PIL
    bicubic resize of the shortest edge, centre crop (offsets truncated), rescale, CLIP
    normalization; (F, 3, h, w)."""
    from PIL import Image

    mean = np.float32([0.48145466, 0.4578275, 0.40821073])
    std = np.float32([0.26862954, 0.26130258, 0.27577711])
    out = []
    for f in frames:
        H, W = f.shape[:2]
        h, w = (int(short * H / W), short) if W <= H else (short, int(short * W / H))
        image = np.asarray(Image.fromarray(f).resize((w, h), resample=Image.Resampling.BICUBIC))
        top, left = int((h - crop[0]) / 2.0), int((w - crop[1]) / 2.0)
        out.append(image[top : top + crop[0], left : left + crop[1]])
    x = np.stack(out).astype(np.float32) * np.float32(1 / 255)
    return ((x - mean) / std).transpose(0, 3, 1, 2)


#: Largest difference between the hand-written preprocessing and transformers' processor
#: (float32 rounding of the rescale and normalization; the resize is the same PIL call).
PREPROCESS_ATOL = 1e-6


@pytest.mark.parametrize(
    ("shape", "short", "crop"),
    [
        ((16, 32), 8, (8, 8)),
        ((30, 20), 8, (8, 8)),
        ((45, 61), 10, (7, 9)),
        ((48, 64), 224, (224, 224)),
    ],
)
def test_frame_processor_is_the_released_preprocessing(shape, short, crop):
    frames = np.random.default_rng(0).integers(0, 256, (3, *shape, 3), dtype=np.uint8)
    settings = {
        "size": {"shortest_edge": short},
        "crop_size": {"height": crop[0], "width": crop[1]},
        "video_processor_type": "LlavaNextVideoVideoProcessor",  # not a frame setting
    }
    x = frame_processor(settings)(list(frames), return_tensors="np")["pixel_values"]
    expected = _released_frames(frames, short, crop)
    assert x.shape == expected.shape and x.dtype == np.float32
    np.testing.assert_allclose(x, expected, atol=PREPROCESS_ATOL)


def test_frame_processor_defaults_are_llava_next_video():
    # the class's settings only (instances need torchvision)
    from transformers.models.llava_next_video.video_processing_llava_next_video import (
        LlavaNextVideoVideoProcessor as video,
    )

    p = frame_processor({})
    assert p.size.shortest_edge == video.size["shortest_edge"]
    assert (p.crop_size.height, p.crop_size.width) == tuple(video.crop_size.values())
    assert p.resample == video.resample and p.default_to_square == video.default_to_square
    np.testing.assert_allclose(p.image_mean, video.image_mean)
    np.testing.assert_allclose(p.image_std, video.image_std)
    assert p.do_center_crop and p.do_normalize and p.do_rescale and p.do_resize


def _save_tiny_llava(directory: Path) -> None:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        LlavaNextVideoConfig,
        LlavaNextVideoForConditionalGeneration,
        PreTrainedTokenizerFast,
        Qwen2Config,
        SiglipVisionConfig,
    )

    torch.manual_seed(0)
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        pad_token="<unk>",
        additional_special_tokens=["<video>", "<image>", "<|im_start|>"],
    )
    text = Qwen2Config(
        vocab_size=32,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        eos_token_id=WORDS.index("<|im_end|>"),
    )
    vision = SiglipVisionConfig(
        image_size=SIDE,
        patch_size=PATCH,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
    )
    config = LlavaNextVideoConfig(
        vision_config=vision,
        text_config=text,
        video_token_index=VIDEO_ID,
        image_token_index=IMAGE_ID,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=[[SIDE, SIDE]],
    )
    with quiet_loading():
        LlavaNextVideoForConditionalGeneration(config).save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    # what LlavaNextVideoProcessor.save_pretrained writes (building the processor itself
    # needs torchvision): a composite processor_config.json and chat_template.jinja
    video_processor = {
        "video_processor_type": "LlavaNextVideoVideoProcessor",
        "size": {"shortest_edge": SIDE},
        "crop_size": {"height": SIDE, "width": SIDE},
        "do_resize": True,
        "do_center_crop": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "resample": 3,
    }
    processor = {
        "processor_class": "LlavaNextVideoProcessor",
        "patch_size": PATCH,
        "vision_feature_select_strategy": "full",
        "video_token": "<video>",
        "image_token": "<image>",
        "video_processor": video_processor,
    }
    (directory / "processor_config.json").write_text(json.dumps(processor))
    (directory / "chat_template.jinja").write_text(TEMPLATE)


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("llava")
    _save_tiny_llava(directory)
    return directory


def _video() -> np.ndarray:
    from fourdnex.synthetic import make_scene

    rgb = make_scene(0, 9, 32, 48).rgb
    return np.clip(np.asarray(rgb) * 255, 0, 255).astype(np.uint8)


def test_vlm_captioner_tiny_llava(tiny_llava: Path):
    captioner = VLMCaptioner(tiny_llava, max_new_tokens=6)
    assert isinstance(captioner, Captioner)
    assert captioner.name == f"vlm:{tiny_llava.name}"
    seen: list[tuple[int, ...]] = []

    def hook(module, args, kwargs):
        pixels = args[0] if args else kwargs["pixel_values"]
        seen.append(tuple(pixels.shape))

    tower = captioner.model.model.vision_tower
    handle = tower.register_forward_pre_hook(hook, with_kwargs=True)
    video = _video()
    try:
        first = captioner.caption(video)
        second = captioner.caption(video)
    finally:
        handle.remove()
    assert isinstance(first, str) and first == second
    assert first == first.strip()
    # the 9-frame clip is sampled to exactly 32 frames of SIDE x SIDE for the vision tower
    # (once to count the video tokens, then once per caption)
    assert seen == [(CAPTION_FRAMES, 3, SIDE, SIDE)] * 3
    # 4 x 4 patches pooled 2 x 2 -> 4 tokens a frame, one placeholder each
    ids = captioner.input_ids(captioner.pixel_values(video))
    assert ids.count(VIDEO_ID) == CAPTION_FRAMES * 4
    text = captioner.prompt_text()
    assert text.count("<video>") == 1 and text.endswith("assistant ")


def test_vlm_captioner_frames_setting(tiny_llava: Path):
    captioner = VLMCaptioner(tiny_llava, max_new_tokens=2, frames=5)
    x = captioner.pixel_values(_video())
    assert tuple(x.shape) == (1, 5, 3, SIDE, SIDE)
    assert isinstance(captioner.caption(_video()), str)


def test_vlm_captioner_errors(tmp_path: Path):
    with pytest.raises(FourDNeXError, match="not found"):
        VLMCaptioner(tmp_path / "missing")
    with pytest.raises(FourDNeXError, match="no config.json"):
        VLMCaptioner(tmp_path)


def test_csv_captions(tmp_path: Path):
    released = tmp_path / "captions.csv"
    released.write_text('number,caption\n0001,"A dog runs, on grass."\n0002,A red car.\n0003,\n')
    captions = CsvCaptions(released)
    assert captions.key_column == "number" and captions.caption_column == "caption"
    assert len(captions) == 3
    assert captions.get("0001") == "A dog runs, on grass."
    assert captions["clips/0002.mp4"] == "A red car."
    assert "0002" in captions and "0009" not in captions
    assert captions.get("/videos/2.mp4") == "A red car."  # numbers match without padding
    with pytest.raises(FourDNeXError, match="no caption for video '0009'"):
        captions.get("0009")
    with pytest.raises(FourDNeXError, match="'0003' is empty"):
        captions.get("0003")

    user = tmp_path / "mine.csv"
    user.write_text("id,video,text\n1,walk.mp4,Someone walks.\n")
    mine = CsvCaptions(user, key_column="video", caption_column="text")
    assert mine.get("walk.mp4") == "Someone walks."
    assert mine.get("/data/walk.mp4") == "Someone walks."
    with pytest.raises(FourDNeXError, match="no column 'caption'"):
        CsvCaptions(user, key_column="video", caption_column="caption")
    with pytest.raises(FourDNeXError, match="not found"):
        CsvCaptions(tmp_path / "nope.csv")
