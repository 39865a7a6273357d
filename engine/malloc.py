"""The C heap under numpy's arrays (glibc only; elsewhere nothing is done), and big arrays
kept out of it.

Rendering makes and frees many arrays of megabytes on several threads (the procedural
generator's two workers, the stem pipeline, the scene's own thread). glibc keeps freed blocks
of up to 32 MB in its heap for reuse rather than unmapping them, and by default gives each
thread a heap (an "arena") of its own: what one thread freed stays resident beside what the
next thread allocates afresh. Imports nothing heavy, and loads libc on first use.

Limiting glibc to one heap for every thread (mallopt M_ARENA_MAX=1 at process start) was
measured on the 600 s benchmark scene and not adopted: peak RSS 430 MB every run against
456-489 MB, but the two generator threads then share one heap's lock and the scene took
0.3-0.5 s longer (8.7-10.5 s against 8.0-9.3 s, runs alternating).
"""

from __future__ import annotations

import functools
import sys
from typing import Any


@functools.cache  # loaded on first use: `audio-agent --help` never pays for ctypes
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc's, not musl's
        return libc
    except (OSError, AttributeError):
        return None  # not glibc: nothing to do


def return_freed_memory() -> None:
    """Hand the pages of freed blocks back to the OS (malloc_trim, which walks every heap).

    The scene calls this after each stem of a long scene and the procedural generator after
    a batch: without it the 600 s benchmark scene peaks ~100 MB higher. A trim costs about a
    millisecond.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def mapped_zeros(shape: tuple[int, int], *, small_pages: bool = False) -> Any:
    """A zeroed float32 array in an anonymous mapping of its own, not in the C heap: zeroed by
    the OS as pages are first written, unmapped when the last array using it goes. For an
    array that outlives the temporaries made after it (a long event's output, a mix bus):
    inside the heap it would sit among them, and the pages they free around it could not be
    reused or handed back cleanly.

    ``small_pages``: ordinary 4 KB pages. numpy asks for transparent huge pages on arrays of
    4 MB and more; where the kernel then compacts memory to find 2 MB pages on the spot (THP
    defrag "madvise"), a mix bus's first touches cost 50-200 ms of kernel time on a busy
    machine against ~30 ms for the same memory in small pages.
    """
    import mmap

    import numpy as np

    size = int(np.prod(shape)) * np.dtype(np.float32).itemsize
    if size == 0:
        return np.zeros(shape, dtype=np.float32)
    mapping = mmap.mmap(-1, size)
    if small_pages and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_NOHUGEPAGE"):
        mapping.madvise(mmap.MADV_NOHUGEPAGE)
    # The array keeps the mapping alive; both go when the last view of the array does.
    return np.frombuffer(mapping, dtype=np.float32).reshape(shape)
