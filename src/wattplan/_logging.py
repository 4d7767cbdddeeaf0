"""Logging configuration of the ``wattplan`` applications: JSON lines and a redaction filter.

Only the applications (``wattplan run`` and friends) configure logging; the library only
logs. wattplan never logs a secret on purpose; :class:`RedactingFilter` is the second line
of defence for messages of foreign libraries (httpx, uvicorn, a driver's error text) and for
``extra`` fields. It hides the value of every credential-like key in the shapes such text
takes, and works on the message, its ``%`` arguments, ``extra`` fields and tracebacks:

- ``key=value``, as in a URL query (``?code=…&state=…``), a form body or a log line;
- ``"key": "value"`` and ``'key': 'value'`` (JSON, Python reprs), escapes included;
- ``key: value`` (YAML, headers) for the unambiguous key names;
- ``Bearer …`` / ``Authorization: Basic …`` and the password of ``scheme://user:pw@host``.

Credential-like keys are every key that ends in ``token``, ``secret``,
``password``/``passwd``, ``api_key``/``apikey`` or ``verifier`` (``access_token``,
``refresh_token``, ``client_secret``, ``code_verifier``, ``webhook_secret`` …),
``authorization`` and ``cookie``, and ``code`` as a query or form parameter (in JSON,
``"code"`` is Nomos's error code and stays).

The JSON lines come from python-json-logger (a maintained formatter: ``extra`` fields,
exceptions and non-JSON values handled; :mod:`wattplan._jsonlog`, loaded only for JSON
output, as python-json-logger comes with the ``planner`` extra); wattplan only names the
fields.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

__all__ = ["REDACTED", "RedactingFilter", "TextLogFormatter", "configure_logging", "redact"]

REDACTED = "[redacted]"

_NAMED = r"[\w-]*(?:token|secret|password|passwd|api[_-]?key|verifier)"
_KEY = rf"(?:{_NAMED}|authorization|cookie)"
# ``code`` is a credential only as a query or form parameter: in JSON it is Nomos's error code.
_PARAM = rf"(?:{_KEY}|code)"
# A key that names a credential, as a whole word (``token_type`` and ``zipcode`` do not).
_SECRET_KEY = re.compile(rf"(?i)^{_KEY}$")
_QUOTED_VALUE = r"\"(?:[^\"\\]|\\.)*\"?|'(?:[^'\\]|\\.)*'?"
_BARE_VALUE = r"[^\s&,;\"'<>(){}\[\]]+"
_VALUE = rf"(?P<v>{_QUOTED_VALUE}|{_BARE_VALUE})"
_PATTERNS: tuple[re.Pattern[str], ...] = (
    # "key": "value" / 'key': 'value' / "key": 123 (JSON, reprs)
    re.compile(rf"(?i)(?P<k>([\"']){_KEY}\2\s*[:=]\s*){_VALUE}"),
    # the same inside an escaped JSON string: \"key\": \"value\"
    re.compile(rf"(?i)(?P<k>\\+\"{_KEY}\\+\"\s*:\s*\\+\")(?P<v>[^\"\\]*)"),
    # key=value (queries, forms, log lines), quoted or bare
    re.compile(rf"(?i)(?P<k>(?<![\w-]){_PARAM}\s*=\s*){_VALUE}"),
    # key: value for keys that cannot be ordinary words ("error code: 500" stays)
    re.compile(rf"(?i)(?P<k>(?<![\w-])(?:{_NAMED}|cookie)\s*:\s*){_VALUE}"),
    # Authorization: <scheme> <credentials>, and any Bearer token on its own
    re.compile(r"(?i)(?P<k>authorization\s*[:=]\s*[\w-]+\s+)(?P<v>[^\s\"',;]+)"),
    re.compile(r"(?i)(?P<k>\bbearer\s+)(?P<v>[\w\-.~+/]+=*)"),
    # scheme://user:password@host
    re.compile(r"(?P<k>\b[a-zA-Z][\w+.-]*://[^\s:/@]*:)(?P<v>[^\s@/]+)(?=@)"),
)


def _hide(match: re.Match[str]) -> str:
    value = match.group("v")
    if value == REDACTED:
        return match.group(0)
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('k')}{quote}{REDACTED}{quote}"


# What every LogRecord has; anything else on a record came from ``extra``.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def redact(text: str) -> str:
    """``text`` with the value of every credential-like key replaced by ``[redacted]``."""
    for pattern in _PATTERNS:
        text = pattern.sub(_hide, text)
    return text


def _redact_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if depth < 8 and isinstance(value, Mapping):
        return {
            str(k): (REDACTED if _SECRET_KEY.match(str(k)) else _redact_value(v, depth + 1))
            for k, v in value.items()
        }
    if depth < 8 and isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v, depth + 1) for v in value]
    return redact(str(value))


class RedactingFilter(logging.Filter):
    """Redacts the message (after ``%`` formatting with its args) and every ``extra`` field.

    Attach it to handlers (it then sees the records of every logger). It changes the record
    in place, so every handler after it sees the redacted text; it never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_wattplan_redacted", False):
            return True
        if isinstance(record.msg, Mapping):
            record.msg = _redact_value(record.msg)
        else:
            try:
                message = record.getMessage()
            except Exception:  # a broken format string: keep what can be shown
                message = f"{record.msg!s} {record.args!r}"
            record.msg = redact(message)
        record.args = None
        for key in [k for k in record.__dict__ if k not in _RECORD_FIELDS]:
            if key.startswith("_"):
                continue
            value = record.__dict__[key]
            record.__dict__[key] = REDACTED if _SECRET_KEY.match(key) else _redact_value(value)
        record._wattplan_redacted = True
        return True


_REDACT = RedactingFilter()


class TextLogFormatter(logging.Formatter):
    """``time LEVEL logger: message`` with redacted tracebacks (for ``--log-format text``)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return redact(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return redact(super().formatStack(stack_info))


def configure_logging(fmt: str, level: int) -> None:
    """Send every record to stderr as JSON lines (``fmt="json"``) or text, redacted."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from wattplan._jsonlog import JsonLogFormatter

        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(TextLogFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler.executors", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
