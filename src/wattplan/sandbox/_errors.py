"""Flat Nomos error bodies ``{code, message, requestId, docs, errors?}``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from starlette.responses import JSONResponse

__all__ = ["CODES", "api_error", "oauth_error"]

CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    402: "PAYMENT_REQUIRED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    422: "UNPROCESSABLE_ENTITY",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
}
_DOCS = "https://docs.nomos.energy/api-references/errors/"


def api_error(
    status_code: int,
    message: str,
    *,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A flat Nomos error response; ``extra`` adds fields (e.g. RFC 6749 ``error``)."""
    code = CODES.get(status_code, "INTERNAL_SERVER_ERROR")
    body: dict[str, object] = {
        "code": code,
        "message": message,
        "requestId": str(uuid.uuid4()),
        "docs": _DOCS + code,
    }
    if errors:
        body["errors"] = [dict(e) for e in errors]
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status_code, headers=dict(headers or {}))


def oauth_error(
    error: str,
    description: str,
    *,
    status_code: int = 400,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A token-endpoint error: the flat Nomos body plus RFC 6749 ``error``/``error_description``.

    Both shapes in one body, so that a client may read either. ``invalid_grant`` and
    ``invalid_client`` come with HTTP 401 ``UNAUTHORIZED`` (Nomos: "an UNAUTHORIZED response
    means the customer has revoked access"); the other errors with 400 ``BAD_REQUEST``.
    """
    merged = {"Cache-Control": "no-store", "Pragma": "no-cache", **dict(headers or {})}
    return api_error(
        status_code,
        description,
        headers=merged,
        extra={"error": error, "error_description": description},
    )
