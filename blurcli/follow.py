"""The second look across a video's frames without its cost on every frame: the wide look (the
expensive part, a pass at 576 px) runs on the first frame, on scene cuts, every `every` frames
and when a followed subject is lost; between, each close-up crop follows its subject from frame to
frame by the shift of the subject's centre in its own close-up, so a walking person stays framed.

Pure numpy: `video` keeps one `Follower` per clip and hands it frames in order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from blurcli.second_look import (
    Crop,
    HeadOptions,
    combine,
    look_closer,
    look_wide,
    main_blob,
    needs_a_second_look,
)
from blurcli.segment import Segmenter
from blurcli.steady import CUT, small_grey


@dataclass(frozen=True)
class Track:
    """A followed subject: its crop for the next frame and its centre (photo px) in this one."""

    crop: Crop
    centre: tuple[float, float]


def subject_centre(
    crop: Crop, close_up: np.ndarray, person: bool, threshold: float = 0.5
) -> tuple[float, float]:
    """The centre, in photo pixels, of the main subject blob of a crop's close-up (class
    probabilities); the crop's centre when the close-up shows none."""
    by = cv2.CC_STAT_AREA if person else cv2.CC_STAT_WIDTH
    blob = main_blob(1.0 - close_up[..., 0], threshold, by)
    x, y = (0.5, 0.5) if blob is None else blob[0][:2]
    return crop.left + x * crop.side, crop.top + y * crop.side


def follow(tracks: list[Track], heads: list[tuple[Crop, np.ndarray]], person: bool) -> list[Track]:
    """This frame's close-ups -> the tracks for the next frame: each crop moved by as much as its
    subject's centre moved since the last frame (a crop new this frame stays where it is)."""
    before = {track.crop: track.centre for track in tracks}
    followed = []
    for crop, close_up in heads:
        centre = subject_centre(crop, close_up, person)
        if crop in before:
            dx, dy = centre[0] - before[crop][0], centre[1] - before[crop][1]
            crop = replace(crop, left=round(crop.left + dx), top=round(crop.top + dy))
        followed.append(Track(crop, centre))
    return followed


class Follower:
    """The state of one clip's second look: the last wide look, the followed crops, how many
    frames ago the wide look ran, and the last frame's small grey picture (to see scene cuts)."""

    def __init__(
        self, segmenter: Segmenter, subject_only: bool, options: HeadOptions = HeadOptions(), every: int = 15
    ) -> None:
        self.segmenter = segmenter
        self.subject_only = subject_only
        self.options = options
        self.every = every
        self.person = segmenter.subject == "person"
        self.wide: np.ndarray | None = None
        self.tracks: list[Track] = []
        self.age = 0
        self.grey: np.ndarray | None = None
        self.wide_looks = 0  # how many wide looks ran, for benchmarks and tests

    def __call__(self, image: np.ndarray, first: np.ndarray) -> np.ndarray:
        """This frame's (H, W, 3) uint8 RGB picture and single-pass output -> its improved map,
        as `second_look.second_look` makes it for a photo."""
        grey = small_grey(image)
        cut = (
            self.grey is None
            or self.grey.shape != grey.shape
            or float(np.abs(grey - self.grey).mean()) >= CUT
        )
        self.grey = grey
        if not needs_a_second_look(first, self.subject_only, self.person, self.options):
            self.wide = None  # a portrait now: look afresh when it stops being one
            return first
        self.age += 1
        if cut or self.wide is None or self.age >= self.every:
            self.wide, crops = look_wide(self.segmenter, image, self.subject_only, self.options)
            self.wide_looks += 1
            self.age, self.tracks = 0, []
        else:
            crops = [track.crop for track in self.tracks]
        if not crops:
            return first
        heads = look_closer(self.segmenter, image, crops, self.options)
        if self.tracks and len(heads) < len(crops):
            self.age = self.every  # a followed subject was lost: the next frame looks wide again
        self.tracks = follow(self.tracks, heads, self.person)
        return combine(first, self.wide, heads, image.shape[:2], self.subject_only, self.options, self.person)
