"""Checkpoints round-trip safely; URL weights download once, verified, from a local HTTP server."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import os
import re
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import torch

from blurcli.checkpoint import Checkpoint, build_model, load_checkpoint, save_checkpoint
from blurcli.errors import BlurcliError
from blurcli.model import UNet, UNetConfig
from blurcli.segment import new_segmenter
from blurcli.weights import cached_path, resolve_weights, split_url

CONFIG = UNetConfig(width=4, depth=2, stem_stride=1)


def _checkpoint() -> Checkpoint:
    torch.manual_seed(0)
    return Checkpoint(
        config=CONFIG,
        state_dict=UNet(CONFIG).state_dict(),
        input_size=64,
        metrics={"mean_iou": 0.5, "iou": {"hair": None}},
        info={"eval_split": "validation"},
    )


@pytest.fixture
def weights_file(tmp_path: Path) -> Path:
    path = tmp_path / "served" / "tiny.pt"
    save_checkpoint(path, _checkpoint())
    return path


class _Server:
    """A static HTTP server on 127.0.0.1 that counts requests."""

    def __init__(self, folder: Path) -> None:
        self.requests = 0
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(Handler, directory=str(folder))
        )
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"


@pytest.fixture
def server(weights_file: Path) -> Iterator[_Server]:
    running = _Server(weights_file.parent)
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_checkpoint_round_trips_with_its_description(tmp_path: Path) -> None:
    original = _checkpoint()
    save_checkpoint(tmp_path / "m.pt", original)
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.config == CONFIG and loaded.input_size == 64
    assert loaded.classes == ("background", "skin", "hair")
    assert loaded.metrics["mean_iou"] == 0.5 and loaded.info["eval_split"] == "validation"
    for key, value in original.state_dict.items():
        torch.testing.assert_close(loaded.state_dict[key], value)


def test_a_format_1_checkpoint_naming_its_outputs_num_classes_still_loads(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m.pt", _checkpoint())
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["version"] = 1
    payload["config"]["num_classes"] = payload["config"].pop("outputs")
    torch.save(payload, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").config == CONFIG


def test_half_precision_storage_is_smaller_and_loads_as_float32(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "full.pt", _checkpoint())
    save_checkpoint(tmp_path / "half.pt", _checkpoint(), half=True)
    assert (tmp_path / "half.pt").stat().st_size < (tmp_path / "full.pt").stat().st_size
    loaded = load_checkpoint(tmp_path / "half.pt")
    assert all(v.dtype != torch.float16 for v in loaded.state_dict.values())


def test_half_precision_keeps_a_tensor_float16_cannot_hold_in_full(tmp_path: Path) -> None:
    original = _checkpoint()
    original.state_dict["head.bias"][0] = 1e6  # past float16's 65504: it would become infinite
    save_checkpoint(tmp_path / "half.pt", original, half=True)
    loaded = load_checkpoint(tmp_path / "half.pt")
    assert loaded.state_dict["head.bias"][0] == 1e6


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_weights_that_are_not_finite_are_refused_naming_the_file_and_tensor(
    tmp_path: Path, value: float
) -> None:
    broken = _checkpoint()
    broken.state_dict["downs.0.1.0.0.weight"].view(-1)[7] = value
    save_checkpoint(tmp_path / "nan.pt", broken)
    with pytest.raises(
        BlurcliError,
        match=r"nan\.pt: damaged blurcli checkpoint \(tensor downs\.0\.1\.0\.0\.weight holds NaN or inf",
    ):
        load_checkpoint(tmp_path / "nan.pt")


class _Exploit:
    """Pickles as a call to os.mkdir: a checkpoint that runs code when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def test_a_checkpoint_that_runs_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    torch.save({"format": "blurcli-unet", "config": _Exploit(marker)}, tmp_path / "evil.pt")
    with pytest.raises(BlurcliError, match=r"evil\.pt: not a blurcli checkpoint \(.*GLOBAL \w+\.mkdir"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    torch.load(tmp_path / "evil.pt", weights_only=False)  # the file really is an exploit:
    assert marker.exists()  # a plain unpickling runs its code


def test_saved_checkpoints_hold_plain_data_only(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m.pt", _checkpoint())
    assert load_checkpoint(tmp_path / "m.pt").input_size == 64  # read with weights_only=True


def test_foreign_torch_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(BlurcliError, match=r"other\.pt: not a blurcli checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_garbage_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"hello world")
    with pytest.raises(
        BlurcliError, match=r"^\S*junk\.pt: not a blurcli checkpoint \(text, not a PyTorch file\)$"
    ):
        load_checkpoint(tmp_path / "junk.pt")


def test_weights_that_do_not_fit_their_architecture_name_the_tensor_and_shapes() -> None:
    checkpoint = _checkpoint()
    checkpoint.config = UNetConfig(width=8, depth=2, stem_stride=1)
    with pytest.raises(
        BlurcliError,
        match=r"^m\.pt: weights do not fit the model: tensor stem\.0\.0\.weight expected \(8, 3, 3, 3\), "
        r"found \(4, 3, 3, 3\)",
    ):
        build_model(checkpoint, "m.pt")


def test_a_missing_or_extra_tensor_is_named() -> None:
    checkpoint = _checkpoint()
    weights = dict(checkpoint.state_dict)
    del weights["head.bias"]
    with pytest.raises(BlurcliError, match=r"tensor head\.bias expected \(3\), found absent"):
        build_model(Checkpoint(CONFIG, weights, 64), "m.pt")
    extra = {**checkpoint.state_dict, "tail.weight": torch.zeros(2, 2)}
    with pytest.raises(BlurcliError, match=r"tensor tail\.weight expected absent, found \(2, 2\)"):
        build_model(Checkpoint(CONFIG, extra, 64), "m.pt")


def test_local_path_resolves_and_missing_path_fails(weights_file: Path, tmp_path: Path) -> None:
    assert resolve_weights(str(weights_file)) == weights_file
    with pytest.raises(BlurcliError, match=r"nope\.pt: no such weights file"):
        resolve_weights(str(tmp_path / "nope.pt"))


def test_url_download_is_verified_cached_and_reused(weights_file: Path, server: _Server) -> None:
    spec = f"{server.url('tiny.pt')}#sha256={_sha(weights_file)}"
    seen: list[tuple[int, int | None]] = []
    first = resolve_weights(spec, lambda done, total: seen.append((done, total)))
    assert first == cached_path(server.url("tiny.pt"), _sha(weights_file))
    assert first.read_bytes() == weights_file.read_bytes()
    assert seen[-1] == (weights_file.stat().st_size, weights_file.stat().st_size)
    assert resolve_weights(spec) == first
    assert server.requests == 1  # the second call was a cache hit
    assert new_segmenter(spec, "cpu").input_size == 64


def test_hash_mismatch_deletes_the_download(weights_file: Path, server: _Server) -> None:
    spec = f"{server.url('tiny.pt')}#sha256={'0' * 64}"
    with pytest.raises(BlurcliError, match="sha256 mismatch"):
        resolve_weights(spec)
    folder = cached_path(server.url("tiny.pt"), "0" * 64).parent
    assert not folder.exists() or list(folder.iterdir()) == []


def test_damaged_cache_entry_is_fetched_again(weights_file: Path, server: _Server) -> None:
    sha = _sha(weights_file)
    target = cached_path(server.url("tiny.pt"), sha)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"damaged")
    assert resolve_weights(f"{server.url('tiny.pt')}#sha256={sha}").read_bytes() == weights_file.read_bytes()
    assert server.requests == 1


def test_missing_file_on_the_server_is_a_clear_error(server: _Server) -> None:
    with pytest.raises(BlurcliError, match="HTTP 404"):
        resolve_weights(f"{server.url('absent.pt')}#sha256={'a' * 64}")


def test_unreachable_host_is_a_clear_error(server: _Server) -> None:
    port = server.httpd.server_address[1]
    server.httpd.shutdown()
    server.httpd.server_close()
    with pytest.raises(BlurcliError, match="cannot download"):
        resolve_weights(f"http://127.0.0.1:{port}/tiny.pt#sha256={'a' * 64}")


def test_url_without_a_hash_is_refused() -> None:
    with pytest.raises(BlurcliError, match="sha256") as raised:
        split_url("https://example.org/m.pt")
    assert raised.value.exit_code == 2


def test_malformed_hash_fragment_is_refused() -> None:
    with pytest.raises(BlurcliError, match="64 hex digits"):
        split_url("https://example.org/m.pt#sha256=xyz")


# Files that are not checkpoints, and checkpoints that do not fit: one line naming the file.


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "an empty file"),
        (bytes(range(256)) * 8, "not a PyTorch file"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "a PNG image, not a PyTorch file"),
        (b"\xff\xd8\xff\xe0" + bytes(64), "a JPEG image, not a PyTorch file"),
    ],
    ids=["empty", "random", "png", "jpeg"],
)
def test_a_file_of_another_kind_is_named_with_what_it_is(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "x.pt").write_bytes(content)
    with pytest.raises(BlurcliError, match=rf"^\S*x\.pt: not a blurcli checkpoint \({reason}\)$"):
        load_checkpoint(tmp_path / "x.pt")


