"""HTTP Basic client authentication as RFC 6749 §2.3.1 wants it, in one place.

The client id and secret are each encoded with application/x-www-form-urlencoded
(a space becomes ``+``, ``+`` becomes ``%2B``, ``:`` becomes ``%3A``, non-ASCII is UTF-8
percent-encoded) and only then joined by ``:`` and base64-encoded. The OAuth client (auth),
the Nomos client-credentials auth (nomos) and the sandbox's token endpoint all use these
two functions, so that what one side encodes the other decodes.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import quote_plus, unquote_plus

__all__ = ["basic_auth_header", "parse_basic_auth"]


def basic_auth_header(client_id: str, client_secret: str) -> str:
    """The ``Authorization`` header value: form-urlencode id and secret, then HTTP Basic."""
    raw = f"{quote_plus(client_id, safe='')}:{quote_plus(client_secret, safe='')}"
    return "Basic " + base64.b64encode(raw.encode("ascii")).decode("ascii")


def parse_basic_auth(credentials: str) -> tuple[str, str]:
    """Client id and secret from the part of a Basic header after ``Basic ``.

    Raises :class:`ValueError` (naming no value) when it is not base64 of ``id:secret``.
    """
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("malformed Basic credentials") from exc
    user, sep, password = decoded.partition(":")
    if not sep:
        raise ValueError("malformed Basic credentials")
    try:
        return (
            unquote_plus(user, errors="strict"),
            unquote_plus(password, errors="strict"),
        )
    except UnicodeDecodeError as exc:
        raise ValueError("malformed Basic credentials") from exc
