"""FourDNeXPipeline: image (+ prompt) -> Scene4D with Wan2.1 I2V and a 4DNeX LoRA.

A subclass of diffusers' ``WanImageToVideoPipeline`` that reuses its public pieces
(UMT5 prompt encoding padded to 512 tokens, CLIP image encoding, offloading hooks,
``from_pretrained``) and replaces ``__call__`` with the 4DNeX generation
(method 3): width-fused RGB | XYZ video, plane-initialized condition, guided mask,
XYZ latent de-normalization, split into a :class:`~fourdnex.scene.Scene4D`. A model
trained with other design settings (:mod:`fourdnex.design`, read from its model card or
LoRA record) runs with its own fusion, condition and normalization.

Load once, serve many images::

    pipe = FourDNeXPipeline.from_model("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", lora="4dnex-lora")
    pipe.to("cuda")  # or apply_memory(pipe, MEMORY_MODES["model-offload"], "cuda")
    scenes = pipe.generate([image1, image2], prompt="a dog running")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from diffusers import WanImageToVideoPipeline
from diffusers.utils.torch_utils import get_module_execution_device
from PIL import Image

from fourdnex.condition import (
    ConditionEncoding,
    KnownFrames,
    ResizePolicy,
    check_motion,
    condition_video,
    encode_condition,
    encode_latents,
    known_condition,
    model_condition,
    resize_image,
    to_uint8_image,
    vae_statistics,
    with_motion,
)
from fourdnex.design import RELEASED, DesignSettings, from_width, per_modality, to_width
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.models.loading import ModelSource, quiet_dtype_deprecation, quiet_loading
from fourdnex.models.lora import LoraInfo
from fourdnex.models.presets import TEXT_CONTEXT_LENGTH
from fourdnex.models.small import ModelCard
from fourdnex.pipeline.call_inputs import (
    CallInputs,
    StepCallback,
    check_callback_tensors,
    check_embeds,
    per_image,
    scene_meta,
    seeds_per_image,
    step_callback,
)
from fourdnex.pipeline.images import as_pil, resolve_resolution
from fourdnex.pipeline.model_settings import (
    ModelFiles,
    check_model_files,
    first_line,
    load_components,
    model_area,
    model_frames,
)
from fourdnex.pipeline.settings import GenerationSettings
from fourdnex.pipeline.speed import load_extra_lora, speed_record
from fourdnex.scene import Scene4D
from fourdnex.sixd import (
    LATENT_WIDTH_AXIS,
    VAEFactors,
    XYZLatentNorm,
    pack_mask_latent,
    split_width,
    vae_factors,
)

ImageInput = Image.Image | np.ndarray


class FourDNeXPipeline(WanImageToVideoPipeline):
    """The 4DNeX generation pipeline (same components as ``WanImageToVideoPipeline``).

    Extra attributes set by :meth:`from_model`: ``model_source``, ``lora_info``,
    ``model_card`` (the model directory's ``fourdnex.json``, if any), ``xyz_stats``
    (the XYZ latent normalization: the LoRA's, else the model card's, else the
    released one), ``design`` (the design settings the transformer was trained with:
    the LoRA's, else the model card's, else the released ones), ``compute_dtype`` and
    ``speed`` (the speed modes in use, recorded in every scene's settings).
    """

    model_source: ModelSource | None = None
    lora_info: LoraInfo | None = None
    model_card: ModelCard | None = None
    xyz_stats: XYZLatentNorm = XYZLatentNorm()
    design: DesignSettings = RELEASED
    compute_dtype: torch.dtype | None = None
    speed: dict | None = None  # the speed modes in use (fourdnex.pipeline.speed.speed_record)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_model(
        cls,
        model: str | Path,
        lora: str | Path | None = None,
        dtype: torch.dtype = torch.bfloat16,
        vae_dtype: torch.dtype = torch.float32,
        fuse_lora: bool = True,
        extra_lora: str | Path | None = None,
        extra_lora_scale: float = 1.0,
    ) -> FourDNeXPipeline:
        """Load a Wan2.1 I2V directory or hub id (or ``fourdnex-small``, the bundled model)
        plus an optional 4DNeX LoRA directory.

        The configs and the LoRA headers are checked first
        (:func:`~fourdnex.pipeline.model_settings.check_model_files`), then
        :meth:`from_files` loads. ``extra_lora`` stacks a second LoRA (e.g. a
        step-distillation one) at ``extra_lora_scale`` (see :mod:`fourdnex.pipeline.speed`).
        The model's one transformer serves every condition mode.
        """
        files = check_model_files(model, lora, extra_lora)
        return cls.from_files(files, dtype, vae_dtype, fuse_lora, extra_lora_scale)

    @classmethod
    def from_files(
        cls,
        files: ModelFiles,
        dtype: torch.dtype = torch.bfloat16,
        vae_dtype: torch.dtype = torch.float32,
        fuse_lora: bool = True,
        extra_lora_scale: float = 1.0,
    ) -> FourDNeXPipeline:
        """Load a model whose files were checked (no header is read again).

        The LoRA is fused into the weights by default (no per-step cost; required for
        fp8 storage), as is the extra LoRA. The VAE is loaded in ``vae_dtype`` (float32
        by default) and the CLIP image encoder in float32, as released (method 5); the
        rest in ``dtype``. Models stay on the CPU: call ``.to(device)`` or
        :func:`apply_memory` next.
        """
        transformer, vae, image_encoder = load_components(files, dtype, vae_dtype, fuse_lora)
        try:
            with quiet_dtype_deprecation(), quiet_loading():
                pipe = cls.from_pretrained(
                    files.transformer.source.location,
                    transformer=transformer,
                    vae=vae,
                    image_encoder=image_encoder,
                    torch_dtype=dtype,
                )
        except (OSError, ValueError) as exc:
            raise FourDNeXError(
                f"cannot load {files.transformer.source}: {first_line(exc)}"
            ) from None
        pipe.model_source = files.transformer.source
        pipe.lora_info = files.transformer.lora
        pipe.model_card = files.card
        pipe.xyz_stats = files.xyz_stats
        pipe.design = files.design
        pipe.compute_dtype = dtype
        speed_record(pipe)
        if files.extra_lora is not None:
            load_extra_lora(pipe, files.extra_lora, extra_lora_scale, fuse=fuse_lora)
        return pipe

    # ----------------------------------------------------------------- defaults
    @property
    def default_frames(self) -> int:
        """Frames when the settings give none: the model card's, else the paper's 49."""
        return model_frames(self.model_card)

    @property
    def vae_factors(self) -> VAEFactors:
        """How this model's VAE compresses (read from its config: 8x in space for
        Wan2.1's VAE, 4x for fourdnex-small's)."""
        return vae_factors(self.vae.config)

    @property
    def condition_encoding(self) -> ConditionEncoding:
        """How the condition video is encoded: the model card's, else the released
        ``"fused"``."""
        card = self.model_card
        return card.condition_encoding if card is not None else "fused"

    @property
    def resolution_area(self) -> int:
        """Pixel area of the resolution policy: the model's training size (480 x 720)."""
        return model_area(self.model_card)

    def resolve_settings(self, settings: GenerationSettings) -> GenerationSettings:
        """Validated settings with the model's defaults filled in: its frames, and its
        recommended sampler settings (model card) else the official ones."""
        settings.validate()
        if settings.frames is None:
            settings = dataclasses.replace(settings, frames=self.default_frames)
        card = self.model_card
        return settings.with_defaults(card.inference if card is not None else None)

    def resolution(self, image_size: tuple[int, int], settings: GenerationSettings) -> tuple:
        """Generation size (H, W) of an image of ``image_size`` (W, H as PIL)."""
        return resolve_resolution(
            image_size, settings.height, settings.width, area=self.resolution_area
        )

    # --------------------------------------------------------------- generation
    def generate(
        self,
        images: Sequence[ImageInput],
        prompt: str | Sequence[str] = "",
        settings: GenerationSettings | None = None,
        batch_size: int = 1,
        seeds: Sequence[int] | None = None,
        motion: float | None = None,
        callback_on_step_end: StepCallback | None = None,
    ) -> list[Scene4D]:
        """Generate one scene per image, up to ``batch_size`` images per denoising run.

        Image ``i`` uses ``seeds[i]`` (default ``settings.seed + i``) whatever the
        batching. Images whose resolutions differ are never batched together.
        ``motion`` and ``callback_on_step_end``: see :meth:`__call__`.
        """
        s = settings or GenerationSettings()
        if batch_size < 1:
            raise ValidationError(f"batch_size must be >= 1, got {batch_size}")
        prompts = per_image(prompt, len(images))
        seeds = seeds_per_image(seeds, s.seed, len(images))
        sizes = [self.resolution(as_pil(im)[0].size, s) for im in images]
        out: dict[int, Scene4D] = {}
        pending = list(range(len(images)))
        while pending:
            group = [i for i in pending if sizes[i] == sizes[pending[0]]][:batch_size]
            scenes = self(
                [images[i] for i in group],
                [prompts[i] for i in group],
                settings=s,
                seeds=[seeds[i] for i in group],
                motion=motion,
                callback_on_step_end=callback_on_step_end,
            )
            out.update(zip(group, scenes, strict=True))
            pending = [i for i in pending if i not in out]
        return [out[i] for i in range(len(images))]

    def check_inputs(  # type: ignore[override]
        self,
        images: Sequence[ImageInput],
        prompt: str | Sequence[str],
        settings: GenerationSettings | None,
        seeds: Sequence[int] | None = None,
        motion: float | None = None,
        embeds: dict[str, torch.Tensor | None] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> CallInputs:
        """Step 1 of :meth:`__call__`: the inputs checked, the settings' defaults filled
        in (the model's frames and sampler settings) and the resolution resolved (method
        3.8); every given embedding must have one row per image. One-line errors."""
        s = self.resolve_settings(settings or GenerationSettings())
        check_motion(motion)
        if len(images) == 0:
            raise ValidationError("no images given")
        pil, notes = zip(*(as_pil(im) for im in images), strict=True)
        B = len(pil)
        prompts = per_image(prompt, B)
        seeds = seeds_per_image(seeds, s.seed, B)
        sizes = {self.resolution(im.size, s) for im in pil}
        if len(sizes) != 1:
            raise ValidationError(f"images of one batch need one resolution, got {sorted(sizes)}")
        check_embeds(embeds or {}, B)
        check_callback_tensors(callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)
        H, W = sizes.pop()
        return CallInputs(s, list(pil), list(notes), prompts, seeds, H, W)

    def prepare_latents(  # type: ignore[override]
        self, shape: tuple[int, ...], seeds: Sequence[int], device: torch.device | str
    ) -> torch.Tensor:
        """The initial noise (B, *shape), one CPU generator per seed: independent of the
        batching and the device."""
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        noise = [torch.randn(shape, generator=g, dtype=torch.float32) for g in generators]
        return torch.stack(noise).to(device)

    @torch.no_grad()
    def __call__(  # type: ignore[override]
        self,
        images: Sequence[ImageInput],
        prompt: str | Sequence[str] = "",
        settings: GenerationSettings | None = None,
        seeds: Sequence[int] | None = None,
        known: Sequence[KnownFrames] | None = None,
        motion: float | None = None,
        *,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        callback_on_step_end: StepCallback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> list[Scene4D]:
        """Generate a batch of scenes, one per image (all at one resolution).

        Args:
            images: PIL images or (H, W, 3) arrays (uint8 or float in [0, 1]).
            prompt: one prompt for all images or one per image ("" is allowed); with
                ``prompt_embeds`` only recorded as the scenes' captions.
            settings: generation settings (official defaults when None).
            seeds: one seed per image (default ``settings.seed + i``).
            known: instead of the image condition, what is known of each clip (one per
                image, at the generation's frames and size; the images are then what
                the CLIP image encoder sees: pass each one's known RGB of frame 0, as
                training does). See :class:`fourdnex.condition.KnownFrames`.
            motion: the motion strength in [0, 1] (0: a static world), given to the model
                as the motion code in both guidance branches
                (:func:`fourdnex.condition.with_motion`); None: the model chooses.
            prompt_embeds, negative_prompt_embeds: precomputed UMT5 states (B, 512,
                text_dim) of the prompts (with the 4DNeX suffix) and of the negative
                prompt (encoded from ``settings.negative_prompt`` when not given).
            image_embeds: precomputed CLIP states (B, 257, image_dim) of the images.
            callback_on_step_end: called after every denoising step as diffusers calls
                it (:data:`StepCallback`), with the tensors named in
                ``callback_on_step_end_tensor_inputs``; what it returns replaces them.

        Returns:
            One :class:`Scene4D` per image: ``rgb`` (T, H, W, 3) in [0, 1] and ``xyz``
            (T, H, W, 3) in the model's [-1, 1] space.
        """
        # 1. Check inputs and resolve the frames and resolution (method 3.8).
        given = {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds,
                 "image_embeds": image_embeds}  # fmt: skip
        call = self.check_inputs(images, prompt, settings, seeds, motion, given,
                                 callback_on_step_end_tensor_inputs)  # fmt: skip
        s, B, H, W = call.settings, call.batch, call.height, call.width
        assert s.frames is not None and s.steps is not None and s.guidance is not None
        device, dtype = self._execution_device, self.compute_dtype or self.transformer.dtype

        # 2. Prompts with the 4DNeX suffix, UMT5-encoded and padded to 512 tokens (unless
        #    given), then the motion code in the last text slot of both branches.
        prompt_embeds, negative_embeds = self.encode_prompt(
            None if prompt_embeds is not None else call.full_prompts,
            [s.negative_prompt] * B,
            do_classifier_free_guidance=s.do_guidance,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            max_sequence_length=TEXT_CONTEXT_LENGTH,
            device=device,
        )
        texts = [prompt_embeds, negative_embeds]  # (B, 512, text_dim) each; None: no guidance
        texts = [None if x is None else x.to(device, dtype) for x in texts]
        if motion is not None:
            strength = torch.full((B,), float(motion))
            texts = [None if x is None else with_motion(x, strength) for x in texts]
        prompt_embeds, negative_embeds = texts

        # 3. The condition (one builder for training and inference, fourdnex.condition):
        #    the image at the generation size, [I0 | plane init] then zero frames, its VAE
        #    latent (mode; the XYZ half NOT XYZ-normalized), the guided mask in front; and
        #    the CLIP image states (unless given). Then in the model's fusion (the design;
        #    width: unchanged), with the per-image states repeated for batch fusion.
        if known is None:
            rgb0, condition = self.build_condition(call.images, H, W, s.frames, s.resize, device)
        else:
            rgb0, condition = self.build_known_condition(known, H, W, s.frames, device)
        if image_embeds is None:
            image_embeds = self.encode_image([to_uint8_image(x) for x in rgb0], device)
        fusion = self.design.fusion
        image_embeds = per_modality(image_embeds.to(device, dtype), fusion)  # (B, 257, image_dim)
        prompt_embeds, negative_embeds = (
            None if x is None else per_modality(x, fusion) for x in (prompt_embeds, negative_embeds)
        )
        noise_shape = (16, *condition.shape[2:])  # one image's latent, width-fused
        condition = from_width(condition.to(dtype), fusion)  # (B, 20, T_lat, h, 2w) for width

        # 4. Timesteps: UniPC with the flow shift of the settings (a fresh scheduler per call).
        scheduler = type(self.scheduler).from_config(self.scheduler.config, flow_shift=s.flow_shift)
        scheduler.set_timesteps(s.steps, device=device)
        self._num_timesteps = len(scheduler.timesteps)

        # 5. Initial noise, one CPU generator per image (width-fused, then in the fusion's
        #    layout: every design starts from the same noise at the same pixels).
        latents = from_width(self.prepare_latents(noise_shape, call.seeds, device), fusion)

        # 6. Denoising loop with classifier-free guidance (both branches share the image).
        #    Each branch runs in its own cache context, so diffusers' step caches
        #    (transformer.enable_cache, see enable_step_cache) keep them apart.
        with self.progress_bar(total=len(scheduler.timesteps)) as bar:
            for i, t in enumerate(scheduler.timesteps):
                self._current_timestep = t
                model_input = torch.cat([latents, condition.to(device)], dim=1).to(dtype)
                timestep = t.expand(latents.shape[0])  # B, or 2B for batch fusion
                context = {"step_index": i, "num_inference_steps": s.steps, "timestep": t}
                with self.transformer.cache_context("cond", **context):
                    velocity = self._predict(model_input, timestep, prompt_embeds, image_embeds)
                if s.do_guidance:
                    with self.transformer.cache_context("uncond", **context):
                        uncond = self._predict(model_input, timestep, negative_embeds, image_embeds)
                    velocity = uncond + s.guidance * (velocity - uncond)
                latents = scheduler.step(velocity.float(), t, latents, return_dict=False)[0]
                if callback_on_step_end is not None:
                    latents, prompt_embeds, negative_embeds = step_callback(
                        callback_on_step_end, self, i, t, callback_on_step_end_tensor_inputs,
                        latents, prompt_embeds, negative_embeds,
                    )  # fmt: skip
                bar.update()
        self._current_timestep = None

        # 7. Back to the width layout, XYZ latent de-normalization (method 3.3; none for a
        #    model trained without), VAE de-normalization and decoding.
        latents = to_width(latents, fusion)
        norm = self.design.latent_norm(XYZLatentNorm(self.xyz_stats.mean, self.xyz_stats.std))
        latents = norm.denormalize(latents)
        decoded = self._decode(latents)  # (B, 3, T, H, 2W) in [-1, 1]
        self.maybe_free_model_hooks()

        # 8. Split the width into RGB and XYZ. RGB is clipped to [0, 1]; XYZ stays in model
        #    space, unclamped as released (unless settings.clamp_xyz).
        rgb_v, xyz_v = split_width(decoded, LATENT_WIDTH_AXIS)
        if s.clamp_xyz:
            xyz_v = xyz_v.clamp(-1.0, 1.0)
        rgb_np = ((rgb_v + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 4, 1).cpu().numpy()
        xyz_np = xyz_v.permute(0, 2, 3, 4, 1).cpu().numpy()  # (B, T, H, W, 3)
        used = None if given["prompt_embeds"] is not None else call.full_prompts
        return [
            Scene4D(rgb=rgb_np[b], xyz=xyz_np[b],
                    meta=scene_meta(self, call, b, used[b] if used else None, motion))
            for b in range(B)
        ]  # fmt: skip

    # ---------------------------------------------------------------- helpers
    def build_condition(
        self,
        images: Sequence[Image.Image],
        height: int,
        width: int,
        frames: int,
        resize: ResizePolicy = "stretch",
        device: torch.device | str = "cpu",
    ) -> tuple[np.ndarray, torch.Tensor]:
        """The first frames and the model condition of a batch of RGB images.

        Returns:
            ``(rgb0 (B, H, W, 3) float32 in [0, 1], condition (B, 20, T', h, 2w) float32)``.
        """
        rgb0 = np.stack([resize_image(im, height, width, resize) for im in images])
        # one image at a time: the latent is then bit-identical whatever the batching,
        # and to the latent cache's (the VAE's kernels round differently per batch size)
        latents = [self._encode_condition(condition_video(x, frames, self.design)) for x in rgb0]
        cond_latent = torch.cat(latents)
        spatial = self.vae_factors.spatial
        return rgb0, model_condition(
            cond_latent.to(device), frames, height, width, spatial=spatial, design=self.design
        )

    def build_known_condition(
        self,
        known: Sequence[KnownFrames],
        height: int,
        width: int,
        frames: int,
        device: torch.device | str = "cpu",
    ) -> tuple[np.ndarray, torch.Tensor]:
        """The model condition of known frames (one per clip), as the latent cache builds
        it; returns ``(CLIP images (B, H, W, 3), condition (B, 20, T', h, 2w))`` (the
        CLIP image: :meth:`~fourdnex.condition.KnownFrames.clip_image`)."""
        for k in known:
            if (k.frames, k.height, k.width) != (frames, height, width):
                raise ValidationError(
                    f"known frames of {k.frames} x {k.height} x {k.width} do not fit a "
                    f"generation of {frames} x {height} x {width}"
                )
        videos, masks = zip(*(known_condition(k) for k in known), strict=True)
        latents = [self._encode_condition(v) for v in videos]  # one at a time, as cached
        cond_latent = torch.cat(latents)
        mask = pack_mask_latent(torch.cat(masks), self.vae_factors.spatial)
        condition = model_condition(cond_latent.to(device), frames, height, width, mask=mask)
        return np.stack([k.clip_image() for k in known]), condition

    def _encode_condition(self, video: torch.Tensor) -> torch.Tensor:
        """A condition video (B, 3, T, H, 2W) -> its latent, by the model's encoding."""

        def encode(v: torch.Tensor) -> torch.Tensor:
            z = encode_latents(self.vae, v)
            assert isinstance(z, torch.Tensor)
            return z

        return encode_condition(encode, video, self.condition_encoding)

    def _predict(
        self,
        model_input: torch.Tensor,  # (B, 36, T_lat, h, 2w)
        timestep: torch.Tensor,  # (B,)
        text: torch.Tensor,  # (B, 512, text_dim)
        image: torch.Tensor,  # (B, 257, image_dim)
    ) -> torch.Tensor:
        return self.transformer(
            hidden_states=model_input,
            timestep=timestep,
            encoder_hidden_states=text,
            encoder_hidden_states_image=image,
            return_dict=False,
        )[0]  # (B, 16, T_lat, h, 2w)

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        """VAE-normalized latents (B, 16, T_lat, h, 2w) -> video (B, 3, T, H, 2W)."""
        mean, std = vae_statistics(self.vae, latents.device)
        latents = latents * std + mean
        vae_device = get_module_execution_device(self.vae)
        return self.vae.decode(latents.to(vae_device, self.vae.dtype), return_dict=False)[0].float()
