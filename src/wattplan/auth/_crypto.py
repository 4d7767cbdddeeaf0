"""Encryption of tokens at rest (Fernet: AES-128-CBC + HMAC-SHA256, from ``cryptography``)."""

from __future__ import annotations

import base64
import hashlib
import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from wattplan.exceptions import ConfigurationError, TokenVaultError
from wattplan.settings import Settings

__all__ = ["DEVELOPMENT_ENCRYPTION_KEY", "TokenCipher"]

logger = logging.getLogger(__name__)

# Used only in development mode when no key is set: stable, so a development database
# stays readable across restarts, and public, so it protects nothing. Never use it in
# production (outside development mode a missing key is a ConfigurationError).
DEVELOPMENT_ENCRYPTION_KEY = SecretStr(
    base64.urlsafe_b64encode(
        hashlib.sha256(b"wattplan development key: NOT SECRET").digest()
    ).decode()
)


class TokenCipher:
    """Encrypts and decrypts token strings with one or more Fernet keys.

    The first key encrypts; every key is tried for decryption, so keys can be rotated by
    putting the new key first (``"new,old"`` in ``WATTPLAN_ENCRYPTION_KEY``).
    """

    def __init__(self, keys: SecretStr | str) -> None:
        raw = keys.get_secret_value() if isinstance(keys, SecretStr) else keys
        parts = [k.strip() for k in raw.split(",") if k.strip()]
        if not parts:
            raise ConfigurationError("the encryption key is empty")
        try:
            self._fernet = MultiFernet([Fernet(k.encode("ascii")) for k in parts])
        except (ValueError, UnicodeEncodeError):
            raise ConfigurationError(
                "the encryption key is not a Fernet key (32 bytes, urlsafe base64); "
                "make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> TokenCipher:
        """Key from ``WATTPLAN_ENCRYPTION_KEY``; missing is an error outside development mode."""
        settings = settings if settings is not None else Settings()
        if settings.encryption_key is not None:
            return cls(settings.encryption_key)
        if settings.development:
            logger.warning(
                "no WATTPLAN_ENCRYPTION_KEY set: development mode uses a public key, "
                "stored tokens are NOT protected"
            )
            return cls(DEVELOPMENT_ENCRYPTION_KEY)
        raise ConfigurationError(
            "WATTPLAN_ENCRYPTION_KEY is not set: the token vault encrypts tokens at rest and "
            "needs a Fernet key (or set WATTPLAN_DEVELOPMENT=true for a public development key)"
        )

    @staticmethod
    def generate_key() -> SecretStr:
        """A fresh random Fernet key."""
        return SecretStr(Fernet.generate_key().decode("ascii"))

    def encrypt(self, plaintext: str) -> str:
        """Encrypt a token; the result is ASCII and safe to store in a text column."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        """Decrypt a stored token; a wrong key or a damaged value is a :class:`TokenVaultError`."""
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise TokenVaultError(
                "a stored token could not be decrypted (wrong encryption key or damaged row)"
            ) from None

    def __repr__(self) -> str:
        return "TokenCipher(keys=**********)"
