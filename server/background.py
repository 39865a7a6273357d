"""Two small helper threads the job manager shares among all jobs, so the transports' event loop
never waits on them and no job costs an OS thread of its own.

- ``Deadlines``: one timer thread for every job's time limit (a ``threading.Timer`` per job
  started an OS thread per accepted request, which showed in the loop's frame latency).
- ``Recorder``: one thread writes job states to the store in the order they happen, so the
  SQLite insert of a new job (which can wait on locks the planner and render threads hold) is
  not done on the loop before ``accepted`` goes out.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from typing import Callable

log = logging.getLogger("audio_agent.jobs")


class Deadlines:
    """Calls ``action()`` at ``time.monotonic() + after_s`` unless cancelled first."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._ids = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="aa-deadlines", daemon=True)
        self._thread.start()

    def schedule(self, after_s: float, action: Callable[[], None]) -> int:
        with self._wake:
            handle = next(self._ids)
            entry = (time.monotonic() + after_s, handle, action)
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:  # only a new earliest deadline changes the thread's wait
                self._wake.notify()
            return handle

    def cancel(self, handle: int) -> None:
        with self._wake:
            self._cancelled.add(handle)

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped:
                    now = time.monotonic()
                    while self._heap and self._heap[0][1] in self._cancelled:
                        self._cancelled.discard(heapq.heappop(self._heap)[1])
                    if self._heap and self._heap[0][0] <= now:
                        _, handle, action = heapq.heappop(self._heap)
                        break
                    self._wake.wait(None if not self._heap else self._heap[0][0] - now)
                else:
                    return
            try:
                action()
            except Exception:  # a deadline action must not end the timer thread
                log.exception("deadline action failed")


class Recorder:
    """Runs ``record(*args)`` calls one at a time on its own thread, in submission order."""

    def __init__(self, record: Callable[..., None]) -> None:
        self._record = record
        self._queue: queue.Queue[tuple[object, ...] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="aa-record", daemon=True)
        self._thread.start()

    def put(self, *args: object) -> None:
        self._queue.put(args)

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Write what is queued, then end."""
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            args = self._queue.get()
            if args is None:
                return
            try:
                self._record(*args)
            except Exception:  # bookkeeping: never fail a job over it
                log.exception("could not record job state %r", args[1:2])
