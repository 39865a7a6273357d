"""Hands work from job threads to the transports' event loop with one wake-up per batch.

``loop.call_soon_threadsafe`` writes to the loop's wake-up pipe on every call. Each write is a
system call that lets go of the interpreter lock, and the loop then waits to get it back: with
many jobs reporting at once (stems, plans, done messages for 50 clients), those hand-overs cost
the loop more than the messages themselves. Here a burst of messages from any number of
threads costs one wake-up; the loop runs them in the order they were posted.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Callable

log = logging.getLogger("audio_agent.server")


class LoopMailbox:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: collections.deque[tuple[Callable[..., None], tuple[Any, ...]]] = collections.deque()
        # Set by the thread that asks for a wake-up, cleared by the loop BEFORE it empties the
        # queue: an item appended while the flag still reads True is then always seen by the
        # drain that follows, so nothing waits for a wake-up that never comes.
        self._wake_pending = False

    def post(self, action: Callable[..., None], *args: Any) -> None:
        """Safe from any thread. Runs ``action(*args)`` on the loop, after earlier posts."""
        self._items.append((action, args))
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop is closed: the server stopped, nobody to send to
                pass

    def _drain(self) -> None:
        self._wake_pending = False
        items = self._items
        while items:
            action, args = items.popleft()
            try:
                action(*args)
            except Exception:  # one failing delivery must not drop the ones behind it
                log.exception("delivering a message on the loop failed")
