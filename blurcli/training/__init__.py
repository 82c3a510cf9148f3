"""Training: LFW Part Labels, augmentation, losses, the loop, soups and evaluation.

Nothing in the inference core (`blurcli.segment`, `blurcli.render`, `blurcli.batch`, ...) imports
this package, so `blur` and `predict` never load it.
"""

from blurcli.training import teacher
from blurcli.training.augment import Augmentation
from blurcli.training.calibration import CalibrationSet, calibration_set
from blurcli.training.config import TrainConfig
from blurcli.training.distributed import Ranks, ranks_from_environment
from blurcli.training.evaluate import evaluate, load_labelled
from blurcli.training.lfw import SplitData, load_split
from blurcli.training.loop import TrainResult, train
from blurcli.training.soup import SoupResult, greedy_soup

__all__ = [
    "Augmentation",
    "CalibrationSet",
    "Ranks",
    "SoupResult",
    "SplitData",
    "TrainConfig",
    "TrainResult",
    "calibration_set",
    "evaluate",
    "greedy_soup",
    "load_labelled",
    "load_split",
    "ranks_from_environment",
    "teacher",
    "train",
]
