"""`blurcli train`: a UNet trained on LFW Part Labels (and CCP), or a soup of checkpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeRemainingColumn,
)

from blurcli.cli.options import DeviceOption, QuietOption
from blurcli.cli.output import (
    stderr_console,
    training_extra,
    transient_progress,
)

StepCallback = Callable[[int, int, int, float], None]  # as training.loop's (torch stays unimported)
EpochCallback = Callable[[dict[str, Any]], None]


DataOption = Annotated[Path, typer.Option("--data", help="LFW Part Labels folder (archives or unpacked).")]
OutOption = Annotated[Path, typer.Option("--out", help="Where to write the best checkpoint (.pt).")]
EpochsOption = Annotated[int, typer.Option(min=1)]
BatchSizeOption = Annotated[int, typer.Option(min=1)]
LrOption = Annotated[float, typer.Option(min=0.0, help="Adam learning rate.")]
InputSizeOption = Annotated[int, typer.Option(help="Model input side in pixels.")]
WidthOption = Annotated[int, typer.Option(min=1, help="Channels of the first level.")]
DepthOption = Annotated[int, typer.Option(min=1, max=6, help="Number of downsampling levels.")]
StemStrideOption = Annotated[int, typer.Option(min=1, max=4, help="Stride of the first convolution.")]
WorkersOption = Annotated[int, typer.Option(min=0, help="Data loading processes.")]
ClassWeightsOption = Annotated[bool, typer.Option(help="Weight the loss by inverse sqrt class frequency.")]
AugmentOption = Annotated[bool, typer.Option(help="Random geometric and photometric augmentation.")]
LimitOption = Annotated[int | None, typer.Option(min=1, help="Use only the first N images per split.")]
ResumeOption = Annotated[bool, typer.Option(help="Continue from <out>.last.pt.")]
InitOption = Annotated[
    Path | None,
    typer.Option(help="Start from this checkpoint's weights (fine-tune); architecture flags must match."),
]
TeacherOption = Annotated[
    Path | None,
    typer.Option(help="Distil: also learn this model's probabilities on every training batch."),
]
DistillOption = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Weight of the teacher's term (the labels get the rest).")
]
LossSizeOption = Annotated[
    int,
    typer.Option(
        "--loss-size",
        min=0,
        help="Score the loss on labels of this side, the logits enlarged to it (as eval compares "
        "at the labels' 250 px); 0: the input size.",
    ),
]
SubjectIouOption = Annotated[
    float,
    typer.Option(
        "--subject-iou",
        min=0.0,
        help="Add this weight times a soft-IoU loss of the subject (skin + hair vs background).",
    ),
]
PlateauPatienceOption = Annotated[
    int,
    typer.Option(
        "--patience",
        min=0,
        help="Epochs without a lower validation loss before the learning rate is halved.",
    ),
]
SnapshotsOption = Annotated[
    bool,
    typer.Option(
        "--snapshots",
        help="Also keep every epoch's weights as <out>.eNNN.pt (ingredients for --soup).",
    ),
]
PersonDataOption = Annotated[
    Path | None,
    typer.Option(
        "--person-data",
        help="Clothing Co-Parsing folder (or its archive's folder): also learn a person output "
        "from it, beside LFW's head classes.",
    ),
]
PersonWeightOption = Annotated[
    float, typer.Option("--person-weight", min=0.0, help="Weight of the person output's loss.")
]
PersonRepeatOption = Annotated[
    int, typer.Option("--person-repeat", min=1, help="Views of each person photo per epoch.")
]
TexturedOption = Annotated[
    float,
    typer.Option(
        "--textured",
        min=0.0,
        max=1.0,
        help="Share of the backdrops people are pasted onto that are busy natural textures "
        "(grass, leaves, soil): hard negatives for the person.",
    ),
]
PersonLabelsOption = Annotated[
    Path | None,
    typer.Option(
        "--person-labels",
        help="Teacher labels from `blurcli label`: the person where LFW's and CCP's labels say nothing.",
    ),
]
SoupOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--soup",
        help="Instead of training: average these fine-tuned checkpoints (repeat the option), "
        "greedily by a validation figure (--soup-by), into --out.",
    ),
]
SoupByOption = Annotated[
    str,
    typer.Option(
        "--soup-by",
        help="The validation figure --soup ranks ingredients by and must not lower: "
        "mean_iou, subject_iou, or uniform (every ingredient, unranked).",
    ),
]


def train(
    ctx: typer.Context,
    data: DataOption,
    out: OutOption,
    epochs: EpochsOption = 134,
    batch_size: BatchSizeOption = 16,
    lr: LrOption = 2e-3,
    input_size: InputSizeOption = 192,
    width: WidthOption = 11,
    depth: DepthOption = 4,
    stem_stride: StemStrideOption = 2,
    seed: int = 0,
    device: DeviceOption = "auto",
    workers: WorkersOption = 2,
    class_weights: ClassWeightsOption = False,
    augment: AugmentOption = True,
    limit: LimitOption = None,
    resume: ResumeOption = False,
    init: InitOption = None,
    teacher: TeacherOption = None,
    distill: DistillOption = 0.5,
    loss_size: LossSizeOption = 256,
    subject_iou: SubjectIouOption = 0.0,
    plateau_patience: PlateauPatienceOption = 8,
    snapshots: SnapshotsOption = False,
    person_data: PersonDataOption = None,
    person_weight: PersonWeightOption = 1.0,
    person_repeat: PersonRepeatOption = 1,
    textured: TexturedOption = 0.0,
    person_labels: PersonLabelsOption = None,
    soup: SoupOption = None,
    soup_by: SoupByOption = "mean_iou",
    quiet: QuietOption = False,
) -> None:
    """Train the UNet on LFW Part Labels; keeps the best epoch's checkpoint: the highest validation
    mean IoU on LFW, plus the person IoU on CCP's validation photos with --person-data.

    The defaults train the lfw model's recipe (weights/README.md gives the whole command).
    """
    training = training_extra("train")
    training.soup.check_soup_metric(soup_by)  # an invalid value is a mistake with or without --soup
    console = stderr_console(quiet or not training.ranks_from_environment().main)  # torchrun: rank 0
    if soup:
        _soup(data, out, soup, device, limit, console, soup_by)
        return
    config = training.TrainConfig.from_options(ctx.params)  # the parameters are named as its fields
    with _epoch_progress(console, epochs) as (on_step, on_epoch):
        result = training.train(config, on_step, on_epoch)
    person = result.best_metrics.get("person")
    console.print(
        f"best epoch {result.best_epoch}: val mIoU {result.best_metrics.get('mean_iou', float('nan')):.4f}"
        + (f", person IoU {person['iou']['person']:.4f}" if person else "")
        + f" -> {result.paths.best} (log {result.paths.log}, curves {result.paths.plot})",
        soft_wrap=True,
        highlight=False,
    )


@contextmanager
def _epoch_progress(console: Console, epochs: int) -> Iterator[tuple[StepCallback, EpochCallback]]:
    """A bar over each epoch's steps, and a line per epoch (its figures, marked when best)."""
    columns = (
        TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeRemainingColumn(),
    )
    with transient_progress(console, *columns) as progress:
        task = progress.add_task("train", total=None, epoch=0, epochs=epochs, loss=0.0)

        def on_step(epoch: int, step: int, steps: int, loss: float) -> None:
            progress.update(task, completed=step, total=steps, epoch=epoch + 1, loss=loss)

        def on_epoch(record: dict[str, Any]) -> None:
            mark = " [green]best[/]" if record["best"] else ""
            person = f", person IoU {record['val_person_iou']:.4f}" if "val_person_iou" in record else ""
            progress.console.print(
                f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, "
                f"val loss {record['val_loss']:.4f}, val mIoU {record['val_mean_iou']:.4f}, "
                f"subject IoU {record['val_subject_iou']:.4f}{person}, {record['seconds']:.0f}s{mark}",
                soft_wrap=True,
            )

        yield on_step, on_epoch


def _soup(
    data: Path,
    out: Path,
    soup: list[Path],
    device: str,
    limit: int | None,
    console: Console,
    metric: str,
) -> None:
    greedy_soup = training_extra("train").greedy_soup

    def on_step(step: dict[str, Any]) -> None:
        verdict = {None: "alone", True: "kept", False: "dropped"}[step["kept"]]
        console.print(
            f"{len(step['members'])} model(s), val mIoU {step['val_mean_iou']:.4f}, "
            f"subject IoU {step['val_subject_iou']:.4f} ({verdict}): " + ", ".join(step["members"]),
            highlight=False,
            soft_wrap=True,
        )

    result = greedy_soup(data, out, soup, device, limit, on_step, metric)  # type: ignore[arg-type]
    console.print(
        f"soup of {len(result.chosen)}: val mIoU {result.metrics['mean_iou']:.4f}, "
        f"subject IoU {result.metrics['subject_iou']:.4f} -> {result.out}",
        highlight=False,
        soft_wrap=True,
    )
