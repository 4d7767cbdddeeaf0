"""The *refresh in flight* marker: which attempt, how far it got, and which process holds it.

A marker is stored in the grant row's ``refresh_attempt`` column as one short string
``<phase>:<attempt>:<holder>``:

* ``phase`` is ``i`` (intent: claimed, the request has not left this process) or ``s``
  (sent: committed just before the request's first byte went out, see
  :meth:`~wattplan.auth.TokenVault.mark_refresh_sent`). A marker of a dead attempt still at
  ``i`` proves the server never saw the refresh: the grant can simply be refreshed again.
  At ``s`` the server may have rotated the refresh token we hold: re-consent.
* ``holder`` names the process (a hash of the host, its pid and the pid's start time), so
  that a process on the same host can tell at once that the holder died (a restart after a
  crash need not wait for the lease to run out).

A marker written by an earlier release (a bare attempt id) counts as sent, holder unknown.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Marker",
    "attempt_ended",
    "attempt_started",
    "current_holder",
    "holder_is_dead",
    "is_orphaned",
]

INTENT = "i"
SENT = "s"


@dataclass(frozen=True)
class Marker:
    """A parsed marker (``holder`` is ``None`` for one written by an earlier release)."""

    phase: str
    attempt: str
    holder: str | None

    @property
    def sent(self) -> bool:
        return self.phase != INTENT

    def format(self) -> str:
        return f"{self.phase}:{self.attempt}:{self.holder or ''}"

    @classmethod
    def parse(cls, value: str | None) -> Marker | None:
        if value is None:
            return None
        parts = value.split(":", 2)
        if len(parts) != 3 or parts[0] not in (INTENT, SENT):
            return cls(phase=SENT, attempt=value, holder=None)  # an earlier release's marker
        return cls(phase=parts[0], attempt=parts[1], holder=parts[2] or None)


def _host_id() -> str:
    machine = ""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            machine = Path(path).read_text(encoding="ascii").strip()
            break
        except (OSError, UnicodeDecodeError):
            continue
    raw = f"{socket.gethostname()}|{machine}".encode()
    return hashlib.sha256(raw).hexdigest()[:8]


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell reused pids apart.

    ``None`` when the process does not exist; ``""`` when this platform cannot say.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None  # /proc works here, so the pid is gone
        return "" if _pid_exists(pid) else None
    except OSError:
        return ""
    # the command name (field 2) may contain spaces and parentheses: split after the last ")"
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, but belongs to someone else
    return True


_HOST = _host_id()
_cached: tuple[int, str] | None = None


def current_holder() -> str:
    """This process's holder id: ``<host hash>.<pid>.<start ticks>`` (fork-safe)."""
    global _cached
    pid = os.getpid()
    if _cached is None or _cached[0] != pid:
        _cached = (pid, f"{_HOST}.{pid}.{_start_ticks(pid) or ''}")
    return _cached[1]


def holder_is_dead(holder: str | None) -> bool:
    """True only when ``holder`` is known to be gone: a process of this host that ended.

    A holder on another host, of an unknown format, or this very process is never
    declared dead here (for those the marker's lease decides).
    """
    if holder is None:
        return False
    host, _, rest = holder.partition(".")
    pid_text, _, ticks = rest.partition(".")
    if host != _HOST or not pid_text.isdigit() or holder == current_holder():
        return False
    now_ticks = _start_ticks(int(pid_text))
    if now_ticks is None:
        return True  # no such process any more
    return bool(ticks) and bool(now_ticks) and now_ticks != ticks  # the pid was reused


# The attempts this process is running (claimed, not yet stored or abandoned). A marker of
# this process whose attempt is not here was left by a refresh that failed on its way out
# (e.g. the vault went away while it tried to clear the marker): no need to wait its lease.
_live: set[str] = set()
_live_lock = threading.Lock()


def attempt_started(attempt: str) -> None:
    with _live_lock:
        _live.add(attempt)


def attempt_ended(attempt: str) -> None:
    with _live_lock:
        _live.discard(attempt)


def is_orphaned(marker: Marker) -> bool:
    """True when the marker's attempt is known to be over: its process ended, or it is
    this process's and no longer running here."""
    if marker.holder is not None and marker.holder == current_holder():
        with _live_lock:
            return marker.attempt not in _live
    return holder_is_dead(marker.holder)
