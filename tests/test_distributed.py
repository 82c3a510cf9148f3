"""Training under torchrun: two CPU processes with gloo train a tiny model like one process would.

One test launches `torchrun -m blurcli train` for real; one checks that the first step of 2 ranks
with batch B each gives the gradients, BatchNorm statistics and weights of 1 process with batch 2B.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, DistributedSampler, Subset

from blurcli.checkpoint import load_checkpoint
from blurcli.model import UNet, UNetConfig
from blurcli.refine import RefineOptions
from blurcli.segment import new_segmenter
from blurcli.training.dataset import SegmentationDataset
from blurcli.training.distributed import Ranks, distribute, process_group, ranks_from_environment, unwrapped
from blurcli.training.evaluate import evaluate
from blurcli.training.lfw import load_split
from blurcli.training.loop import train_epoch
from blurcli.training.losses import Objective

ROOT = Path(__file__).resolve().parents[1]
CONFIG = UNetConfig(width=4, depth=2, stem_stride=1)
BATCH = 3  # per rank; one process gets 2 * BATCH


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_train(data: Path, out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`torchrun --nproc_per_node 2 -m blurcli train` of a tiny model on the CPU (gloo)."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        "-m", "blurcli", "train", "--data", str(data), "--out", str(out),
        "--batch-size", "2", "--lr", "0.01", "--input-size", "32", "--width", "4", "--depth", "2",
        "--stem-stride", "1", "--workers", "0", "--device", "cpu", "--loss-size", "0", *options,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=out.parent.parent, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_torchrun_trains_on_two_processes_as_one_would(lfw_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run" / "m.pt"
    done = torchrun_train(lfw_dir, out, "--epochs", "4")
    assert (done.stdout + done.stderr).count("epoch 1:") == 1  # rank 0 alone reports
    # Rank 0 alone writes: one best checkpoint, the last state, the log and the curves.
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "m.curves.png",
        "m.last.pt",
        "m.log.jsonl",
        "m.pt",
    ]
    log = [json.loads(line) for line in out.with_name("m.log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4]
    assert log[-1]["train_loss"] < log[0]["train_loss"]  # the loss falls
    best = max(log, key=lambda r: r["val_mean_iou"])
    assert load_checkpoint(out).info["epoch"] == best["epoch"] and best["best"]
    # Validation summed over the ranks' shards is the figure one process computes on the whole split.
    last = load_checkpoint(out.with_name("m.last.pt"))
    alone = evaluate(
        new_segmenter(last, "cpu", backend="torch"),
        load_split(lfw_dir, "validation"),
        refine=RefineOptions(),
    )
    assert last.metrics["confusion_matrix"] == alone["confusion_matrix"]
    assert last.metrics["mean_iou"] == pytest.approx(alone["mean_iou"], abs=1e-12)
    assert last.metrics["loss"] == pytest.approx(alone["loss"], rel=1e-5)
    evaluated = subprocess.run(
        [sys.executable, "-m", "blurcli", "eval", "--weights", str(out), "--data", str(lfw_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["images"] == 4
    # Two epochs, then --resume to four: exactly the weights of the four-epoch run.
    resumed = tmp_path / "resumed" / "m.pt"
    torchrun_train(lfw_dir, resumed, "--epochs", "2")
    torchrun_train(lfw_dir, resumed, "--epochs", "4", "--resume")
    for key, value in last.state_dict.items():
        torch.testing.assert_close(
            load_checkpoint(resumed.with_name("m.last.pt")).state_dict[key], value, rtol=0, atol=0
        )


def _first_step(data: Path, indices: list[int], ranks: Ranks, port: int, out: Path) -> None:
    """One training step of a fresh tiny UNet (seed 0) on the examples `indices`, as one of
    `ranks`; saves the gradients, BatchNorm statistics and weights after the step to `out`."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.manual_seed(0)
    torch.set_num_threads(1)
    device = torch.device("cpu")
    split = load_split(data, "train")
    dataset = Subset(SegmentationDataset(split, 32, CONFIG.multiple, augment=True, seed=3), indices)
    with process_group(ranks, device):
        sampler = DistributedSampler(dataset, ranks.world, ranks.rank, shuffle=False)
        loader = DataLoader(dataset, batch_size=len(indices) // ranks.world, sampler=sampler)
        model = distribute(UNet(CONFIG).to(device), device, ranks)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        train_epoch(model, loader, optimizer, Objective(), device, False, 0, None)
        if ranks.main:
            state = {name: p.grad.clone() for name, p in unwrapped(model).named_parameters()}
            state |= {f"after.{k}": v.clone() for k, v in unwrapped(model).state_dict().items()}
            torch.save(state, out)


def _spawned(rank: int, data: Path, indices: list[int], port: int, out: Path) -> None:
    _first_step(data, indices, Ranks(rank, 2, rank), port, out)


def test_two_ranks_of_batch_b_step_like_one_process_of_batch_2b(lfw_dir: Path, tmp_path: Path) -> None:
    indices = list(range(2 * BATCH))
    _first_step(lfw_dir, indices, Ranks(), 0, tmp_path / "one.pt")
    mp.spawn(_spawned, args=(lfw_dir, indices, free_port(), tmp_path / "two.pt"), nprocs=2, join=True)
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert one.keys() == two.keys() and any("running_mean" in key for key in one)
    for key, value in one.items():
        # Gradients averaged across ranks, BatchNorm over both ranks' batches, the same step.
        torch.testing.assert_close(two[key], value, rtol=1e-4, atol=1e-6, msg=key)
    assert max(float(v.abs().max()) for k, v in one.items() if not k.startswith("after.")) > 1e-3


def test_ranks_come_from_torchruns_environment() -> None:
    assert ranks_from_environment({}) == Ranks(0, 1, 0)
    ranks = ranks_from_environment({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert ranks == Ranks(3, 4, 1) and not ranks.main
    # Shards cover every validation photo exactly once, without the sampler's padding.
    shards = [Ranks(r, 3).shard(10) for r in range(3)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(10))
