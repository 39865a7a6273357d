"""How job threads hand messages to the transports' loop (LoopMailbox) and how job ids are drawn."""

from __future__ import annotations

import asyncio
import re
import threading

from server.jobs import new_job_id
from server.loop_mailbox import LoopMailbox


def test_messages_from_many_threads_arrive_in_order_with_few_wakeups() -> None:
    loop = asyncio.new_event_loop()
    wakeups = 0
    real = loop.call_soon_threadsafe

    def counting(callback, *args):  # type: ignore[no-untyped-def]
        nonlocal wakeups
        wakeups += 1
        return real(callback, *args)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    mailbox = LoopMailbox(loop)
    received: dict[int, list[int]] = {t: [] for t in range(8)}
    done = threading.Event()
    per_thread = 2000

    def producer(thread: int) -> None:
        for index in range(per_thread):
            mailbox.post(received[thread].append, index)

    async def main() -> None:
        threads = [threading.Thread(target=producer, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        mailbox.post(done.set)
        while not done.is_set():
            await asyncio.sleep(0.001)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    # Nothing lost, each thread's messages in the order it posted them ...
    assert all(received[t] == list(range(per_thread)) for t in range(8))
    # ... and far fewer wake-ups than messages (call_soon_threadsafe was one per message).
    assert wakeups < 8 * per_thread / 4


def test_a_failing_delivery_does_not_drop_the_ones_behind_it() -> None:
    loop = asyncio.new_event_loop()
    mailbox = LoopMailbox(loop)
    got: list[str] = []

    def boom(_: str) -> None:
        raise RuntimeError("socket gone")

    async def main() -> None:
        await asyncio.to_thread(lambda: [mailbox.post(boom, "a"), mailbox.post(got.append, "b")])
        for _ in range(100):
            if got:
                return
            await asyncio.sleep(0.001)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert got == ["b"]


def test_posting_after_the_loop_closed_is_dropped_quietly() -> None:
    loop = asyncio.new_event_loop()
    mailbox = LoopMailbox(loop)
    loop.close()
    mailbox.post(print, "never")  # a job finishing after the server stopped: nobody to tell


def test_job_ids_are_random_unique_and_shaped_as_before() -> None:
    ids = [new_job_id() for _ in range(5000)]  # spans several batches of OS randomness
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"j[0-9a-f]{12}", job_id) for job_id in ids)
    # Not a counter: consecutive ids share no long common prefix as a sequence would.
    same_prefix = sum(a[:9] == b[:9] for a, b in zip(ids, ids[1:]))
    assert same_prefix < 5


def test_job_ids_from_several_threads_never_repeat() -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def draw() -> None:
        mine = [new_job_id() for _ in range(2000)]
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == len(seen) == 8000
