"""`blurcli serve`'s web app: POST /blur and /predict answer with the very bytes the CLI writes
for the same photo and options, GET / is a page to try them, GET /health says what is loaded.

FastAPI (the serve extra; blur and predict never import it): the query parameters are typed
models (`queries.py`), so one declaration gives validation and the OpenAPI description. Every
refusal is a 4xx with one line of JSON, {"error": "..."}. The model is loaded once and shared;
the CPU work runs off the event loop on a pool of `workers` threads, and at most two photos per
worker are held in memory at once (the others wait before their bodies are read).
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from importlib import resources
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from blurcli import __version__
from blurcli.batch import RunOptions
from blurcli.errors import BlurcliError, UsageError, first_line
from blurcli.limits import DEFAULT_MAX_PIXELS, check_pixels, input_limit
from blurcli.metadata import image_size, sniff_format
from blurcli.process import process_bytes
from blurcli.queries import BlurQuery, PhotoQuery, PredictQuery
from blurcli.second_look import head_options
from blurcli.segment import Segmenter
from blurcli.uploads import RequestError, read_upload
from blurcli.weights import DEFAULT_FOR_SUBJECT

MEDIA_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".bmp": "image/bmp"}
MEDIA_TYPES[".tif"] = "image/tiff"
MAX_CONNECTIONS = 64  # connections at once; uvicorn answers more with 503 (memory stays bounded)
QUERIES: Mapping[str, type[PhotoQuery]] = {"/blur": BlurQuery, "/predict": PredictQuery}
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
    page: str = field(
        default_factory=lambda: resources.files("blurcli").joinpath("web/index.html").read_text()
    )

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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server.pool = ThreadPoolExecutor(server.workers, thread_name_prefix="blurcli-serve")
        server.slots = asyncio.Semaphore(2 * server.workers)
        try:
            yield
        finally:  # the server has finished the requests in flight
            server.pool.shutdown(wait=True)

    app = FastAPI(
        title="blurcli",
        version=__version__,
        summary="Portrait-mode background blur: POST a photo, get it back blurred (or its mask).",
        docs_url=None,  # Swagger UI and ReDoc load their scripts from a CDN; the schema is /openapi.json
        redoc_url=None,
        lifespan=lifespan,
    )
    add_error_handlers(app)
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
        names = sorted(server.subjects)
        return Health(
            status="ok",
            version=__version__,
            subject=server.segmenter.subject,
            subjects=names,
            workers=server.workers,
            max_pixels=server.max_pixels,
            max_bytes=server.max_bytes,
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(server.page)

    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every refusal as {"error": "<one line>"}: bad options (FastAPI's validation) 422, the
    request's own (400, 413), a photo that cannot be read 422, HTTP's (404, 405), a bug 500."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, validation_message(request.url.path, error.errors()))

    @app.exception_handler(BlurcliError)
    async def refused(request: Request, error: BlurcliError) -> JSONResponse:
        return error_response(getattr(error, "status", 422), str(error))

    @app.exception_handler(HTTPException)
    async def http(request: Request, error: HTTPException) -> JSONResponse:
        allowed = (error.headers or {}).get("Allow")
        hint = f" (use {allowed})" if allowed else ""
        message = f"{request.method} {request.url.path}: {str(error.detail).lower()}{hint}"
        return error_response(error.status_code, message, error.headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception) -> JSONResponse:
        return error_response(500, f"internal error: {type(error).__name__}: {first_line(error)}")


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """One line of JSON naming the reason."""
    return JSONResponse({"error": " ".join(message.split())}, status, headers=dict(headers or {}))


def validation_message(path: str, errors: Any) -> str:
    """FastAPI's validation errors as one line: 'strength: Input should be less than or equal to
    0.2 (got '5')'; names the endpoint does not take: 'unknown option blurr (options: ...)'."""
    known = QUERIES.get(path)
    parts, unknown = [], []
    for error in errors:
        name = ".".join(str(part) for part in error.get("loc", ())[1:]) or "request"
        if error.get("type") == "extra_forbidden" and known is not None:
            unknown.append(name)
        else:
            parts.append(f"{name}: {error.get('msg', 'invalid')} (got {error.get('input')!r})")
    if unknown and known is not None:
        options = ", ".join(known.model_fields)
        parts.append(f"unknown option{'s' * (len(unknown) > 1)} {', '.join(unknown)} (options: {options})")
    return "; ".join(parts)


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (port 0: any free one), or one line saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise UsageError(f"--host {host}: {error.strerror or error}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)  # connections wait in the backlog until the app has started
    except OSError as error:
        sock.close()
        raise BlurcliError(f"cannot listen on {host}:{port} ({error.strerror or error})") from None
    return sock


def url_of(sock: socket.socket) -> str:
    """'http://127.0.0.1:7000' for a listening socket ('http://[::1]:7000' for IPv6)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run_server(app: FastAPI, sock: socket.socket) -> None:
    """Serve `app` on a listening socket (`listen`) with uvicorn until Ctrl-C or SIGTERM, which
    stop new connections, finish the requests in flight and return (quietly: no exception)."""
    import uvicorn

    # python-multipart logs a warning for each malformed upload; its request is answered in JSON.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", limit_concurrency=MAX_CONNECTIONS
    )
    server = uvicorn.Server(config)
    with _stopping(server):
        server.run(sockets=[sock])


@contextmanager
def _stopping(server: Any) -> Iterator[None]:
    """Ctrl-C and SIGTERM stop `server` gracefully, whenever they come. uvicorn catches them while
    it serves, and once it has finished raises the signal again for the handler it found: this
    one, which then has nothing left to do (blurcli's own would turn it into exit 130 or 143)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread
        return

    def stop(signum: int, frame: Any) -> None:
        if not server.should_exit:
            server.handle_exit(signum, frame)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
