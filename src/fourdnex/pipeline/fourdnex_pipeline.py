"""FourDNeXPipeline: image (+ prompt) -> Scene4D with Wan2.1 I2V and a 4DNeX LoRA.

A subclass of diffusers' ``WanImageToVideoPipeline`` that reuses its public pieces
(UMT5 prompt encoding padded to 512 tokens, CLIP image encoding, offloading hooks,
``from_pretrained``) and replaces ``__call__`` with the 4DNeX generation
(method 3): width-fused RGB | XYZ video, plane-initialized condition, guided mask,
XYZ latent de-normalization, split into a :class:`~fourdnex.scene.Scene4D`.

Load once, serve many images::

    pipe = FourDNeXPipeline.from_model("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", lora="4dnex-lora")
    pipe.to("cuda")  # or apply_memory(pipe, MEMORY_MODES["model-offload"], "cuda")
    scenes = pipe.generate([image1, image2], prompt="a dog running")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKLWan, WanImageToVideoPipeline
from diffusers.utils.torch_utils import get_module_execution_device
from PIL import Image

from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.models.loading import (
    ModelSource,
    load_transformer,
    quiet_dtype_deprecation,
    resolve_model,
)
from fourdnex.models.lora import LoraInfo
from fourdnex.models.presets import TEXT_CONTEXT_LENGTH, XYZLatentStats
from fourdnex.pipeline.images import as_pil, aspect_note, resize_cover, resolve_resolution
from fourdnex.pipeline.settings import GenerationSettings
from fourdnex.scene import Scene4D
from fourdnex.sixd import (
    LATENT_WIDTH_AXIS,
    XYZLatentNorm,
    fuse_width,
    guided_mask_latent,
    plane_init,
    split_width,
    with_prompt_suffix,
)

ImageInput = Image.Image | np.ndarray


class FourDNeXPipeline(WanImageToVideoPipeline):
    """The 4DNeX generation pipeline (same components as ``WanImageToVideoPipeline``).

    Extra attributes set by :meth:`from_model`: ``model_source``, ``lora_info``,
    ``xyz_stats`` (the XYZ latent normalization) and ``compute_dtype``.
    """

    model_source: ModelSource | None = None
    lora_info: LoraInfo | None = None
    xyz_stats: XYZLatentStats = XYZLatentStats()
    compute_dtype: torch.dtype | None = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_model(
        cls,
        model: str | Path,
        lora: str | Path | None = None,
        dtype: torch.dtype = torch.bfloat16,
        vae_dtype: torch.dtype = torch.float32,
        fuse_lora: bool = True,
    ) -> FourDNeXPipeline:
        """Load a Wan2.1 I2V directory or hub id plus an optional 4DNeX LoRA directory.

        Configs and LoRA headers are checked before any weight is loaded. The LoRA is
        fused into the weights by default (no per-step cost; required for fp8 storage).
        Models stay on the CPU: call ``.to(device)`` or :func:`apply_memory` next.
        """
        source = resolve_model(model)
        transformer, info = load_transformer(source, lora, dtype=dtype, fuse_lora=fuse_lora)
        try:
            with quiet_dtype_deprecation():
                vae = AutoencoderKLWan.from_pretrained(
                    source.location, subfolder="vae", torch_dtype=vae_dtype
                )
                pipe = cls.from_pretrained(
                    source.location, transformer=transformer, vae=vae, torch_dtype=dtype
                )
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FourDNeXError(f"cannot load {source}: {first}") from None
        pipe.model_source = source
        pipe.lora_info = info
        pipe.xyz_stats = info.xyz_stats if info is not None else XYZLatentStats()
        pipe.compute_dtype = dtype
        return pipe

    def _dtype(self) -> torch.dtype:
        return self.compute_dtype or self.transformer.dtype

    # --------------------------------------------------------------- generation
    def generate(
        self,
        images: Sequence[ImageInput],
        prompt: str | Sequence[str] = "",
        settings: GenerationSettings | None = None,
        batch_size: int = 1,
        seeds: Sequence[int] | None = None,
    ) -> list[Scene4D]:
        """Generate one scene per image, up to ``batch_size`` images per denoising run.

        Image ``i`` uses ``seeds[i]`` (default ``settings.seed + i``) whatever the
        batching. Images whose resolutions differ are never batched together.
        """
        s = settings or GenerationSettings()
        if batch_size < 1:
            raise ValidationError(f"batch_size must be >= 1, got {batch_size}")
        prompts = _per_image(prompt, len(images))
        seeds = [s.seed + i for i in range(len(images))] if seeds is None else list(seeds)
        if len(seeds) != len(images):
            raise ValidationError(f"{len(seeds)} seeds for {len(images)} images")
        sizes = [resolve_resolution(as_pil(im)[0].size, s.height, s.width) for im in images]
        out: dict[int, Scene4D] = {}
        pending = list(range(len(images)))
        while pending:
            group = [i for i in pending if sizes[i] == sizes[pending[0]]][:batch_size]
            scenes = self(
                [images[i] for i in group],
                [prompts[i] for i in group],
                settings=s,
                seeds=[seeds[i] for i in group],
            )
            out.update(zip(group, scenes, strict=True))
            pending = [i for i in pending if i not in out]
        return [out[i] for i in range(len(images))]

    @torch.no_grad()
    def __call__(  # type: ignore[override]
        self,
        images: Sequence[ImageInput],
        prompt: str | Sequence[str] = "",
        settings: GenerationSettings | None = None,
        seeds: Sequence[int] | None = None,
    ) -> list[Scene4D]:
        """Generate a batch of scenes, one per image (all at one resolution).

        Args:
            images: PIL images or (H, W, 3) arrays (uint8 or float in [0, 1]).
            prompt: one prompt for all images or one per image ("" is allowed).
            settings: generation settings (official defaults when None).
            seeds: one seed per image (default ``settings.seed + i``).

        Returns:
            One :class:`Scene4D` per image: ``rgb`` (T, H, W, 3) in [0, 1] and ``xyz``
            (T, H, W, 3) in the model's [-1, 1] space.
        """
        # 1. Check inputs and resolve the resolution (method 3.8).
        s = settings or GenerationSettings()
        s.validate()
        if len(images) == 0:
            raise ValidationError("no images given")
        pil, notes = zip(*(as_pil(im) for im in images), strict=True)
        B = len(pil)
        prompts = _per_image(prompt, B)
        seeds = [s.seed + i for i in range(B)] if seeds is None else list(seeds)
        if len(seeds) != B:
            raise ValidationError(f"{len(seeds)} seeds for {B} images")
        sizes = {resolve_resolution(im.size, s.height, s.width) for im in pil}
        if len(sizes) != 1:
            raise ValidationError(f"images of one batch need one resolution, got {sorted(sizes)}")
        H, W = sizes.pop()
        device, dtype = self._execution_device, self._dtype()

        # 2. Prompts with the 4DNeX suffix, UMT5-encoded and padded to 512 tokens.
        full_prompts = [with_prompt_suffix(p) if s.prompt_suffix else p for p in prompts]
        prompt_embeds, negative_embeds = self.encode_prompt(
            full_prompts,
            [s.negative_prompt] * B,
            do_classifier_free_guidance=s.do_guidance,
            max_sequence_length=TEXT_CONTEXT_LENGTH,
            device=device,
        )
        prompt_embeds = prompt_embeds.to(dtype)  # (B, 512, text_dim)
        if negative_embeds is not None:
            negative_embeds = negative_embeds.to(dtype)

        # 3. The RGB image at the generation size, and its CLIP embedding (penultimate layer).
        rgb0 = np.stack([resize_cover(im, H, W) for im in pil])  # (B, H, W, 3) in [0, 1]
        clip_input = [Image.fromarray(np.rint(x * 255).astype(np.uint8)) for x in rgb0]
        image_embeds = self.encode_image(clip_input, device).to(dtype)  # (B, 257, image_dim)

        # 4. Plane init and width fusion: the condition frame [I0 | X_init] in [-1, 1].
        rgb_t = torch.from_numpy(rgb0).permute(0, 3, 1, 2) * 2.0 - 1.0  # (B, 3, H, W)
        xyz_t = torch.from_numpy(plane_init(H, W)).permute(2, 0, 1).expand(B, -1, -1, -1)
        first = fuse_width(rgb_t, xyz_t.to(rgb_t.dtype), LATENT_WIDTH_AXIS)  # (B, 3, H, 2W)

        # 5. Condition video (frames 1.. are zeros), VAE-encoded with the distribution mode,
        #    normalized per channel by the VAE statistics; its XYZ half is NOT XYZ-normalized.
        video = torch.zeros(B, 3, s.frames, H, 2 * W, dtype=torch.float32)
        video[:, :, 0] = first
        cond_latent = self._encode_condition(video, device)  # (B, 16, T_lat, h, 2w)

        # 6. Guided mask (method 3.4) packed to latent form; model condition = [mask, latent].
        mask = guided_mask_latent(s.frames, H, W, batch=B).to(device)  # (B, 4, T_lat, h, 2w)
        condition = torch.cat([mask, cond_latent], dim=1).to(dtype)  # (B, 20, T_lat, h, 2w)

        # 7. Timesteps: UniPC with the flow shift of the settings (a fresh scheduler per call).
        scheduler = type(self.scheduler).from_config(self.scheduler.config, flow_shift=s.flow_shift)
        scheduler.set_timesteps(s.steps, device=device)

        # 8. Initial noise, one CPU generator per image: independent of batching and device.
        latents = torch.stack(
            [
                torch.randn(
                    tuple(cond_latent.shape[1:]),
                    generator=torch.Generator("cpu").manual_seed(seed),
                    dtype=torch.float32,
                )
                for seed in seeds
            ]
        ).to(device)  # (B, 16, T_lat, h, 2w)

        # 9. Denoising loop with classifier-free guidance (both branches share the image).
        #    Each branch runs in its own cache context, so diffusers' step caches
        #    (transformer.enable_cache, see enable_step_cache) keep them apart.
        with self.progress_bar(total=len(scheduler.timesteps)) as bar:
            for i, t in enumerate(scheduler.timesteps):
                model_input = torch.cat([latents, condition.to(device)], dim=1).to(dtype)
                timestep = t.expand(B)
                context = {"step_index": i, "num_inference_steps": s.steps, "timestep": t}
                with self.transformer.cache_context("cond", **context):
                    velocity = self._predict(model_input, timestep, prompt_embeds, image_embeds)
                if s.do_guidance:
                    with self.transformer.cache_context("uncond", **context):
                        uncond = self._predict(model_input, timestep, negative_embeds, image_embeds)
                    velocity = uncond + s.guidance * (velocity - uncond)
                latents = scheduler.step(velocity.float(), t, latents, return_dict=False)[0]
                bar.update()

        # 10. XYZ latent de-normalization (method 3.3), VAE de-normalization and decoding.
        latents = XYZLatentNorm(self.xyz_stats.mean, self.xyz_stats.std).denormalize(latents)
        decoded = self._decode(latents)  # (B, 3, T, H, 2W) in [-1, 1]
        self.maybe_free_model_hooks()

        # 11. Split the width into RGB and XYZ; XYZ stays in model space [-1, 1].
        rgb_v, xyz_v = split_width(decoded.clamp(-1.0, 1.0), LATENT_WIDTH_AXIS)
        rgb_np = ((rgb_v + 1.0) / 2.0).permute(0, 2, 3, 4, 1).cpu().numpy()  # (B, T, H, W, 3)
        xyz_np = xyz_v.permute(0, 2, 3, 4, 1).cpu().numpy()  # (B, T, H, W, 3)
        return [
            Scene4D(
                rgb=rgb_np[b],
                xyz=xyz_np[b],
                meta=self._meta(s, prompts[b], full_prompts[b], seeds[b], H, W, notes[b]),
            )
            for b in range(B)
        ]

    # ---------------------------------------------------------------- helpers
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

    def _latent_stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.vae.config.z_dim
        mean = torch.tensor(self.vae.config.latents_mean, dtype=torch.float32).view(1, z, 1, 1, 1)
        std = torch.tensor(self.vae.config.latents_std, dtype=torch.float32).view(1, z, 1, 1, 1)
        return mean.to(device), std.to(device)

    def _encode_condition(self, video: torch.Tensor, device: torch.device) -> torch.Tensor:
        """(B, 3, T, H, 2W) in [-1, 1] -> VAE-normalized latent (B, 16, T_lat, h, 2w)."""
        vae_device = get_module_execution_device(self.vae)
        latent = self.vae.encode(video.to(vae_device, self.vae.dtype)).latent_dist.mode()
        mean, std = self._latent_stats(latent.device)
        return ((latent.float() - mean) / std).to(device)

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        """VAE-normalized latents (B, 16, T_lat, h, 2w) -> video (B, 3, T, H, 2W)."""
        mean, std = self._latent_stats(latents.device)
        latents = latents * std + mean
        vae_device = get_module_execution_device(self.vae)
        return self.vae.decode(latents.to(vae_device, self.vae.dtype), return_dict=False)[0].float()

    def _meta(
        self,
        s: GenerationSettings,
        prompt: str,
        full_prompt: str,
        seed: int,
        height: int,
        width: int,
        note: str,
    ) -> dict[str, Any]:
        notes = [n for n in (note, aspect_note(height, width)) if n]
        return {
            "generator": "fourdnex.pipeline.FourDNeXPipeline",
            "prompt": prompt,
            "prompt_used": full_prompt,
            "negative_prompt": s.negative_prompt,
            "seed": seed,
            "steps": s.steps,
            "guidance": s.guidance,
            "flow_shift": s.flow_shift,
            "frames": s.frames,
            "height": height,
            "width": width,
            "model": str(self.model_source) if self.model_source else "",
            "lora": self.lora_info.to_dict() if self.lora_info else None,
            "xyz_latent": {"mean": self.xyz_stats.mean, "std": self.xyz_stats.std},
            "xyz_space": "model",
            "xyz_normalization": None,  # a generated scene has no source frame to map back to
            "dtype": str(self._dtype()).removeprefix("torch."),
            "notes": notes,
        }


def _per_image(prompt: str | Sequence[str], count: int) -> list[str]:
    if isinstance(prompt, str):
        return [prompt] * count
    prompts = list(prompt)
    if len(prompts) != count:
        raise ValidationError(f"{len(prompts)} prompts for {count} images")
    return prompts
