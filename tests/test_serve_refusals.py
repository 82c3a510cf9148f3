"""`blurcli serve`'s refusals: every one a 4xx with one line of JSON naming the reason (an empty
body, a damaged photo, a header bomb, a bad or unknown option, a wrong method or path, a body over
the limit), and a body read only up to the limit, never to its end."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason='the serve extra: pip install "blurcli[serve]"')

import blurcli.serve
from blurcli.encode import encode_image
from blurcli.limits import input_limit
from blurcli.segment import new_segmenter
from blurcli.serve import create_app
from tests.serving import ASTRONAUT, TestClient, error_of, jpeg_declaring, png_declaring


@pytest.fixture
def client(serve_models: dict) -> Iterator[TestClient]:
    """The app on the tiny model, which segments the head only."""
    with TestClient(create_app(new_segmenter(serve_models["tiny"], "cpu"))) as client:
        yield client


# Refusals: a 4xx and one line of JSON naming the reason


def test_an_empty_body_is_refused(client: TestClient) -> None:
    response = client.post("/blur", content=b"")
    assert response.status_code == 400
    assert "holds no photo" in error_of(response)


def test_a_damaged_jpeg_is_refused_with_the_decoders_reason(client: TestClient) -> None:
    damaged = bytearray(ASTRONAUT)
    damaged[len(damaged) // 2 : len(damaged) // 2 + 64] = bytes(range(1, 65))
    response = client.post("/blur", content=bytes(damaged))
    assert response.status_code == 422
    assert error_of(response).startswith("the photo: damaged JPEG (Corrupt JPEG data")
    truncated = client.post("/blur", files={"file": ("cut.jpg", ASTRONAUT[:5000], "image/jpeg")})
    assert truncated.status_code == 422
    assert error_of(truncated) == "cut.jpg: truncated JPEG (no end-of-image marker)"


def test_not_an_image_is_refused(client: TestClient) -> None:
    response = client.post("/predict", content=b"hello, world")
    assert response.status_code == 422
    assert "not an image" in error_of(response)


@pytest.mark.parametrize("bomb", [png_declaring(100_000, 100_000), jpeg_declaring(65_000, 65_000)])
def test_a_header_bomb_is_refused_before_decoding(
    client: TestClient, bomb: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decoding(*args: Any) -> None:
        raise AssertionError("decoded")

    monkeypatch.setattr(blurcli.serve, "process_bytes", no_decoding)
    response = client.post("/blur", content=bomb)
    assert response.status_code == 413
    assert re.fullmatch(
        r"the photo: \d+x\d+ is [\d.]+ MP, over the limit of 120\.0 MP .*", error_of(response)
    )


@pytest.mark.parametrize(
    ("path", "query", "reason"),
    [
        ("/blur", {"strength": "5"}, "strength: Input should be less than or equal to 0.2 (got '5')"),
        ("/blur", {"strength": "nan"}, "strength: Input should be a finite number (got 'nan')"),
        ("/blur", {"kernel": "box"}, "kernel: Input should be 'gaussian' or 'disc' (got 'box')"),
        ("/blur", {"quality": "0"}, "quality: Input should be greater than or equal to 1 (got '0')"),
        ("/blur", {"refine": "maybe"}, "refine: Input should be a valid boolean, unable to interpret input"),
        (
            "/blur",
            {"format": "gif"},
            "format: Input should be 'jpg', 'jpeg', 'png', 'webp', 'bmp', 'tif' or 'tiff'",
        ),
        ("/predict", {"heads": "many"}, "heads: Input should be 'auto' or 'single' (got 'many')"),
        (
            "/predict",
            {"classes": "true", "overlay": "true"},
            "--classes and --overlay cannot be used together",
        ),
        (
            "/blur",
            {"subject": "person"},
            "subject person: this model has no person output (it segments: head)",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_the_option(
    client: TestClient, path: str, query: dict, reason: str
) -> None:
    response = client.post(path, params=query, content=ASTRONAUT)
    assert response.status_code == 422
    assert error_of(response).startswith(reason)


def test_an_unknown_option_is_refused_with_the_known_ones(client: TestClient) -> None:
    response = client.post("/blur", params={"strenght": "0.05"}, content=ASTRONAUT)
    assert response.status_code == 422
    assert error_of(response) == (
        "unknown option strenght (options: subject, heads, format, quality, refine, strength, "
        "feather, kernel, keep_empty)"
    )
    classes = client.post("/blur", params={"classes": "true"}, content=ASTRONAUT)  # predict's, not blur's
    assert classes.status_code == 422 and error_of(classes).startswith("unknown option classes")


def test_a_wrong_method_or_path_is_refused(client: TestClient) -> None:
    response = client.get("/blur")
    assert response.status_code == 405
    assert error_of(response) == "GET /blur: method not allowed (use POST)"
    missing = client.post("/sharpen", content=ASTRONAUT)
    assert missing.status_code == 404 and error_of(missing) == "POST /sharpen: not found"


@pytest.fixture
def small_limit_client(serve_models: dict) -> Iterator[TestClient]:
    with TestClient(create_app(new_segmenter(serve_models["tiny"], "cpu"), max_bytes=10_000)) as client:
        yield client


def test_an_oversized_body_is_refused(small_limit_client: TestClient) -> None:
    response = small_limit_client.post("/blur", content=ASTRONAUT)  # 44 kB, declared in Content-Length
    assert response.status_code == 413
    assert "over the limit of 10,000 bytes" in error_of(response)
    chunks = (ASTRONAUT[i : i + 4096] for i in range(0, len(ASTRONAUT), 4096))  # no Content-Length
    streamed = small_limit_client.post("/blur", content=chunks)
    assert streamed.status_code == 413
    upload = small_limit_client.post("/blur", files={"file": ("a.jpg", ASTRONAUT, "image/jpeg")})
    assert upload.status_code == 413


def test_a_body_within_the_limit_is_served(small_limit_client: TestClient) -> None:
    small = encode_image(np.full((30, 40, 3), 90, np.uint8), ".jpg")
    assert small_limit_client.post("/blur", content=small).status_code == 200


def test_the_default_limit_is_what_max_pixels_admits(serve_models: dict) -> None:
    app = create_app(new_segmenter(serve_models["tiny"], "cpu"), max_pixels=1_000_000)
    with TestClient(app) as client:
        health = client.get("/health").json()
        bomb = client.post("/blur", content=png_declaring(2000, 1000))
    assert health["max_bytes"] == input_limit(1_000_000)
    assert bomb.status_code == 413 and "over the limit of 1.0 MP" in error_of(bomb)


# The body is read within the limit, never to its end


def request_with(chunks: Iterator[bytes], headers: dict[str, str]) -> tuple[Any, list[int]]:
    """A Starlette request whose body arrives in `chunks`; the second value counts what was read."""
    from starlette.requests import Request

    read = [0]

    async def receive() -> dict:
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        read[0] += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    scope = {"type": "http", "method": "POST", "path": "/blur", "headers": raw, "query_string": b""}
    return Request(scope, receive), read


def endless(content_type: str) -> Iterator[bytes]:
    """A body that never ends: zeros, as a raw body or as a multipart upload's file."""
    if content_type.startswith("multipart/"):
        yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
    while True:
        yield b"\0" * 65536


@pytest.mark.parametrize("content_type", ["image/jpeg", "multipart/form-data; boundary=xyz"])
def test_a_body_without_a_length_is_read_only_up_to_the_limit(content_type: str) -> None:
    import anyio

    from blurcli.uploads import RequestError, read_upload

    request, read = request_with(endless(content_type), {"content-type": content_type})
    with pytest.raises(RequestError) as refused:
        anyio.run(read_upload, request, 1_000_000)
    assert refused.value.status == 413
    assert 1_000_000 < read[0] <= 1_000_000 + 2 * 65536  # stopped at the chunk that passed the limit


def test_a_body_declared_too_large_is_refused_unread() -> None:
    import anyio

    from blurcli.uploads import RequestError, read_upload

    request, read = request_with(
        endless("image/png"), {"content-length": "2000000", "content-type": "image/png"}
    )
    with pytest.raises(RequestError) as refused:
        anyio.run(read_upload, request, 1_000_000)
    assert refused.value.status == 413 and read[0] == 0
