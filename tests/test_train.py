"""Training: the loss falls, runs are reproducible, Ctrl-C resumes exactly, logs and plots are written."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from blurcli.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from blurcli.errors import BlurcliError, UsageError
from blurcli.model import UNet, UNetConfig
from blurcli.refine import RefineOptions
from blurcli.segment import new_segmenter
from blurcli.training.augment import Augmentation
from blurcli.training.evaluate import evaluate
from blurcli.training.lfw import load_split
from blurcli.training.loop import TrainConfig, TrainingInterrupted, train
from blurcli.training.losses import (
    Objective,
    class_weights_from,
    mirrored_probabilities,
    soft_subject_iou_loss,
)
from blurcli.training.soup import average_weights, greedy_soup


def _config(data: Path, out: Path, **overrides: object) -> TrainConfig:
    values: dict = dict(
        data=data, out=out, epochs=3, batch_size=4, lr=0.01, input_size=32, width=4, depth=2,
        stem_stride=1, workers=0, device="cpu", limit=8, loss_size=None,
    )  # fmt: skip
    values.update(overrides)
    return TrainConfig(**values)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).state_dict


def test_same_seed_gives_the_same_model(lfw_dir: Path, tmp_path: Path) -> None:
    first = train(_config(lfw_dir, tmp_path / "a" / "m.pt", epochs=2))
    second = train(_config(lfw_dir, tmp_path / "b" / "m.pt", epochs=2))
    assert [r["train_loss"] for r in first.history] == [r["train_loss"] for r in second.history]
    for key, value in _weights(first.paths.last).items():
        torch.testing.assert_close(_weights(second.paths.last)[key], value, rtol=0, atol=0)


def test_interrupted_run_resumes_to_the_same_model(lfw_dir: Path, tmp_path: Path) -> None:
    reference = train(_config(lfw_dir, tmp_path / "ref" / "m.pt"))

    def stop_in_second_epoch(epoch: int, step: int, steps: int, loss: float) -> None:
        if epoch == 1 and step == 1:
            raise KeyboardInterrupt

    out = tmp_path / "run" / "m.pt"
    with pytest.raises(TrainingInterrupted) as stopped:
        train(_config(lfw_dir, out), on_step=stop_in_second_epoch)
    assert stopped.value.exit_code == 130
    assert load_checkpoint(out.with_name("m.last.pt")).resume["epochs_done"] == 1
    resumed = train(_config(lfw_dir, out, resume=True))
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for key, value in _weights(reference.paths.last).items():
        torch.testing.assert_close(_weights(resumed.paths.last)[key], value, rtol=0, atol=0)
    assert len(out.with_name("m.log.jsonl").read_text().splitlines()) == 3


def test_a_last_checkpoint_written_before_best_score_was_named_so_still_resumes(
    lfw_dir: Path, tmp_path: Path
) -> None:
    reference = train(_config(lfw_dir, tmp_path / "ref" / "m.pt", epochs=2))
    out = tmp_path / "run" / "m.pt"
    train(_config(lfw_dir, out, epochs=1))
    last = load_checkpoint(out.with_name("m.last.pt"))
    state = dict(last.resume)
    state["best_miou"] = state.pop("best_score")  # the key's name in older files
    save_checkpoint(out.with_name("m.last.pt"), dataclasses.replace(last, resume=state))
    resumed = train(_config(lfw_dir, out, epochs=2, resume=True))
    assert resumed.best_epoch == reference.best_epoch
    for key, value in _weights(reference.paths.last).items():
        torch.testing.assert_close(_weights(resumed.paths.last)[key], value, rtol=0, atol=0)


def test_snapshots_keep_every_epoch_and_the_best_is_one_of_them(lfw_dir: Path, tmp_path: Path) -> None:
    result = train(_config(lfw_dir, tmp_path / "m.pt", snapshots=True))
    kept = sorted(tmp_path.glob("m.e*.pt"))
    assert [p.name for p in kept] == ["m.e001.pt", "m.e002.pt", "m.e003.pt"]
    best = _weights(result.paths.best)
    for key, value in _weights(result.paths.snapshot(result.best_epoch)).items():
        torch.testing.assert_close(best[key], value, rtol=0, atol=0)
    assert load_checkpoint(kept[-1]).metrics["mean_iou"] == result.history[-1]["val_mean_iou"]
    plain = train(_config(lfw_dir, tmp_path / "plain" / "m.pt", epochs=1))
    assert not list(plain.paths.best.parent.glob("*.e*.pt"))


def test_init_starts_from_an_earlier_model(lfw_dir: Path, tmp_path: Path) -> None:
    earlier = train(_config(lfw_dir, tmp_path / "a" / "m.pt", epochs=1))
    tuned = train(_config(lfw_dir, tmp_path / "b" / "m.pt", epochs=1, lr=0.0, init=earlier.paths.best))
    start, end = _weights(earlier.paths.best), _weights(tuned.paths.best)
    for key, value in start.items():
        if key.endswith("weight") and value.dim() == 4:  # convolutions; lr 0 leaves them as loaded
            torch.testing.assert_close(end[key], value, rtol=0, atol=0)
    wording = (
        r"weights do not fit the model: tensor stem\.0\.0\.weight expected \(6, 3, 3, 3\), "
        r"found \(4, 3, 3, 3\)"
    )
    with pytest.raises(BlurcliError, match=r"a/m\.pt: " + wording):
        train(_config(lfw_dir, tmp_path / "c" / "m.pt", width=6, init=earlier.paths.best))
    with pytest.raises(BlurcliError, match=r"a/m\.last\.pt: " + wording):  # --resume: the same path
        train(_config(lfw_dir, tmp_path / "a" / "m.pt", width=6, resume=True))


def test_distillation_objective_mixes_labels_and_teacher() -> None:
    torch.manual_seed(0)
    teacher = UNet(UNetConfig(width=4, depth=2, stem_stride=1)).eval()
    images, masks = torch.randn(2, 3, 16, 16), torch.randint(0, 3, (2, 16, 16))
    with torch.no_grad():
        copy = teacher(images)
    labels_only = Objective()(copy, images, masks)
    torch.testing.assert_close(labels_only, torch.nn.functional.cross_entropy(copy, masks))
    # A student that already predicts what the (mirror-averaged) teacher does gets no gradient from
    # the teacher's term.
    with torch.no_grad():
        target = mirrored_probabilities(teacher, images)
    student = target.log().requires_grad_(True)
    Objective(teacher=teacher, distill=1.0)(student, images, masks).backward()
    assert student.grad.abs().max() < 1e-7
    mixed = Objective(teacher=teacher, distill=0.25)(copy, images, masks)
    soft = Objective(teacher=teacher, distill=1.0)(copy, images, masks)
    torch.testing.assert_close(mixed, 0.75 * labels_only + 0.25 * soft)


def test_finer_labels_score_the_enlarged_logits() -> None:
    torch.manual_seed(2)
    logits, images = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    masks = torch.randint(0, 3, (2, 12, 12))
    enlarged = torch.nn.functional.interpolate(logits, size=(12, 12), mode="bilinear", align_corners=False)
    torch.testing.assert_close(
        Objective()(logits, images, masks), torch.nn.functional.cross_entropy(enlarged, masks)
    )


def test_soft_subject_iou_is_the_subject_overlap_pooled_over_the_batch() -> None:
    masks = torch.zeros(2, 4, 4, dtype=torch.long)
    masks[0, :2] = 1  # skin and hair count the same: both are the subject
    masks[1, :, :2] = 2
    sure = 50.0 * torch.nn.functional.one_hot(masks, 3).permute(0, 3, 1, 2).float()
    assert soft_subject_iou_loss(sure, masks) < 1e-6
    swapped = sure[:, [0, 2, 1]]  # skin and hair exchanged: the subject is still right
    assert soft_subject_iou_loss(swapped, masks) < 1e-6
    inverted = (
        50.0 * torch.stack([masks > 0, masks == 0, torch.zeros_like(masks, dtype=torch.bool)], 1).float()
    )
    assert soft_subject_iou_loss(inverted, masks) > 1 - 1e-6  # subject and background exchanged
    # Half the true subject predicted and nothing else: IoU 1/2, pooled over both images.
    half = sure.clone()
    half[:, :, :, 1::2] = 50.0 * torch.tensor([1.0, 0.0, 0.0])[None, :, None, None]
    assert abs(soft_subject_iou_loss(half, masks).item() - 0.5) < 1e-5
    logits = torch.zeros(2, 3, 4, 4, requires_grad=True)
    Objective(subject_iou=0.5)(logits, torch.zeros(2, 3, 4, 4), masks).backward()
    assert logits.grad[:, 0][masks > 0].gt(0).all()  # pushes background down where the subject is
    torch.testing.assert_close(
        Objective(subject_iou=2.0)(half, half, masks), Objective()(half, half, masks) + 1.0
    )


def test_training_with_a_finer_loss_size_runs(lfw_dir: Path, tmp_path: Path) -> None:
    result = train(_config(lfw_dir, tmp_path / "m.pt", epochs=1, loss_size=48))
    assert np.isfinite(result.history[-1]["train_loss"])
    assert load_checkpoint(result.paths.best).info["train"]["loss_size"] == 48
    with pytest.raises(UsageError, match="smaller than the input size"):
        train(_config(lfw_dir, tmp_path / "x.pt", loss_size=16))


def test_mirrored_probabilities_are_a_distribution_that_commutes_with_mirroring() -> None:
    torch.manual_seed(1)
    model = UNet(UNetConfig(width=4, depth=2, stem_stride=1)).eval()
    images = torch.randn(2, 3, 16, 24)
    with torch.no_grad():
        probabilities = mirrored_probabilities(model, images)
        mirrored = mirrored_probabilities(model, images.flip(-1))
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(2, 16, 24))
    torch.testing.assert_close(mirrored, probabilities.flip(-1))
    single = torch.softmax(model(images), dim=1)
    assert not torch.allclose(probabilities, single)  # the mirror pass really contributes


def test_training_with_a_teacher_runs_and_checks_the_teacher(lfw_dir: Path, tmp_path: Path) -> None:
    teacher = train(_config(lfw_dir, tmp_path / "t" / "m.pt", epochs=1, width=6))
    student = train(_config(lfw_dir, tmp_path / "s" / "m.pt", epochs=2, teacher=teacher.paths.best))
    assert len(student.history) == 2 and np.isfinite(student.history[-1]["train_loss"])
    assert load_checkpoint(student.paths.best).info["train"]["teacher"] == str(teacher.paths.best)
    with pytest.raises(UsageError, match="not a multiple"):
        train(_config(lfw_dir, tmp_path / "x" / "m.pt", input_size=34, depth=1, teacher=teacher.paths.best))


def test_resume_without_an_earlier_run_is_a_usage_error(lfw_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nothing to resume"):
        train(_config(lfw_dir, tmp_path / "m.pt", resume=True))


def test_best_checkpoint_is_chosen_by_validation_mean_iou(lfw_dir: Path, tmp_path: Path) -> None:
    result = train(_config(lfw_dir, tmp_path / "m.pt", epochs=4))
    log = [json.loads(line) for line in result.paths.log.read_text().splitlines()]
    best = max(log, key=lambda record: record["val_mean_iou"])
    assert result.best_epoch == best["epoch"]
    checkpoint = load_checkpoint(result.paths.best)
    assert checkpoint.info["eval_split"] == "validation" and checkpoint.info["epoch"] == best["epoch"]
    assert checkpoint.metrics["mean_iou"] == pytest.approx(best["val_mean_iou"])
    assert checkpoint.resume is None  # the shipped kind of file carries no optimiser state
    assert result.paths.plot.read_bytes().startswith(b"\x89PNG")


def test_the_checkpoint_records_the_augmentation_and_scores_refined_masks(
    lfw_dir: Path, tmp_path: Path
) -> None:
    """A run is reproducible from its checkpoint: the augmentation ranges are part of the config,
    and the validation figures it keeps are those `blurcli eval` reports (refined masks)."""
    augmentation = Augmentation(rotation=5.0, zoom_out=0.0, jpeg=0.0)
    result = train(_config(lfw_dir, tmp_path / "m.pt", epochs=1, augmentation=augmentation))
    checkpoint = load_checkpoint(result.paths.best)
    assert Augmentation(**checkpoint.info["train"]["augmentation"]) == augmentation
    segmenter = new_segmenter(checkpoint, "cpu", backend="torch")
    validation = load_split(lfw_dir, "validation", limit=8)
    refined = evaluate(segmenter, validation, refine=RefineOptions())
    assert checkpoint.metrics["mean_iou"] == pytest.approx(refined["mean_iou"], abs=1e-3)


def test_input_size_must_fit_the_network(lfw_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="multiple of 4"):
        train(_config(lfw_dir, tmp_path / "m.pt", input_size=30))


def test_class_weights_favour_rare_classes() -> None:
    masks = np.array([0] * 80 + [1] * 15 + [2] * 5, np.uint8)
    weights = class_weights_from(masks, 3)
    assert weights[2] > weights[1] > weights[0]
    assert float(weights.mean()) == pytest.approx(1.0)


def test_average_weights_is_the_mean_of_float_tensors() -> None:
    torch.manual_seed(0)
    config = UNetConfig(width=4, depth=2, stem_stride=1)
    a, b = UNet(config), UNet(config)
    checkpoints = [Checkpoint(config=config, state_dict=m.state_dict(), input_size=32) for m in (a, b)]
    averaged = average_weights(checkpoints)
    for key, value in a.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(averaged[key], (value + b.state_dict()[key]) / 2)
        else:
            assert torch.equal(averaged[key], value)


def test_greedy_soup_keeps_only_what_helps_on_validation(lfw_dir: Path, tmp_path: Path) -> None:
    good = train(_config(lfw_dir, tmp_path / "a" / "m.pt", epochs=3)).paths.best
    tuned = train(_config(lfw_dir, tmp_path / "b" / "m.pt", epochs=1, lr=0.001, init=good, seed=1)).paths.best
    config = UNetConfig(width=4, depth=2, stem_stride=1)
    noise = tmp_path / "noise.pt"  # an untrained model: averaging it in can only hurt
    save_checkpoint(noise, Checkpoint(config=config, state_dict=UNet(config).state_dict(), input_size=32))
    result = greedy_soup(lfw_dir, tmp_path / "soup.pt", [noise, good, tuned], device="cpu", limit=8)
    alone = {s["members"][0]: s["val_mean_iou"] for s in result.steps if s["kept"] is None}
    assert noise not in result.chosen
    assert str(result.chosen[0]) == max(alone, key=alone.get)  # the soup starts from the best model
    soup = load_checkpoint(tmp_path / "soup.pt")
    assert soup.info["eval_split"] == "validation"
    assert soup.info["soup"] == [str(p) for p in result.chosen]
    assert soup.metrics["mean_iou"] == pytest.approx(result.metrics["mean_iou"])
    assert (
        soup.metrics["mean_iou"] >= max(s["val_mean_iou"] for s in result.steps if s["kept"] is None) - 1e-9
    )
    # Ranked and kept by subject IoU instead: it starts from the best model by that figure and
    # never ends below it.
    by_subject = greedy_soup(
        lfw_dir, tmp_path / "soup2.pt", [noise, good, tuned], device="cpu", limit=8, metric="subject_iou"
    )
    alone = {s["members"][0]: s["val_subject_iou"] for s in by_subject.steps if s["kept"] is None}
    assert str(by_subject.chosen[0]) == max(alone, key=alone.get)
    assert by_subject.metrics["subject_iou"] >= max(alone.values()) - 1e-9
    assert load_checkpoint(tmp_path / "soup2.pt").info["soup_by"] == "subject_iou"
    with pytest.raises(UsageError, match="one architecture"):
        other = UNetConfig(width=6, depth=2, stem_stride=1)
        wide = tmp_path / "wide.pt"
        save_checkpoint(wide, Checkpoint(config=other, state_dict=UNet(other).state_dict(), input_size=32))
        greedy_soup(lfw_dir, tmp_path / "x.pt", [good, wide], device="cpu", limit=8)


# Failing early: a run that cannot finish says so before reading data, and leaves nothing behind.


def test_an_unwritable_out_is_refused_before_any_data_is_read(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("a file, not a folder\n")
    out = tmp_path / "plain.txt" / "run" / "m.pt"
    with pytest.raises(BlurcliError, match=r"m\.pt: cannot write \(\S*plain\.txt is a file, not a folder\)"):
        train(_config(tmp_path / "no-such-dataset", out))  # the data would fail too, later


def test_a_refused_permission_leaves_no_folder_behind(
    lfw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root, chmod does not stop writes; the refusal is made by hand where the probe writes."""
    import errno

    import blurcli.paths

    def refuse(path: object, *args: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(blurcli.paths.os, "open", refuse)
    with pytest.raises(BlurcliError, match=r"m\.pt: cannot write \(Permission denied\)$"):
        train(_config(lfw_dir, tmp_path / "new" / "deeper" / "m.pt"))
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_as_out_is_a_usage_error(lfw_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a folder; give a file name"):
        train(_config(lfw_dir, tmp_path))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lr": float("inf")}, "--lr inf"),
        ({"distill": float("nan")}, "--distill nan"),
        ({"seed": -1}, "--seed -1"),
        ({"seed": 2**64}, "--seed"),
        ({"input_size": 0}, "--input-size 0"),
        ({"input_size": 4096}, "--input-size 4096"),
        ({"loss_size": 5000}, "--loss-size 5000"),
        ({"width": 10**6}, "parameters"),
        ({"workers": -1}, "--workers -1"),
        ({"width": 0}, "--width"),
    ],
)
def test_values_that_would_fail_mid_run_are_refused_up_front(
    tmp_path: Path, overrides: dict, message: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        train(_config(tmp_path / "no-such-dataset", tmp_path / "run" / "m.pt", **overrides))
    assert list(tmp_path.iterdir()) == []


def test_a_diverging_run_stops_in_one_line(lfw_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(
        BlurcliError, match=r"^epoch 1: the training loss is nan: training diverged; lower --lr"
    ):
        train(_config(lfw_dir, tmp_path / "m.pt", lr=1e30, epochs=2))


def test_a_soup_checks_its_out_before_scoring(lfw_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("a file\n")
    with pytest.raises(BlurcliError, match=r"plain\.txt is a file, not a folder"):
        greedy_soup(lfw_dir, tmp_path / "plain.txt" / "soup.pt", [tmp_path / "missing.pt"], device="cpu")


def test_curves_leave_out_values_that_are_not_finite(tmp_path: Path) -> None:
    from blurcli.training.plot import plot_history

    history = [
        {"train_loss": 1.0, "val_loss": float("nan"), "val_mean_iou": 0.2},
        {"train_loss": float("inf"), "val_loss": 0.9, "val_mean_iou": float("nan")},
    ]
    plot_history(history, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")


# Outputs never replace what a run reads, nor a file blurcli did not write.


def test_out_naming_a_file_of_the_dataset_is_refused_and_the_file_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "parts_train.txt").write_text("Aaron_Eckhart 1\n")
    with pytest.raises(UsageError, match=r"parts_train\.txt: inside --data"):
        train(_config(data, data / "parts_train.txt"))
    assert (data / "parts_train.txt").read_text() == "Aaron_Eckhart 1\n"
    assert sorted(p.name for p in data.iterdir()) == ["parts_train.txt"]


def test_out_inside_the_dataset_through_a_link_is_refused(lfw_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(lfw_dir)
    with pytest.raises(UsageError, match="inside --data"):
        train(_config(lfw_dir, tmp_path / "link" / "run" / "m.pt"))
    with pytest.raises(UsageError, match="inside --data"):
        train(_config(tmp_path / "link", lfw_dir / "run" / ".." / "m.pt"))


@pytest.mark.parametrize("name", ["m.pt", "m.last.pt", "m.log.jsonl", "m.curves.png", "m.e002.pt"])
def test_a_file_blurcli_did_not_write_is_never_replaced(lfw_dir: Path, tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("a user's notes\n")
    with pytest.raises(UsageError, match=re.escape(f"{name}: refusing to replace a file blurcli did not")):
        train(_config(lfw_dir, tmp_path / "m.pt", snapshots=True))
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert (tmp_path / name).read_text() == "a user's notes\n"


def test_a_rerun_replaces_what_an_earlier_run_wrote(lfw_dir: Path, tmp_path: Path) -> None:
    first = train(_config(lfw_dir, tmp_path / "m.pt", epochs=1, snapshots=True))
    again = train(_config(lfw_dir, tmp_path / "m.pt", epochs=1, snapshots=True, seed=1))
    assert first.paths == again.paths
    assert load_checkpoint(again.paths.best).info["train"]["seed"] == 1


def test_out_never_replaces_the_checkpoint_it_starts_from(lfw_dir: Path, tmp_path: Path) -> None:
    start = tmp_path / "start.pt"
    save_checkpoint(start, Checkpoint(UNetConfig(width=4, depth=2, stem_stride=1), {}, 32))
    before = start.read_bytes()
    for overrides in ({"init": start}, {"teacher": start}):
        with pytest.raises(UsageError, match=r"start\.pt: refusing to overwrite an input file"):
            train(_config(lfw_dir, tmp_path / "start.pt", **overrides))
    assert start.read_bytes() == before


def test_a_soup_never_replaces_an_ingredient_or_a_dataset_file(lfw_dir: Path, tmp_path: Path) -> None:
    ingredient = tmp_path / "a.pt"
    save_checkpoint(ingredient, Checkpoint(UNetConfig(width=4, depth=2, stem_stride=1), {}, 32))
    with pytest.raises(UsageError, match=r"a\.pt: refusing to overwrite an input file"):
        greedy_soup(lfw_dir, tmp_path / "." / "a.pt", [ingredient], device="cpu")
    with pytest.raises(UsageError, match="inside --data"):
        greedy_soup(lfw_dir, lfw_dir / "parts_train.txt", [ingredient], device="cpu")


def test_a_weight_that_is_no_longer_a_number_stops_the_run_before_it_is_saved(
    lfw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import blurcli.training.loop as loop

    trained = loop.train_epoch

    def overflowing(model: torch.nn.Module, *args: object) -> float:
        loss = trained(model, *args)  # type: ignore[arg-type]
        with torch.no_grad():
            model.head.weight[0, 0, 0, 0] = float("inf")  # the loss was finite: the last step broke it
        return loss

    monkeypatch.setattr(loop, "train_epoch", overflowing)
    with pytest.raises(BlurcliError, match=r"^epoch 1: weight head\.weight is not finite: training diverged"):
        train(_config(lfw_dir, tmp_path / "m.pt"))
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "m.log.jsonl").exists()


def test_a_score_that_is_not_a_number_is_logged_as_null(
    lfw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import blurcli.training.loop as loop

    scored = loop.evaluate
    monkeypatch.setattr(loop, "evaluate", lambda *args, **kw: {**scored(*args, **kw), "loss": float("nan")})
    train(_config(lfw_dir, tmp_path / "m.pt", epochs=1))

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    record = json.loads((tmp_path / "m.log.jsonl").read_text(), parse_constant=refuse)
    assert record["val_loss"] is None and record["epoch"] == 1
