"""The quality ladder's scores (fourdnex.eval.ladder): the truth scores perfectly on
every figure, the camera direction included, and a still camera has no direction."""

from __future__ import annotations

import numpy as np
import pytest

from fourdnex.eval.generation import scene_extent
from fourdnex.eval.ladder import frame0_scores, model_space_truth
from fourdnex.synthetic import make_scene


def test_scene_extent_is_the_bounding_box_diagonal() -> None:
    xyz = np.zeros((2, 1, 2, 3))
    xyz[1, 0, 1] = (3.0, 4.0, 12.0)
    assert scene_extent(xyz) == pytest.approx(13.0)


@pytest.mark.parametrize("motion", ["orbit", "dolly", "arc"])
def test_the_truth_goes_its_own_way(motion: str) -> None:
    gt = make_scene(7, 9, 32, 48, camera_motion=motion)
    truth = model_space_truth(gt)
    assert truth.travel.moves
    scores = frame0_scores(truth.rgb, truth.xyz, truth)
    assert scores["d1_frame0"] == pytest.approx(1.0)
    assert scores["direction_cosine"] == pytest.approx(1.0, abs=1e-3)


def test_the_opposite_way_scores_minus_one() -> None:
    gt = make_scene(7, 9, 32, 48, camera_motion="dolly")
    truth = model_space_truth(gt)
    reversed_clip = truth.xyz[::-1].copy()  # the last camera first: the travel reversed
    scores = frame0_scores(truth.rgb[::-1].copy(), reversed_clip, truth)
    assert scores["direction_cosine"] < -0.9


def test_a_still_camera_has_no_direction() -> None:
    gt = make_scene(7, 9, 32, 48, static_camera=True)
    truth = model_space_truth(gt)
    assert not truth.travel.moves
    assert frame0_scores(truth.rgb, truth.xyz, truth)["direction_cosine"] is None
