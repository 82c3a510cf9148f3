"""`blurcli serve`: the answers are the CLI's bytes, every refusal is one line of JSON, the pool is
bounded, and the command stops gracefully. The app runs in-process (Starlette's TestClient) on a
tiny model; the command runs as a real process."""

from __future__ import annotations

import inspect
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi", reason='the serve extra: pip install "blurcli[serve]"')
with warnings.catch_warnings():  # Starlette prefers httpx2 (Python 3.11 and later); httpx works
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

import blurcli.serve
from blurcli.cli import app as cli_app
from blurcli.cli.blur import blur as cli_blur
from blurcli.cli.predict import predict as cli_predict
from blurcli.encode import encode_image
from blurcli.export import cached_export
from blurcli.limits import input_limit
from blurcli.metadata import output_mark
from blurcli.queries import BlurQuery, PredictQuery
from blurcli.segment import new_segmenter
from blurcli.serve import create_app, load_subjects

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = (ROOT / "examples" / "astronaut.jpg").read_bytes()


@pytest.fixture(scope="module")
def models(tiny_weights: Path, person_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny checkpoints as ONNX files (exported once for the module): 'tiny' segments the head
    only, 'person' the person and the head."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BLURCLI_HOME", str(tmp_path_factory.mktemp("home")))
        return {"tiny": cached_export(tiny_weights), "person": cached_export(person_weights)}


@pytest.fixture
def client(models: dict) -> Iterator[TestClient]:
    """The app on the tiny model (head only; its mask is all subject once refined)."""
    with TestClient(create_app(new_segmenter(models["tiny"], "cpu"))) as client:
        yield client


@pytest.fixture(scope="module")
def shipped() -> tuple[Any, dict]:
    """The shipped models as `blurcli serve` loads them with no --weights (person, and lfw for the
    head): small and fast, and their masks have a background, so every blur option shows."""
    return load_subjects(None, lambda weights, subject: new_segmenter(weights, "cpu", subject=subject))


@pytest.fixture
def shipped_client(shipped: tuple[Any, dict]) -> Iterator[TestClient]:
    default, subjects = shipped
    with TestClient(create_app(default, subjects=subjects)) as client:
        yield client


def cli_output(command: str, photo: bytes, weights: Path | None, *flags: str) -> bytes:
    """What `blurcli COMMAND - [-w WEIGHTS] FLAGS < photo` writes to stdout, on the CPU."""
    model = ["-w", str(weights)] if weights is not None else []
    args = [command, "-", *model, "--device", "cpu", "-q", *flags]
    result = CliRunner().invoke(cli_app, args, input=photo)
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


def error_of(response: Any) -> str:
    """The one-line reason of a refusal, checking its shape: {"error": "..."} and nothing else."""
    body = response.json()
    assert list(body) == ["error"] and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


