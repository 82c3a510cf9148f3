"""`blurcli serve`'s web app: POST /blur and /predict answer with the very bytes the CLI writes
for the same photo and options, GET / is a page to try them, GET /health says what is loaded.

FastAPI (the serve extra; blur and predict never import it): the query parameters are typed
models (`queries.py`), so one declaration gives validation and the OpenAPI description. Every
refusal is a 4xx with one line of JSON, {"error": "..."}. The model is loaded once and shared;
the CPU work runs off the event loop on a pool of `workers` threads, and at most two photos per
worker are held in memory at once (the others wait before their bodies are read). Refusals
are worded in `refusals.py`, the process that serves the app is `listening.py`'s.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from importlib import resources
from pathlib import PurePath
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from blurcli import __version__
from blurcli.batch import RunOptions
from blurcli.errors import BlurcliError, UsageError
from blurcli.limits import DEFAULT_MAX_PIXELS, check_pixels, input_limit
from blurcli.metadata import image_size, sniff_format
from blurcli.process import process_bytes
from blurcli.queries import BlurQuery, PhotoQuery, PredictQuery
from blurcli.refusals import add_error_handlers
from blurcli.second_look import head_options
from blurcli.segment import Segmenter
from blurcli.uploads import RequestError, read_upload
from blurcli.weights import DEFAULT_FOR_SUBJECT

MEDIA_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".bmp": "image/bmp"}
MEDIA_TYPES[".tif"] = "image/tiff"
# The request body, which the endpoints read themselves (bounded), described for the OpenAPI schema.
PHOTO_BODY = {
    "requestBody": {
        "required": True,
        "description": "The photo: the raw body (any Content-Type), or one file of a multipart upload.",
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
            },
        },
    }
}
IMAGE_RESPONSE = {
    200: {"description": "The output image, as the CLI writes it.", "content": {"image/*": {}}},
    400: {"description": "No photo in the request, or a bad multipart upload."},
    413: {"description": "A body over --max-bytes, or a photo over --max-pixels (from its header)."},
    422: {"description": "A bad option, or a photo that cannot be read (the reason in one line)."},
}


class Health(BaseModel):
    """GET /health: the server is up; what it serves and its limits."""

    status: str
    version: str
    subject: str  # what a request without `subject` segments
    subjects: list[str]  # what `subject` may name
    workers: int
    max_pixels: int
    max_bytes: int


@dataclass
class Server:
    """What every request shares: the models by subject, the limits, the pool and the slots."""

    segmenter: Segmenter  # for requests that name no subject
    subjects: Mapping[str, Segmenter]
    workers: int
    max_pixels: int
    max_bytes: int
    pool: ThreadPoolExecutor | None = None  # made when the app starts (lifespan), shut when it stops
    slots: asyncio.Semaphore | None = None  # photos held at once: two per worker
    page: str = field(default_factory=lambda: page_html())

    def segmenter_for(self, subject: str | None) -> Segmenter:
        """The model for a request's `subject` (None: the server's default)."""
        if subject is None:
            return self.segmenter
        if subject not in self.subjects:
            raise UsageError(
                f"subject {subject}: this model has no {subject} output (it segments: "
                f"{', '.join(self.subjects)})"
            )
        return self.subjects[subject]

    @asynccontextmanager
    async def running(self, app: FastAPI) -> AsyncIterator[None]:
        """The app's lifespan: the pool and the slots while it serves; with several workers, each
        model pass on one thread, as the batch engine's lanes run them, so passes side by side do
        not fight over the cores (bench_serve.py: 0.65 -> 0.9 of blur's rate on 2 cores)."""
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="blurcli-serve")
        self.slots = asyncio.Semaphore(2 * self.workers)
        models = (self.segmenter, *self.subjects.values())
        networks = {id(model.network): model.network for model in models}
        for network in networks.values():
            network.threads(1 if self.workers > 1 else None)
        try:
            yield
        finally:  # the server has finished the requests in flight
            self.pool.shutdown(wait=True)
            for network in networks.values():
                network.threads(None)

    def health(self) -> Health:
        """What GET /health says."""
        return Health(
            status="ok",
            version=__version__,
            subject=self.segmenter.subject,
            subjects=sorted(self.subjects),
            workers=self.workers,
            max_pixels=self.max_pixels,
            max_bytes=self.max_bytes,
        )

    async def answer(self, request: Request, query: PhotoQuery) -> Response:
        """A photo through the CLI's path on the pool; its bytes, or a one-line refusal."""
        assert self.pool is not None and self.slots is not None, "the app's lifespan has not started"
        segmenter, task = self.segmenter_for(query.subject), query.task()
        options = RunOptions(batch_size=1, jobs=1, quality=query.quality, max_pixels=self.max_pixels)
        async with self.slots:
            upload = await read_upload(request, self.max_bytes)
            name = upload.filename or "the photo"
            refuse_bombs(upload.data, name, self.max_pixels)
            run = partial(
                process_bytes,
                *(upload.data, task, segmenter, query.naming, query.format),
                *(head_options(query.heads), options, name),
            )
            result, data = await asyncio.get_running_loop().run_in_executor(self.pool, run)
        if result.status != "done":
            raise RequestError(result.error or f"{name}: failed", 422)
        ext = sniff_format(data) or ".png"
        headers = {"Content-Disposition": f'inline; filename="{output_name(upload.filename, query, ext)}"'}
        if result.note:
            headers["X-Blurcli-Note"] = result.note
        return Response(data, media_type=MEDIA_TYPES.get(ext, "application/octet-stream"), headers=headers)


