"""The options of the server's POST /blur and /predict: query parameters under the CLI's names,
with its defaults and ranges, declared once as typed models. FastAPI validates a request against
them, refuses names they do not hold (extra="forbid"), and describes them in the OpenAPI schema;
each turns into the task the CLI's flags make (`BlurTask.from_options`, `PredictTask.from_options`).
Pydantic (the serve extra): imported only by the server."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from blurcli.compose import DEFAULT_FEATHER, DEFAULT_STRENGTH, MAX_FEATHER, MAX_STRENGTH, Kernel
from blurcli.formats import IMAGE_EXTENSIONS
from blurcli.plan import BLUR_NAMING, PREDICT_NAMING, Naming
from blurcli.preprocess import SUBJECTS
from blurcli.render import BlurTask, PredictTask, Task
from blurcli.second_look import HeadMode

# The formats blurcli writes, as --format spells them: jpg, jpeg, png, webp, bmp, tif, tiff.
FormatName = Literal[tuple(ext[1:] for ext in IMAGE_EXTENSIONS)]  # type: ignore[valid-type]
Subject = Literal[SUBJECTS]  # type: ignore[valid-type]


class PhotoQuery(BaseModel):
    """What /blur and /predict share: which model output, the second look, the output's encoding."""

    model_config = ConfigDict(extra="forbid")
    naming: ClassVar[Naming] = BLUR_NAMING

    subject: Subject | None = Field(
        None,
        description="What stays sharp: person (the whole person) or head (LFW's skin and hair). "
        "Default: person when the model has it, else head.",
    )
    heads: HeadMode = Field(
        "auto",
        description="auto: people not framed like a portrait get a close-up each; single: one pass.",
    )
    format: FormatName | None = Field(
        None, description="Output format. Default: the photo's (blur), png (predict)."
    )
    quality: int = Field(95, ge=1, le=100, description="JPEG and WebP quality.")
    refine: bool = Field(True, description="Snap the mask to the photo's edges (guided filter).")

    def task(self) -> Task:
        raise NotImplementedError


class BlurQuery(PhotoQuery):
    """POST /blur's options: `blurcli blur`'s, under its names."""

    strength: float = Field(
        DEFAULT_STRENGTH,
        ge=0.0,
        le=MAX_STRENGTH,
        allow_inf_nan=False,
        description="Blur sigma as a fraction of the image diagonal.",
    )
    feather: float = Field(
        DEFAULT_FEATHER,
        ge=0.0,
        le=MAX_FEATHER,
        allow_inf_nan=False,
        description="Mask edge softening, as a fraction of the image diagonal.",
    )
    kernel: Kernel = Field("gaussian", description="gaussian: soft and even; disc: a lens's bokeh.")
    keep_empty: bool = Field(
        False, description="A photo with no person in it comes back unchanged (default: blurred all over)."
    )

    def task(self) -> BlurTask:
        return BlurTask.from_options(
            self.strength, self.feather, self.kernel, self.refine, keep_empty=self.keep_empty
        )


class PredictQuery(PhotoQuery):
    """POST /predict's options: `blurcli predict`'s, under its names."""

    naming: ClassVar[Naming] = PREDICT_NAMING

    classes: bool = Field(
        False,
        description="Class indices instead of alpha: 0 background, 1 person (subject head: 1 skin, 2 hair).",
    )
    overlay: bool = Field(False, description="A coloured overlay for checking by eye.")

    def task(self) -> PredictTask:
        return PredictTask.from_options(self.classes, self.overlay, self.refine)
