"""Labelled progress of a generation: ``denoise``, ``decode`` and ``write``.

diffusers shows an unlabelled 0-50 bar for the denoising loop and nothing for the VAE
decode. :func:`labelled_stages` names the denoising bar through diffusers' public
``set_progress_bar_config`` and wraps the VAE's public ``decode`` in a ``decode`` bar
for the time of a ``with`` block; :func:`write_stage` is the bar of writing a scene.
Every bar goes to stderr (tqdm), as the other commands' bars do (``render``, ``synth``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

if TYPE_CHECKING:
    from fourdnex.pipeline.fourdnex_pipeline import FourDNeXPipeline

#: The stage names, in the order they run.
STAGES = ("denoise", "decode", "write")


@contextlib.contextmanager
def labelled_stages(pipe: FourDNeXPipeline, enabled: bool = True) -> Iterator[None]:
    """Within the block, ``pipe``'s denoising bar says ``denoise`` and each VAE decode
    shows a ``decode`` bar; both are restored afterwards."""
    before = dict(getattr(pipe, "_progress_bar_config", {}) or {})
    pipe.set_progress_bar_config(**before, desc=STAGES[0], unit="step", disable=not enabled)
    vae = pipe.vae
    own = "decode" in vars(vae)  # an instance attribute already (someone else's wrapper)
    original = vae.decode

    def decode(*args: Any, **kwargs: Any) -> Any:
        with tqdm(total=1, desc=STAGES[1], unit="video", disable=not enabled) as bar:
            out = original(*args, **kwargs)
            bar.update()
        return out

    vae.decode = decode
    try:
        yield
    finally:
        if own:
            vae.decode = original
        else:
            del vae.decode
        pipe.set_progress_bar_config(**before)


@contextlib.contextmanager
def write_stage(enabled: bool = True) -> Iterator[None]:
    """A ``write`` bar around writing one scene."""
    with tqdm(total=1, desc=STAGES[2], unit="scene", disable=not enabled) as bar:
        yield
        bar.update()
