"""Admission control: at most N syntheses at once, at most Q waiting; the rest are told to come back (503)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .errors import busy_error


class Slot:
    """One running synthesis; `release` is idempotent, so every exit path may call it."""

    def __init__(self, limiter: Limiter) -> None:
        self._limiter, self.released = limiter, False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._limiter._release()


class Limiter:
    """Made inside the event loop (the app's lifespan): asyncio primitives belong to the loop they run on."""

    def __init__(self, max_active: int, max_queue: int, timeout_s: float,
                 on_change: Callable[[int, int], None] | None = None) -> None:
        self.max_active, self.max_queue, self.timeout_s = max_active, max_queue, timeout_s
        self.active = self.waiting = 0
        self._free = asyncio.Semaphore(max_active)
        self._on_change = on_change

    @property
    def retry_after(self) -> int:
        return max(1, min(30, round(self.timeout_s / 4)))

    async def acquire(self) -> Slot:
        """A slot now, or after waiting in the bounded queue; `ApiError` 503 when the queue is full or the
        wait runs out."""
        if self._free.locked() and self.waiting >= self.max_queue:
            raise busy_error(self.retry_after)
        self.waiting += 1
        self._changed()
        try:
            await asyncio.wait_for(self._free.acquire(), self.timeout_s)
        except asyncio.TimeoutError:
            raise busy_error(self.retry_after) from None
        finally:
            self.waiting -= 1
        self.active += 1
        self._changed()
        return Slot(self)

    def _release(self) -> None:
        self.active -= 1
        self._free.release()
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.active, self.waiting)
