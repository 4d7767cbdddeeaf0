"""asyncio helpers shared by the async auth flows (standard library only)."""

from __future__ import annotations

import asyncio
import threading
import weakref

__all__ = ["LoopLocks"]


class LoopLocks:
    """One ``asyncio.Lock`` per running event loop.

    An auth object may outlive an event loop (``asyncio.run`` twice, a test per loop) or
    be shared by clients on different loops; an ``asyncio.Lock`` used on a second loop
    raises. Each loop gets its own lock here, and it goes with its loop.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._guard = threading.Lock()

    def get(self) -> asyncio.Lock:
        """The lock of the running loop (created on first use)."""
        loop = asyncio.get_running_loop()
        with self._guard:
            lock = self._locks.get(loop)
            if lock is None:
                lock = self._locks[loop] = asyncio.Lock()
            return lock