def test_a_truncated_checkpoint_says_so_without_torch_advice(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m.pt", _checkpoint())
    (tmp_path / "cut.pt").write_bytes((tmp_path / "m.pt").read_bytes()[:-200])
    with pytest.raises(
        BlurcliError, match=r"cut\.pt: not a blurcli checkpoint \(damaged or truncated"
    ) as raised:
        load_checkpoint(tmp_path / "cut.pt")
    assert "\n" not in str(raised.value) and "file an issue" not in str(raised.value)


def test_a_wrong_shaped_tensor_in_a_file_names_the_tensor_not_torch(tmp_path: Path) -> None:
    weights = {**_checkpoint().state_dict, "head.weight": torch.zeros(3, 4, 3, 3)}
    save_checkpoint(tmp_path / "bent.pt", Checkpoint(CONFIG, weights, 64))
    with pytest.raises(
        BlurcliError,
        match=r"bent\.pt: weights do not fit the model: tensor head\.weight expected \(3, 4, 1, 1\)",
    ):
        new_segmenter(str(tmp_path / "bent.pt"), "cpu")


def test_a_complex_tensor_is_another_kind_of_number() -> None:
    weights = dict(_checkpoint().state_dict)
    weights["head.weight"] = torch.complex(weights["head.weight"], weights["head.weight"])
    with pytest.raises(
        BlurcliError, match=r"tensor head\.weight expected real numbers, found torch\.complex64"
    ):
        build_model(Checkpoint(CONFIG, weights, 64), "m.pt")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"config": UNetConfig(width=4, depth=40)}, "config depth 40 outside 1..8"),
        ({"config": UNetConfig(width=-3, depth=2)}, "config width -3 outside"),
        ({"config": UNetConfig(in_channels=5, width=4, depth=2)}, "config in_channels 5, not 3"),
        ({"input_size": 0}, "input_size 0 outside"),
        ({"classes": ("background",)}, "3 outputs for classes ['background']"),
        ({"normalization": {"mean": [0.5], "std": [0.25]}}, "normalization mean [0.5]"),
        ({"normalization": {"mean": [0.5] * 3, "std": [0.0] * 3}}, "normalization std"),
    ],
    ids=["enormous", "negative-width", "channels", "input-size", "classes", "mean", "std"],
)
def test_a_checkpoint_describing_an_unusable_network_is_refused_before_building_it(
    tmp_path: Path, change: dict, reason: str
) -> None:
    save_checkpoint(tmp_path / "m.pt", dataclasses.replace(_checkpoint(), state_dict={}, **change))
    with pytest.raises(BlurcliError, match=rf"m\.pt: damaged blurcli checkpoint \({re.escape(reason)}"):
        load_checkpoint(tmp_path / "m.pt")


