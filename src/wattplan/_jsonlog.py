"""JSON-lines log formatter of the ``wattplan`` applications (python-json-logger).

A module of its own so that text logging needs only the standard library: the
``planner`` extra brings python-json-logger.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from wattplan._extras import requires
from wattplan._logging import _REDACT, redact

with requires("planner", feature="JSON log output"):
    from pythonjsonlogger.json import JsonFormatter

__all__ = ["JsonLogFormatter"]


class JsonLogFormatter(JsonFormatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, ``extra`` fields,
    and for exceptions ``error`` (the class name) and ``traceback``; everything redacted.
    """

    def __init__(self) -> None:
        super().__init__(
            "%(name)s %(levelname)s %(message)s",
            rename_fields={
                "name": "logger",
                "levelname": "level",
                "message": "msg",
                "exc_info": "traceback",
            },
            timestamp="ts",
            json_ensure_ascii=False,
        )

    def format(self, record: logging.LogRecord) -> str:
        _REDACT.filter(record)  # also when used without the filter on the handler
        return super().format(record)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["level"] = str(log_data.get("level", "")).lower()
        ts = log_data.get("ts")
        if isinstance(ts, datetime):
            log_data["ts"] = ts.isoformat()
        if record.exc_info and record.exc_info[0] is not None:
            log_data["error"] = record.exc_info[0].__name__

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return redact(str(super().formatException(ei)))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return redact(str(super().formatStack(stack_info)))
