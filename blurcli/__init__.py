"""blurcli: portrait-mode background blur. A small UNet finds the person; the rest is blurred."""

from blurcli.compose import BlurOptions, composite
from blurcli.data import CLASSES, SplitData, load_split
from blurcli.errors import BlurcliError, UsageError
from blurcli.evaluate import evaluate
from blurcli.heads import HeadOptions
from blurcli.io import read_image, write_image
from blurcli.model import UNet, UNetConfig
from blurcli.pipeline import blur_image, predict_image
from blurcli.segment import Segmenter
from blurcli.train import TrainConfig, train
from blurcli.weights import Checkpoint, load_checkpoint, resolve_weights, save_checkpoint

__version__ = "0.1.0"

__all__ = [
    "CLASSES",
    "BlurOptions",
    "BlurcliError",
    "Checkpoint",
    "HeadOptions",
    "Segmenter",
    "SplitData",
    "TrainConfig",
    "UNet",
    "UNetConfig",
    "UsageError",
    "__version__",
    "blur_image",
    "composite",
    "evaluate",
    "load_checkpoint",
    "load_split",
    "predict_image",
    "read_image",
    "resolve_weights",
    "save_checkpoint",
    "train",
    "write_image",
]