def test_shapes_are_compared_before_the_network_is_built() -> None:
    """A config that asks for a network of terabytes fails on its first tensor, allocating nothing."""
    enormous = Checkpoint(UNetConfig(width=4, depth=20, stem_stride=1), _checkpoint().state_dict, 64)
    with pytest.raises(
        BlurcliError, match=r"tensor downs\.2\.1\.0\.0\.weight expected \(32, 16, 3, 3\), found absent"
    ):
        build_model(enormous, "m.pt")


def test_a_checkpoint_that_cannot_be_written_names_it_and_why(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("a file\n")
    with pytest.raises(BlurcliError, match=r"m\.pt: cannot write \(\S*plain\.txt is a file, not a folder\)$"):
        save_checkpoint(tmp_path / "plain.txt" / "m.pt", _checkpoint())
    with pytest.raises(BlurcliError, match=r"cannot write \(File name too long\)$"):
        save_checkpoint(tmp_path / f"{'x' * 300}.pt", _checkpoint())


def test_a_weights_cache_that_cannot_be_created_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: _Server, weights_file: Path
) -> None:
    (tmp_path / "home").write_text("a file, not a folder\n")
    monkeypatch.setenv("BLURCLI_HOME", str(tmp_path / "home"))
    with pytest.raises(
        BlurcliError, match=r"cannot keep downloaded weights there \(\S*home is a file, not a folder\)"
    ):
        resolve_weights(f"{server.url('tiny.pt')}#sha256={_sha(weights_file)}")
    assert server.requests == 0  # refused before downloading


def test_a_full_disk_while_caching_leaves_no_part_file(
    monkeypatch: pytest.MonkeyPatch, server: _Server, weights_file: Path
) -> None:
    import errno

    import blurcli.weights

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(blurcli.weights.os, "replace", full)
    sha = _sha(weights_file)
    with pytest.raises(
        BlurcliError, match=r"cannot keep downloaded weights there \(No space left on device\)"
    ):
        resolve_weights(f"{server.url('tiny.pt')}#sha256={sha}")
    assert list(cached_path(server.url("tiny.pt"), sha).parent.iterdir()) == []