def rgba16_png() -> bytes:
    """A 16-bit RGBA PNG: what the CLI keeps (depth and alpha) the server must keep too."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 65535, (48, 64, 4), dtype=np.uint16)
    pixels[..., 3] = np.linspace(0, 65535, 64, dtype=np.uint16)
    return encode_image(pixels, ".png")


# POST /blur and /predict: the CLI's bytes


@pytest.mark.parametrize(
    ("query", "flags"),
    [
        ({}, []),
        ({"strength": "0.05", "kernel": "disc"}, ["--strength", "0.05", "--kernel", "disc"]),
        (
            {"feather": "0.01", "refine": "false", "heads": "single"},
            ["--feather", "0.01", "--no-refine", "--heads", "single"],
        ),
        ({"format": "png"}, ["--format", "png"]),
        ({"format": "webp", "quality": "80"}, ["--format", "webp", "--quality", "80"]),
        ({"keep_empty": "true", "subject": "head"}, ["--keep-empty", "--subject", "head"]),
        ({"subject": "person", "heads": "single"}, ["--subject", "person", "--heads", "single"]),
    ],
)
def test_blur_answers_the_bytes_the_cli_writes(shipped_client: TestClient, query: dict, flags: list) -> None:
    response = shipped_client.post("/blur", params=query, content=ASTRONAUT)
    assert response.status_code == 200, response.text
    assert response.content == cli_output("blur", ASTRONAUT, None, *flags)
    assert output_mark(response.content) == "blurred"
    fmt = query.get("format", "jpeg").replace("jpg", "jpeg")
    assert response.headers["content-type"] == f"image/{fmt}"


def test_blur_keeps_16_bit_and_alpha_as_the_cli_does(client: TestClient, models: dict) -> None:
    photo = rgba16_png()
    response = client.post("/blur", content=photo)
    assert response.status_code == 200, response.text
    assert response.content == cli_output("blur", photo, models["tiny"])
    decoded = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (48, 64, 4) and decoded.dtype == np.uint16


@pytest.mark.parametrize(
    ("query", "flags"),
    [
        ({}, []),
        ({"classes": "true"}, ["--classes"]),
        ({"overlay": "true", "format": "jpg"}, ["--overlay", "--format", "jpg"]),
        ({"refine": "false", "heads": "single"}, ["--no-refine", "--heads", "single"]),
        ({"subject": "head", "classes": "true"}, ["--subject", "head", "--classes"]),
    ],
)
def test_predict_answers_the_bytes_the_cli_writes(
    shipped_client: TestClient, query: dict, flags: list
) -> None:
    response = shipped_client.post("/predict", params=query, content=ASTRONAUT)
    assert response.status_code == 200, response.text
    assert response.content == cli_output("predict", ASTRONAUT, None, *flags)
    assert output_mark(response.content) == "mask"


@pytest.mark.parametrize("subject", [None, "person", "head"])
@pytest.mark.parametrize("path", ["/blur", "/predict"])
def test_subject_picks_the_output_of_given_weights_the_cli_picks(
    models: dict, subject: str | None, path: str
) -> None:
    app = create_app(new_segmenter(models["person"], "cpu"))
    with TestClient(app) as client:
        response = client.post(path, params={"subject": subject} if subject else {}, content=ASTRONAUT)
    assert response.status_code == 200, response.text
    flags = ["--subject", subject] if subject else []
    assert response.content == cli_output(path.strip("/"), ASTRONAUT, models["person"], *flags)


def test_subjects_without_weights_are_the_shipped_models_the_cli_picks() -> None:
    loaded: list[tuple[str | None, str | None]] = []

    def load(weights: str | None, subject: str | None) -> Any:
        loaded.append((weights, subject))
        return new_segmenter(weights, "cpu", subject=subject)

    default, subjects = load_subjects(None, load)
    assert loaded == [(None, None), (None, "head")]  # the person model, then the head's (lfw)
    assert default.subject == "person" and subjects["person"] is default
    assert subjects["head"].subjects == ("head",)  # the lfw model, as `blur --subject head` loads it


def test_a_multipart_upload_answers_as_the_raw_body_and_names_the_output(client: TestClient) -> None:
    raw = client.post("/blur", content=ASTRONAUT)
    upload = client.post("/blur", files={"file": ("holiday.jpg", ASTRONAUT, "image/jpeg")})
    assert upload.status_code == 200, upload.text
    assert upload.content == raw.content
    assert upload.headers["content-disposition"] == 'inline; filename="holiday_blurred.jpg"'
    mask = client.post("/predict", files={"photo": ("holiday.jpg", ASTRONAUT, "image/jpeg")})
    assert mask.headers["content-disposition"] == 'inline; filename="holiday_mask.png"'


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


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header says it is width x height (a decompression bomb's header)."""
    data = bytearray(encode_image(np.zeros((8, 8, 3), np.uint8), ".png"))
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(data)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header says it is width x height."""
    data = bytearray(encode_image(np.zeros((8, 8, 3), np.uint8), ".jpg"))
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


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
def small_limit_client(models: dict) -> Iterator[TestClient]:
    with TestClient(create_app(new_segmenter(models["tiny"], "cpu"), max_bytes=10_000)) as client:
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


def test_the_default_limit_is_what_max_pixels_admits(models: dict) -> None:
    app = create_app(new_segmenter(models["tiny"], "cpu"), max_pixels=1_000_000)
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


# Concurrency: one model, a bounded pool


def test_concurrent_requests_all_get_their_own_answer(shipped_client: TestClient) -> None:
    client = shipped_client
    strengths = [f"{0.01 + 0.005 * index:.3f}" for index in range(8)]
    expected = {s: client.post("/blur", params={"strength": s}, content=ASTRONAUT).content for s in strengths}
    answers: dict[str, Any] = {}

    def ask(strength: str) -> None:
        answers[strength] = client.post("/blur", params={"strength": strength}, content=ASTRONAUT)

    threads = [threading.Thread(target=ask, args=(s,)) for s in strengths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(answers) == strengths
    for strength, response in answers.items():
        assert response.status_code == 200 and response.content == expected[strength], strength
    assert len(set(expected.values())) == len(strengths)  # eight different answers, each its own


def test_no_more_photos_are_processed_at_once_than_workers(
    models: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, most, lock = [0], [0], threading.Lock()
    process = blurcli.serve.process_bytes

    def counted(*args: Any) -> Any:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        try:
            return process(*args)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(blurcli.serve, "process_bytes", counted)
    codes: list[int] = []
    with TestClient(create_app(new_segmenter(models["tiny"], "cpu"), workers=2)) as client:
        threads = [
            threading.Thread(
                target=lambda: codes.append(client.post("/predict", content=ASTRONAUT).status_code)
            )
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert codes == [200] * 8
    assert most[0] == 2


# GET /health, the OpenAPI description, the page


def test_health_says_what_is_served(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["version"] == blurcli.__version__
    assert (health["subject"], health["subjects"]) == ("head", ["head"])
    assert health["max_pixels"] == 120_000_000 and health["max_bytes"] == input_limit(120_000_000)


def test_openapi_describes_the_endpoints_and_their_options(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/blur", "/predict", "/health"} <= set(schema["paths"])
    blur = schema["paths"]["/blur"]["post"]
    parameters = {parameter["name"]: parameter for parameter in blur["parameters"]}
    assert set(parameters) == set(BlurQuery.model_fields)
    assert all(parameter["in"] == "query" for parameter in parameters.values())
    assert parameters["strength"]["schema"]["maximum"] == 0.2
    assert set(blur["requestBody"]["content"]) == {"application/octet-stream", "multipart/form-data"}
    predict = {parameter["name"] for parameter in schema["paths"]["/predict"]["post"]["parameters"]}
    assert predict == set(PredictQuery.model_fields)


# The CLI's name for each query parameter where Python's differs.
CLI_NAMES = {"format": "fmt", "overlay": "show"}


@pytest.mark.parametrize(("query", "command"), [(BlurQuery, cli_blur), (PredictQuery, cli_predict)])
def test_every_option_has_the_cli_name_and_default(query: Any, command: Any) -> None:
    defaults = {name: parameter.default for name, parameter in inspect.signature(command).parameters.items()}
    for name, field in query.model_fields.items():
        assert CLI_NAMES.get(name, name) in defaults, name
        assert field.default == defaults[CLI_NAMES.get(name, name)], name


def test_the_page_has_its_controls_and_needs_no_network(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    for control in ('type="file"', 'id="strength"', 'id="kernel"', 'id="subject"', 'id="download"'):
        assert control in page, control
    assert "<script>" in page and "fetch(`blur?" in page
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page)  # nothing fetched from elsewhere
    assert "http://" not in page and "https://" not in page


# The command: where it listens, how it stops


def start_server(weights: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """`blurcli serve --port 0` in a process of its own, and the address it says it listens on."""
    command = [sys.executable, "-m", "blurcli", "serve", "--port", "0", "-w", str(weights), *args]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    line = process.stderr.readline()
    found = re.search(r"listening on (http://127\.0\.0\.1:\d+) ", line)
    if found is None:
        process.kill()
        raise AssertionError(f"no address in {line!r}: {process.stderr.read()}")
    return process, found.group(1)


def send_slowly(address: str, body: bytes, started: threading.Event) -> bytes:
    """POST /blur with the body's first half, wait until told, then the rest; the raw answer."""
    host, port = address.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        head = f"POST /blur HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        sock.sendall(head.encode() + body[: len(body) // 2])
        started.wait(timeout=60)
        time.sleep(0.5)  # the signal has arrived
        sock.sendall(body[len(body) // 2 :])
        answer = b""
        while chunk := sock.recv(1 << 16):
            answer += chunk
    return answer


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_finishes_the_request_in_flight_and_exits_0(models: dict, stop: int) -> None:
    process, address = start_server(models["tiny"])
    try:
        sent, answers = threading.Event(), []
        talker = threading.Thread(target=lambda: answers.append(send_slowly(address, ASTRONAUT, sent)))
        talker.start()
        time.sleep(1.0)  # the request's head and half its body are in
        process.send_signal(stop)
        sent.set()
        talker.join(timeout=60)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    assert answers and answers[0].startswith(b"HTTP/1.1 200 OK")
    assert answers[0].split(b"\r\n\r\n", 1)[1] == cli_output("blur", ASTRONAUT, models["tiny"])
    rest = process.stderr.read() if process.stderr else ""
    assert rest == "blurcli serve: stopped, the requests in flight answered\n"


def test_a_port_in_use_is_one_line_and_exit_1(models: dict) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "blurcli", "serve", "--port", str(port), "-w", str(models["tiny"])],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr == f"error: cannot listen on 127.0.0.1:{port} (Address already in use)\n"


def test_without_the_serve_extra_serve_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None\n"  # as if the serve extra were not installed
        "from blurcli.cli import main; sys.argv[1:] = ['serve']; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == 'error: blurcli serve needs fastapi: pip install "blurcli[serve]"\n'
