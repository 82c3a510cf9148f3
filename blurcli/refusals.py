"""What `blurcli serve` answers when it refuses: always {"error": "<one line>"} with a 4xx, never a
traceback. FastAPI's validation errors (a bad option, an unknown one) 422; the request's own
(`uploads.RequestError`: no photo 400, too large 413); a photo that cannot be read 422; HTTP's
own (404, 405); a bug 500, in one line too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from blurcli.errors import BlurcliError, first_line


def add_error_handlers(app: FastAPI, queries: Mapping[str, type[BaseModel]]) -> None:
    """Every refusal as {"error": "<one line>"}: bad options (FastAPI's validation) 422, the
    request's own (400, 413), a photo that cannot be read 422, HTTP's (404, 405), a bug 500.
    `queries`: each path's query model, whose fields an unknown option's refusal lists."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, validation_message(error.errors(), queries.get(request.url.path)))

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


def validation_message(errors: Any, known: type[BaseModel] | None = None) -> str:
    """FastAPI's validation errors as one line: 'strength: Input should be less than or equal to
    0.2 (got '5')'; names the endpoint's query model `known` lacks: 'unknown option blurr
    (options: ...)'."""
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
