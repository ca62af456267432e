"""Jaeger's error answers for ``/jaeger/api``: 400 for any malformed parameter and 503 while
storage is unavailable, in the envelope.

Jaeger clients (Grafana's datasource, Jaeger UI) read ``errors[].msg`` from a 400; FastAPI
would answer its own parameter validation with 422 and ``{"detail": [...]}``, which they do
not understand. :class:`JaegerRoute` translates those failures for this router's routes
only, so the rest of the API keeps FastAPI's 422 (and its ``{"detail": ...}`` 503).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from otelhouse.query.jaeger_model import error_envelope
from otelhouse.query.unavailable import (
    CANDIDATES,
    RETRY_HEADERS,
    storage_unavailable,
    unavailable_message,
)


class JaegerError(BaseModel):
    code: int
    msg: str


class JaegerErrorEnvelope(BaseModel):
    """Jaeger's ``structuredResponse`` when it fails: no data, one error per problem."""

    data: None
    total: int
    limit: int
    offset: int
    errors: list[JaegerError]


MALFORMED: dict[int | str, dict[str, Any]] = {
    400: {
        "model": JaegerErrorEnvelope,
        "description": "A malformed parameter; each msg starts with the parameter's name.",
    }
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": JaegerErrorEnvelope, "description": "No span of this trace is stored."}
}
OTHER_CLIENT_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"description": "401 without a valid bearer token (OTELHOUSE_API_TOKENS)."}
}
"""Declared on the router so the OpenAPI schema has no 422 for these routes: FastAPI adds
its validation response to any operation with parameters unless a 4XX range is declared."""


def error_response(
    code: int, *messages: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_envelope(code, *messages), status_code=code, headers=headers)


def validation_messages(exc: RequestValidationError) -> list[str]:
    """``parameter: problem`` for each failure, as :class:`otelhouse.query.jaeger_params.BadParameter`
    words its own."""
    messages = []
    for error in exc.errors():
        parameter = ".".join(str(part) for part in error["loc"][1:]) or str(error["loc"][0])
        problem = "required" if error["type"] == "missing" else error["msg"]
        messages.append(f"{parameter}: {problem}")
    return messages


class JaegerRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def jaeger_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return error_response(400, *validation_messages(exc))
            except CANDIDATES as exc:
                if not storage_unavailable(exc):
                    raise
                return error_response(503, unavailable_message(exc), headers=RETRY_HEADERS)

        return jaeger_handler
