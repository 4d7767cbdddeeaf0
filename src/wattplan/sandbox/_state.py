"""Run-time state of one sandbox: the clock, the authorization server, faults, counters."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from wattplan.sandbox._clock import SandboxClock
from wattplan.sandbox._config import Faults, SandboxConfig
from wattplan.sandbox._oauth_store import OAuthStore

__all__ = ["Exchange", "SandboxState"]


@dataclass(frozen=True)
class Exchange:
    """One recorded request/response pair (for the conformance test)."""

    method: str
    path: str
    query: str
    request_headers: dict[str, str]
    status_code: int
    response_headers: dict[str, str]
    body: bytes

    def __repr__(self) -> str:  # bodies and headers may hold tokens: never shown
        return f"Exchange({self.method} {self.path} -> {self.status_code})"


class SandboxState:
    """Everything a running sandbox knows; reachable as ``app.state.sandbox``.

    Attributes
    ----------
    config : SandboxConfig
    clock : SandboxClock
    oauth : OAuthStore
        Grants, codes and tokens (digests only).
    faults : Faults
        Fault-injection switches, settable at run time (``state.faults.rate_limit_next = 3``).
    counters : collections.Counter
        ``refresh_grants_served``, ``authorization_code_grants_served``,
        ``client_credentials_grants_served``, ``refresh_reuse_detected``,
        ``grants_revoked``, ``code_replays``, ``api_requests``, ``faults_injected``, ...
    exchanges : deque of Exchange
        Recorded request/response pairs when ``config.record_exchanges`` is on.
    """

    def __init__(self, config: SandboxConfig, clock: SandboxClock | None = None) -> None:
        self.config = config
        self.clock = clock if clock is not None else SandboxClock()
        self.lock = threading.RLock()
        self.faults: Faults = dataclasses.replace(config.faults)
        self.oauth = OAuthStore(config=config, clock=self.clock)
        self.counters: Counter[str] = self.oauth.counters
        self.exchanges: deque[Exchange] = deque(maxlen=20_000)
        self._buckets: dict[str, tuple[float, float]] = {}

    def __repr__(self) -> str:
        return f"SandboxState(clock={self.clock!r}, faults={self.faults!r})"

    @property
    def refresh_grants_served(self) -> int:
        """How many refresh-token grants the token endpoint has answered with success."""
        return self.counters["refresh_grants_served"]

    def take_fault(self, name: str) -> bool:
        """Consume one unit of a ``*_next`` fault counter; True if it fired."""
        with self.lock:
            left: int = getattr(self.faults, name)
            if left > 0:
                setattr(self.faults, name, left - 1)
                self.counters["faults_injected"] += 1
                return True
            return False

    def allow_rate(self, key: str, now_s: float) -> bool:
        """Token bucket per access token when ``faults.rate_limit_per_s`` is set."""
        rate = self.faults.rate_limit_per_s
        if rate is None or rate <= 0:
            return True
        with self.lock:
            tokens, last = self._buckets.get(key, (rate, now_s))
            tokens = min(rate, tokens + (now_s - last) * rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now_s)
                return False
            self._buckets[key] = (tokens - 1.0, now_s)
            return True

    def snapshot(self) -> dict[str, Any]:
        """Counters, faults and clock as plain JSON-able data."""
        with self.lock:
            return {
                "now": self.clock.now().isoformat(),
                "clock_frozen": self.clock.frozen,
                "counters": dict(self.counters),
                "faults": self.faults.to_dict(),
                "auto_approve_email": self.oauth.auto_approve_email,
            }

    def reset_counters(self) -> None:
        with self.lock:
            self.counters.clear()
