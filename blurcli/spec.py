"""What a network expects and gives (`NetworkSpec`): input size, padding multiple, normalisation,
and its outputs. A torch checkpoint records it in its fields; an ONNX export carries it as JSON in
the model's metadata, so the file alone is a complete model.

A network's outputs, once: one channel per LFW class (`classes`: background, skin, hair: a softmax
whose non-background part is the *head*), then, where `subjects` has "person", one person logit
(a sigmoid). A `Segmenter` gives the probabilities of one subject: (background, skin, hair) for the
head, (background, person) for the person.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from blurcli.errors import BlurcliError

if TYPE_CHECKING:
    from blurcli.checkpoint import Checkpoint

METADATA_KEY = "blurcli"  # the spec, JSON, in an ONNX file's metadata_props


def output_channels(classes: Sequence[str], subjects: Sequence[str]) -> int:
    """Output channels of a network with these classes and subjects: one per class, and one person
    logit where the subjects have a person."""
    return len(classes) + ("person" in subjects)


@dataclass(frozen=True)
class NetworkSpec:
    """What the network expects and gives, as the checkpoint it came from recorded it."""

    input_size: int
    multiple: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    subjects: tuple[str, ...]

    @property
    def outputs(self) -> int:
        """The network's output channels (`output_channels`)."""
        return output_channels(self.classes, self.subjects)

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> NetworkSpec:
        """What a torch checkpoint records of its network's input and outputs."""
        return cls(
            input_size=checkpoint.input_size,
            multiple=checkpoint.config.multiple,
            mean=tuple(checkpoint.normalization["mean"]),
            std=tuple(checkpoint.normalization["std"]),
            classes=tuple(checkpoint.classes),
            subjects=tuple(checkpoint.subjects),
        )

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "format": 1})

    @classmethod
    def from_json(cls, recorded: str, source: str) -> NetworkSpec:
        """The spec an export recorded; damage is a BlurcliError naming `source`."""
        try:
            spec = json.loads(recorded)
            return cls(
                input_size=int(spec["input_size"]),
                multiple=int(spec["multiple"]),
                mean=tuple(float(x) for x in spec["mean"]),
                std=tuple(float(x) for x in spec["std"]),
                classes=tuple(str(x) for x in spec["classes"]),
                subjects=tuple(str(x) for x in spec["subjects"]),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise BlurcliError(f"{source}: damaged blurcli metadata ({error})") from None
