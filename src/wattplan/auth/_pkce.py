"""PKCE (RFC 7636): code verifiers and S256 challenges, plus one-time ``state`` values.

Pure functions: no I/O, no clock. A fresh verifier is made for every authorization
request and kept server-side (never sent through the browser).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field

__all__ = [
    "PkcePair",
    "code_challenge_s256",
    "generate_code_verifier",
    "generate_state",
    "new_pkce_pair",
]

# RFC 7636 §4.1: code-verifier = 43*128unreserved; unreserved = ALPHA / DIGIT / - . _ ~
_VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def generate_code_verifier(n_bytes: int = 48) -> str:
    """Return a fresh code verifier: ``n_bytes`` random octets, base64url without padding.

    The default 48 octets (384 bits of entropy) give 64 characters; RFC 7636 §7.1 asks
    for at least 256 bits, so ``n_bytes`` must lie between 32 (43 characters) and 96
    (128 characters).
    """
    if not 32 <= n_bytes <= 96:
        raise ValueError("n_bytes must be between 32 and 96 (43 to 128 characters)")
    return base64.urlsafe_b64encode(secrets.token_bytes(n_bytes)).rstrip(b"=").decode("ascii")


def code_challenge_s256(verifier: str) -> str:
    """Return ``BASE64URL(SHA256(ASCII(verifier)))`` without padding (RFC 7636 §4.2)."""
    if not _VERIFIER_RE.match(verifier):
        raise ValueError("a code verifier is 43 to 128 characters of [A-Za-z0-9-._~]")
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def generate_state(n_bytes: int = 32) -> str:
    """Return a fresh, unguessable one-time ``state`` value (base64url, 43 characters)."""
    return secrets.token_urlsafe(n_bytes)


@dataclass(frozen=True)
class PkcePair:
    """A code verifier (secret, kept server-side) and its S256 challenge (sent to the AS)."""

    verifier: str = field(repr=False)
    challenge: str
    method: str = "S256"


def new_pkce_pair() -> PkcePair:
    """Return a fresh verifier and its S256 challenge; S256 is the only method wattplan sends."""
    verifier = generate_code_verifier()
    return PkcePair(verifier=verifier, challenge=code_challenge_s256(verifier))
