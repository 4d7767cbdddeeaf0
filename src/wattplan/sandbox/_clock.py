"""The sandbox's controllable clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

__all__ = ["SandboxClock"]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("SandboxClock needs a tz-aware datetime")
    return value.astimezone(UTC)


class SandboxClock:
    """A clock that tests can set and advance; by default it follows real time.

    It governs everything time-dependent in the sandbox: token and code expiry, the
    publication of tomorrow's prices and the availability of usage data.

    * :meth:`set` moves the clock to a tz-aware instant and *freezes* it there (pass
      ``ticking=True`` to let it run on from that instant at real speed);
    * :meth:`advance` moves it forward (or back, with a negative delta);
    * :meth:`resume_real_time` goes back to the real time.

    Thread-safe; :meth:`now` always returns a tz-aware UTC datetime.
    """

    def __init__(self, start: datetime | None = None, *, ticking: bool = True) -> None:
        self._lock = threading.Lock()
        self._anchor: datetime | None = None  # the set instant (None: real time)
        self._anchor_real: datetime = datetime.now(UTC)
        self._ticking = True
        if start is not None:
            self.set(start, ticking=ticking)

    def now(self) -> datetime:
        """The current sandbox time (tz-aware, UTC)."""
        with self._lock:
            real = datetime.now(UTC)
            if self._anchor is None:
                return real
            if self._ticking:
                return self._anchor + (real - self._anchor_real)
            return self._anchor

    def set(self, value: datetime, *, ticking: bool = False) -> None:
        """Move the clock to ``value`` (tz-aware); frozen there unless ``ticking``."""
        instant = _utc(value)
        with self._lock:
            self._anchor = instant
            self._anchor_real = datetime.now(UTC)
            self._ticking = ticking

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock by ``delta`` and return the new time."""
        current = self.now()
        with self._lock:
            ticking = self._ticking if self._anchor is not None else True
        self.set(current + delta, ticking=ticking)
        return self.now()

    def resume_real_time(self) -> None:
        """Follow the real time again."""
        with self._lock:
            self._anchor = None
            self._ticking = True

    @property
    def frozen(self) -> bool:
        """True while the clock stands still at a set instant."""
        with self._lock:
            return self._anchor is not None and not self._ticking

    def __repr__(self) -> str:
        return f"SandboxClock(now={self.now().isoformat()}, frozen={self.frozen})"
