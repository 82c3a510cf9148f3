"""`blurcli serve`'s answers: the very bytes the CLI writes for the same photo and options (raw
body or multipart, every subject), concurrent requests sharing one model on a bounded pool, GET
/health, the OpenAPI description (the CLI's option names and defaults) and the page. The app runs
in-process (Starlette's TestClient); refusals: test_serve_refusals.py; the command:
test_serve_command.py."""

from __future__ import annotations

import inspect
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason='the serve extra: pip install "blurcli[serve]"')

import blurcli.serve
from blurcli.cli.blur import blur as cli_blur
from blurcli.cli.predict import predict as cli_predict
from blurcli.encode import encode_image
from blurcli.limits import input_limit
from blurcli.metadata import output_mark
from blurcli.queries import BlurQuery, PredictQuery
from blurcli.segment import new_segmenter
from blurcli.serve import create_app, load_subjects
from tests.serving import ASTRONAUT, TestClient, cli_output


@pytest.fixture
def client(serve_models: dict) -> Iterator[TestClient]:
    """The app on the tiny model (head only; its mask is all subject once refined)."""
    with TestClient(create_app(new_segmenter(serve_models["tiny"], "cpu"))) as client:
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


def test_blur_keeps_16_bit_and_alpha_as_the_cli_does(client: TestClient, serve_models: dict) -> None:
    photo = rgba16_png()
    response = client.post("/blur", content=photo)
    assert response.status_code == 200, response.text
    assert response.content == cli_output("blur", photo, serve_models["tiny"])
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
    serve_models: dict, subject: str | None, path: str
) -> None:
    app = create_app(new_segmenter(serve_models["person"], "cpu"))
    with TestClient(app) as client:
        response = client.post(path, params={"subject": subject} if subject else {}, content=ASTRONAUT)
    assert response.status_code == 200, response.text
    flags = ["--subject", subject] if subject else []
    assert response.content == cli_output(path.strip("/"), ASTRONAUT, serve_models["person"], *flags)


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
    serve_models: dict, monkeypatch: pytest.MonkeyPatch
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
    with TestClient(create_app(new_segmenter(serve_models["tiny"], "cpu"), workers=2)) as client:
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
