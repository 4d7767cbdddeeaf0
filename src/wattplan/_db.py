"""What the token vault and the plan store share about opening a database.

Opening a database fails in many ways (a folder that cannot exist, a file that is a
directory, a server that is down, a wrong password, a driver that is missing). Each must
become one line that says where (the URL, password hidden) and why (the driver's own first
line), never a bare exception class name and never a secret.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from wattplan._logging import redact

__all__ = ["ensure_sqlite_folder", "parse_url", "problem", "shown"]


def _as_url(url: URL | Engine | str | None) -> URL | None:
    """``url`` as a URL object; ``None`` for ``None`` or a string that is not a URL."""
    if isinstance(url, Engine):
        return url.url
    if isinstance(url, str):
        try:
            return make_url(url)
        except sa.exc.ArgumentError:
            return None
    return url


def shown(url: URL | Engine | str) -> str:
    """The URL as it may be shown: the password hidden."""
    parsed = _as_url(url)
    if parsed is None:
        return "(not a valid database URL)"
    return parsed.render_as_string(hide_password=True)


def parse_url(url: str, what: str) -> URL:
    """``url`` parsed; an invalid one raises :class:`ValueError` (the URL is not echoed)."""
    try:
        return make_url(url)
    except sa.exc.ArgumentError:
        raise ValueError(
            f"{what}: not a valid SQLAlchemy database URL (e.g. sqlite:///planner.sqlite3 "
            "or postgresql+psycopg://user@host:5432/db)"
        ) from None


def ensure_sqlite_folder(url: URL) -> None:
    """Create the folder of a SQLite file URL; :class:`OSError` if that is impossible."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database:
        return
    if database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def problem(exc: BaseException, url: URL | Engine | str | None = None) -> str:
    """One line saying why opening or using the database failed, without secrets."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        text = str(exc.orig)
    elif isinstance(exc, sa.exc.NoSuchModuleError):
        text = "no such database dialect or driver (e.g. sqlite, postgresql+psycopg)"
    elif isinstance(exc, ImportError):
        module = exc.name or "the database driver"
        text = f"{module} is not installed (PostgreSQL: pip install 'wattplan[postgres]')"
    elif isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        text = f"{exc.strerror or type(exc).__name__}{where}"
    else:
        text = str(exc) or type(exc).__name__
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[0] if lines else type(exc).__name__
    password = _password(url)
    if password:
        line = line.replace(password, "***")
    return redact(line)


def _password(url: URL | Engine | str | None) -> str | None:
    parsed = _as_url(url)
    return None if parsed is None or parsed.password is None else str(parsed.password)
