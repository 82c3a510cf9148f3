"""blurcli: portrait-mode background blur. A small UNet finds the person; the rest is blurred.

The public API, for the few calls that do the job (training lives in `blurcli.training`):

    segmenter = blurcli.new_segmenter()              # load a model once
    photo = blurcli.read_photo("in.jpg")             # 16-bit, alpha, EXIF and ICC kept
    blurcli.write_photo("out.jpg", blurcli.blur(photo, segmenter))
    blurcli.blur_files(["photos/"], output="blurred/", segmenter=segmenter)
"""

__version__ = "0.1.0"

from blurcli.batch import FileResult, RunOptions
from blurcli.compose import BlurOptions
from blurcli.errors import BlurcliError, UsageError
from blurcli.photo import Photo, read_photo, write_photo
from blurcli.process import blur_files, predict_files
from blurcli.refine import RefineOptions
from blurcli.render import BlurTask, PredictTask, blur, predict
from blurcli.second_look import HeadOptions
from blurcli.segment import Segmenter, new_segmenter
from blurcli.video import VideoOptions

__all__ = [
    "BlurOptions",
    "BlurTask",
    "BlurcliError",
    "FileResult",
    "HeadOptions",
    "Photo",
    "PredictTask",
    "RefineOptions",
    "RunOptions",
    "Segmenter",
    "UsageError",
    "VideoOptions",
    "__version__",
    "blur",
    "blur_files",
    "new_segmenter",
    "predict",
    "predict_files",
    "read_photo",
    "write_photo",
]
