"""What each output learns where: one uint8 code per pixel, decoded into the class target (LFW's
background / skin / hair softmax) and the person target (the person logit).

Each dataset supervises an output only where its labels mean what the output means:
- LFW: its classes everywhere; for the person, skin and hair are positives and background above
  and beside the head is a negative, but background from just above the chin down (where a neck,
  shoulders or clothes may be, which LFW calls background) is ignored.
- CCP: the person everywhere near its one labelled person; null pixels far from that person may be
  unlabelled bystanders, so a confident person prediction there is not penalised. The class
  target is ignored (CCP's skin is all skin, LFW's is the face; its clothes are LFW's background).
Codes survive nearest-neighbour warping, so augmentation moves them with the pixels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

LFW_BACKGROUND, LFW_SKIN, LFW_HAIR = 0, 1, 2  # LFW's classes; person: no, yes, yes
LFW_BODY = 3  # LFW background where a body may be: class background, person ignored
NOT_PERSON = 4  # no person here (CCP null near its person, synthetic backdrops); classes ignored
PERSON = 5  # a person (CCP); classes ignored
MAYBE_PERSON = 6  # CCP null far from its person: a bystander may stand here; classes ignored
LFW_BODY_PERSON = 7  # LFW background the teacher calls a person: class background, person yes
IGNORE = 255  # nothing known (an unlabelled photo where the teacher is unsure)

_CLASS_OF = np.full(256, -100, np.int64)
_CLASS_OF[[LFW_BACKGROUND, LFW_SKIN, LFW_HAIR, LFW_BODY, LFW_BODY_PERSON]] = [0, 1, 2, 0, 0]
_PERSON_OF = np.full(256, -1.0, np.float32)  # -1: ignored
_PERSON_OF[[LFW_BACKGROUND, LFW_SKIN, LFW_HAIR, NOT_PERSON, PERSON, MAYBE_PERSON, LFW_BODY_PERSON]] = [
    0, 1, 1, 0, 1, 0, 1,
]  # fmt: skip


def lfw_codes(classes: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """(N, H, W) or (H, W) LFW class maps -> codes: background from `margin` of the head's height
    above its lowest skin row (its chin; the lowest hair row when there is no skin) down is LFW_BODY."""
    batch = classes[None] if classes.ndim == 2 else classes
    codes = batch.copy()
    rows = np.arange(batch.shape[1])[:, None]
    for index, labels in enumerate(batch):
        head_rows = np.flatnonzero((labels > 0).any(axis=1))
        if head_rows.size == 0:
            continue
        skin_rows = np.flatnonzero((labels == 1).any(axis=1))
        chin = (skin_rows if skin_rows.size else head_rows)[-1]
        start = chin - margin * (head_rows[-1] - head_rows[0] + 1)
        codes[index][(labels == 0) & (rows >= start)] = LFW_BODY
    return codes[0] if classes.ndim == 2 else codes


def ccp_codes(person: np.ndarray, reach: float = 0.15) -> np.ndarray:
    """(H, W) CCP person mask (1 person) -> codes: PERSON; NOT_PERSON within `reach` of the person's
    box size around it; MAYBE_PERSON farther away, where bystanders go unlabelled."""
    codes = np.full(person.shape, MAYBE_PERSON, np.uint8)
    rows, cols = np.nonzero(person)
    if rows.size:
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        top, bottom = max(0, int(rows.min() - reach * height)), int(rows.max() + reach * height) + 1
        left, right = max(0, int(cols.min() - reach * width)), int(cols.max() + reach * width) + 1
        codes[top:bottom, left:right] = NOT_PERSON
    codes[person > 0] = PERSON
    return codes


def class_target(codes: torch.Tensor) -> torch.Tensor:
    """(N, H, W) int64 codes -> LFW class indices, -100 where the classes are not supervised."""
    return torch.from_numpy(_CLASS_OF).to(codes.device)[codes]


def person_loss(logits: torch.Tensor, codes: torch.Tensor, sure: float = 0.9) -> torch.Tensor:
    """Binary cross-entropy of (N, H, W) person logits against the codes' person target, over the
    pixels it supervises; a MAYBE_PERSON pixel counts unless the model is `sure` of a person there
    (a bystander it sees is spared; a wall it half-believes is still corrected)."""
    target = torch.from_numpy(_PERSON_OF).to(codes.device)[codes]
    weight = (target >= 0).float()
    maybe = codes == MAYBE_PERSON
    confident = logits.detach() > math.log(sure / (1 - sure))
    weight = torch.where(maybe & confident, torch.zeros_like(weight), weight)
    loss = F.binary_cross_entropy_with_logits(logits, target.clamp_min(0), reduction="none")
    return (loss * weight).sum() / weight.sum().clamp_min(1.0)


def _lookup(changes: dict[int, int]) -> np.ndarray:
    """A 256-entry table mapping every code to itself but for `changes`."""
    table = np.arange(256, dtype=np.uint8)
    table[list(changes)] = list(changes.values())
    return table


# How a teacher's verdict rewrites the codes where our own labels are silent or spare a pixel:
# a sure person, sure background, or unsure. Codes not listed keep their meaning (the labels win).
_ON_PERSON = _lookup(
    {LFW_BACKGROUND: LFW_BODY_PERSON, LFW_BODY: LFW_BODY_PERSON, MAYBE_PERSON: PERSON, IGNORE: PERSON}
)
_ON_BACKGROUND = _lookup({LFW_BODY: LFW_BACKGROUND, MAYBE_PERSON: NOT_PERSON, IGNORE: NOT_PERSON})
_ON_UNSURE = _lookup({LFW_BACKGROUND: LFW_BODY})


def with_teacher(codes: np.ndarray, teacher: np.ndarray, low: float = 0.25, high: float = 0.75) -> np.ndarray:
    """(H, W) codes and a teacher's (H, W) person probability -> codes that take the teacher's
    word where ours say nothing of the person: LFW's background (its body below the chin, other
    people behind), CCP's far null pixels (bystanders) and unlabelled photos (all IGNORE). Above
    `high` a person, below `low` not; in between LFW's background is left unsupervised."""
    out = codes.copy()
    for verdict, table in (
        (teacher >= high, _ON_PERSON),
        (teacher <= low, _ON_BACKGROUND),
        ((teacher > low) & (teacher < high), _ON_UNSURE),
    ):
        out[verdict] = table[codes[verdict]]
    return out
