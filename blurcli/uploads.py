"""The photo a request to `blurcli serve` carries, read within a byte limit: the raw body, or the
one file of a multipart upload. A body that says it is over the limit (Content-Length) is refused
unread; one that does not say is read only up to the limit. Starlette's request types (the serve
extra): imported only by the server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from blurcli.errors import BlurcliError

MAX_FORM_FIELDS = 16  # a multipart upload's text fields (the page sends none): a form, not a flood
BODY = "the request body"


class RequestError(BlurcliError):
    """A request the server refuses, with its HTTP status: 400 (nothing to read), 413 (too large)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    """A request's photo: its bytes and the name it came with (a multipart file's name, else None)."""

    data: bytes
    filename: str | None = None


def too_large(limit: int) -> RequestError:
    return RequestError(
        f"{BODY} is over the limit of {limit:,} bytes (the server's --max-bytes, or what its "
        "--max-pixels admits)",
        413,
    )


async def read_upload(request: Request, limit: int) -> Upload:
    """The photo a request carries, never reading more than `limit` bytes: the raw body, or a
    multipart upload's one file (its name kept). Over the limit: 413; nothing there: 400."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)  # refused before a byte of the body is read
    capped = Request(request.scope, _capped_receive(request.receive, limit))
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        upload = await _multipart_file(capped)
    else:
        upload = Upload(await capped.body())
    if not upload.data:
        raise RequestError(
            f"{BODY} holds no photo: send one as the body (curl --data-binary @photo.jpg) or as a "
            "multipart upload (curl -F file=@photo.jpg)"
        )
    return upload


Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


def _capped_receive(receive: Receive, limit: int) -> Receive:
    """`receive` that fails with 413 as soon as the body's bytes pass `limit` (a body sent in
    chunks, with no Content-Length, is stopped there, not read to its end)."""
    received = 0

    async def capped() -> MutableMapping[str, Any]:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large(limit)
        return message

    return capped


async def _multipart_file(request: Request) -> Upload:
    """The one file of a multipart upload (any field name); text fields are ignored."""
    try:
        async with request.form(max_files=1, max_fields=MAX_FORM_FIELDS) as form:
            files = [value for value in form.values() if isinstance(value, UploadFile)]
            if not files:
                raise RequestError(f"{BODY}: a multipart upload without a file (send the photo as one)")
            return Upload(await files[0].read(), files[0].filename or None)
    except (MultiPartException, HTTPException) as error:  # Starlette's, as an HTTPException in an app
        why = error.message if isinstance(error, MultiPartException) else error.detail
        raise RequestError(f"{BODY}: not a valid multipart upload ({why})") from None
