"""The second look across a video's frames: the wide look on the first frame, on cuts, every few
frames and when a subject is lost; between, close-up crops follow their subjects. A fake network
that sees a person wherever the picture is bright makes every decision exact."""

from __future__ import annotations

import numpy as np
import pytest

from blurcli.follow import Follower, Track, follow
from blurcli.preprocess import CLASSES
from blurcli.second_look import Crop, HeadOptions, second_look
from blurcli.segment import Segmenter
from blurcli.spec import NetworkSpec

OPTIONS = HeadOptions(detect_size=160)


class Bright:
    """A 'network' whose person logit is high where the picture is bright; it counts wide looks."""

    def __init__(self) -> None:
        self.wide_looks = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if max(batch.shape[2:]) >= OPTIONS.detect_size:
            self.wide_looks += 1
        bright = batch.mean(axis=1, keepdims=True)
        return np.concatenate([np.zeros_like(bright)] * 3 + [40.0 * (bright - 0.5)], axis=1)

    def threads(self, count: int | None) -> None:
        pass


def person_segmenter(network: Bright | None = None) -> tuple[Segmenter, Bright]:
    network = network or Bright()
    spec = NetworkSpec(64, 8, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), CLASSES, subjects=("person",))
    segmenter = Segmenter(network, spec, subject="person")
    return segmenter, network


def frame(left: int, background: int = 20, size: tuple[int, int] = (180, 320)) -> np.ndarray:
    """A dark picture with a bright 'person' 30 px wide and 60 tall, its left edge at `left`."""
    image = np.full((*size, 3), background, np.uint8)
    image[100:160, left : left + 30] = 240
    return image


def single_pass(segmenter: Segmenter, image: np.ndarray) -> np.ndarray:
    return segmenter.probabilities([image], subject_only=True)[0]


def test_a_crop_follows_its_subjects_centre() -> None:
    crop = Crop(left=10, top=20, side=100)
    close_up = np.zeros((50, 50, 2), np.float32)
    close_up[..., 0] = 1.0
    close_up[10:40, 25:35] = (0.0, 1.0)  # the subject: centre at (0.6, 0.5) of the crop
    tracks = [Track(crop, (10 + 0.5 * 100, 20 + 0.5 * 100))]  # last frame it was in the middle
    (moved,) = follow(tracks, [(crop, close_up)], person=True)
    assert (moved.crop.left, moved.crop.top, moved.crop.side) == (20, 20, 100)
    assert moved.centre == pytest.approx((70.0, 70.0))
    (new,) = follow([], [(crop, close_up)], person=True)  # a crop new this frame stays put
    assert new.crop == crop


def test_the_wide_look_runs_on_the_first_frame_cuts_every_few_frames_and_losses() -> None:
    segmenter, network = person_segmenter()
    follower = Follower(segmenter, True, OPTIONS, every=5)
    for index in range(5):
        follower(frame(40 + 4 * index), single_pass(segmenter, frame(40 + 4 * index)))
    assert follower.wide_looks == network.wide_looks == 1  # a still scene, a walking person: one
    (track,) = follower.tracks
    assert track.centre[0] == pytest.approx(40 + 4 * 4 + 15, abs=1.5)  # followed to its place
    follower(frame(60), single_pass(segmenter, frame(60)))
    assert follower.wide_looks == 2  # every 5 frames
    cut = frame(200, background=110)
    follower(cut, single_pass(segmenter, cut))
    assert follower.wide_looks == 3  # a scene cut
    follower(frame(204, background=110), single_pass(segmenter, frame(204, background=110)))
    assert follower.wide_looks == 3
    gone = np.full((180, 320, 3), 110, np.uint8)
    gone[100:160, 100:130] = 240  # the person jumped away from its crop: lost
    follower(gone, single_pass(segmenter, gone))
    follower(gone, single_pass(segmenter, gone))
    assert follower.wide_looks == 4  # the frame after a loss looks wide again


def test_a_followed_frame_matches_a_fresh_second_look() -> None:
    segmenter, _ = person_segmenter()
    follower = Follower(segmenter, True, OPTIONS, every=100)
    for index in range(8):
        image = frame(40 + 5 * index)
        followed = follower(image, single_pass(segmenter, image))
    fresh = second_look(segmenter, image, single_pass(segmenter, image), True, OPTIONS)
    assert follower.wide_looks == 1 and followed.shape == fresh.shape
    assert np.abs(followed - fresh).mean() < 0.01
    person = followed > 0.5
    assert person.any() and np.abs(person.astype(float) - (fresh > 0.5)).mean() < 0.01


def test_a_portrait_needs_no_look() -> None:
    segmenter, network = person_segmenter()
    follower = Follower(segmenter, True, OPTIONS)
    image = np.full((180, 320, 3), 20, np.uint8)
    image[20:180, 100:200] = 240  # the person fills the frame's height
    first = single_pass(segmenter, image)
    assert follower(image, first) is first and network.wide_looks == 0