def page_html() -> str:
    """GET /'s page: one HTML file with its script and styles inside, shipped in the package."""
    return resources.files("blurcli").joinpath("web", "index.html").read_text(encoding="utf-8")


def refuse_bombs(data: bytes, name: str, max_pixels: int) -> None:
    """413 for a photo whose header declares more than `max_pixels`, before anything is decoded."""
    size = image_size(data)
    try:
        if size is not None:
            check_pixels(*size, name, max_pixels)
    except BlurcliError as error:
        raise RequestError(str(error), 413) from None


def output_name(filename: str | None, query: PhotoQuery, ext: str) -> str:
    """What the CLI would name the output beside the upload: <stem>_blurred.jpg, <stem>_mask.png
    (ASCII letters, digits, '-', '_' and '.' only; 'photo' for an unnamed or unprintable stem)."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", PurePath((filename or "").replace("\\", "/")).stem)
    return f"{stem.strip('._') or 'photo'}{query.naming.beside}{ext}"


def load_subjects(
    weights: str | None, load: Callable[[str | None, str | None], Segmenter]
) -> tuple[Segmenter, dict[str, Segmenter]]:
    """The model for requests that name no subject, and the one for each subject, as `blur
    --subject` picks them: with `weights`, that model for each subject it has (one network);
    without, each subject's shipped model. `load(weights, subject)` loads one (`new_segmenter`)."""
    default = load(weights, None)
    if weights is not None:
        return default, {subject: replace(default, subject=subject) for subject in default.subjects}
    others = {subject: load(None, subject) for subject in DEFAULT_FOR_SUBJECT if subject != default.subject}
    return default, {default.subject: default, **others}


def create_app(
    segmenter: Segmenter,
    *,
    subjects: Mapping[str, Segmenter] | None = None,
    workers: int = 2,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = None,
) -> FastAPI:
    """The web app around a loaded model: `segmenter` answers requests that name no subject,
    `subjects` the ones that do (default: `segmenter` for each subject its model has; see
    `load_subjects`); `workers` photos are processed at once; photos over `max_pixels` (from
    their headers) and bodies over `max_bytes` (default: what `max_pixels` admits) are refused."""
    if subjects is None:
        subjects = {subject: replace(segmenter, subject=subject) for subject in segmenter.subjects}
    limit = input_limit(max_pixels) if max_bytes is None else max_bytes
    server = Server(segmenter, subjects, max(1, workers), max_pixels, limit)
    app = FastAPI(
        title="blurcli",
        version=__version__,
        summary="Portrait-mode background blur: POST a photo, get it back blurred (or its mask).",
        docs_url=None,  # Swagger UI and ReDoc load their scripts from a CDN; the schema is /openapi.json
        redoc_url=None,
        lifespan=server.running,
    )
    add_error_handlers(app, {"/blur": BlurQuery, "/predict": PredictQuery})
    add_routes(app, server)
    return app


def add_routes(app: FastAPI, server: Server) -> None:
    """POST /blur and /predict, GET /health and the page at GET /."""
    photo_route = partial(
        app.post, responses=IMAGE_RESPONSE, response_class=Response, openapi_extra=PHOTO_BODY
    )

    @photo_route("/blur", summary="The photo with its background blurred, as `blurcli blur` writes it.")
    async def blur(request: Request, query: Annotated[BlurQuery, Query()]) -> Response:
        return await server.answer(request, query)

    @photo_route("/predict", summary="The photo's subject mask, as `blurcli predict` writes it.")
    async def predict(request: Request, query: Annotated[PredictQuery, Query()]) -> Response:
        return await server.answer(request, query)

    @app.get("/health", summary="The server is up: what it serves, its limits.")
    async def health() -> Health:
        return server.health()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(server.page)
