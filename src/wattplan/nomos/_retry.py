"""When to retry a request and how long to wait (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with capped, jittered exponential backoff.

    * 429: wait what ``retry-after``/``ratelimit-reset`` asks (at least the backoff), but
      never longer than ``max_wait_s``: a longer request is raised as
      :class:`~wattplan.exceptions.RateLimitedError` at once, for the caller to schedule.
    * 5xx, timeouts, broken connections: retried on idempotent methods (GET, HEAD) only.
    * At most ``max_attempts`` tries and ``max_total_wait_s`` of waiting per call.
    * At most ``max_call_s`` per call in all, tries and waits together: each try's
      timeouts are cut to what is left, so an API that hangs fails the call within it
      (without this a hang cost ``max_attempts`` × the timeout plus the waits: minutes).

    Parameters
    ----------
    max_attempts
        Tries per call, the first included (1 disables retrying).
    backoff_base_s, backoff_cap_s
        Backoff before try n+1 is uniform in ``[0, min(cap, base * 2**n)]`` ("full jitter").
    max_wait_s
        Longest single wait.
    max_total_wait_s
        Longest total waiting per call.
    max_call_s
        Deadline of one call, seconds (every try and wait included).
    """

    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 8.0
    max_wait_s: float = 30.0
    max_total_wait_s: float = 60.0
    max_call_s: float = 45.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not self.max_call_s > 0:
            raise ValueError("max_call_s must be positive")
        if min(self.backoff_base_s, self.backoff_cap_s, self.max_wait_s) < 0:
            raise ValueError("waits must not be negative")

    def backoff_s(self, retry_number: int, rng: random.Random) -> float:
        """Jittered wait before retry ``retry_number`` (0 for the first retry)."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * (2.0**retry_number))
        return rng.uniform(0.0, ceiling)

    def rate_limit_wait_s(
        self, retry_number: int, retry_after_s: float | None, rng: random.Random
    ) -> float:
        """Wait after a 429: the server's ask (plus up to 10 % jitter) or the backoff."""
        if retry_after_s is None:
            return max(self.backoff_s(retry_number, rng), self.backoff_base_s)
        return retry_after_s * (1.0 + 0.1 * rng.random())
