"""How every engine process sets up the machine it computes on: one BLAS thread,
allocator settings, and its peak memory."""

from __future__ import annotations

import ctypes
import resource

from threadpoolctl import threadpool_limits


def one_blas_thread():
    """Context manager pinning BLAS to one thread, so processes don't fight over cores
    and every chunk runs the same single-threaded kernels (same bits everywhere)."""
    return threadpool_limits(limits=1, user_api="blas")


def keep_freed_memory():
    """Make this process keep and reuse memory it frees instead of handing it back.

    Every chunk allocates the same few-MiB temporaries. glibc serves blocks above its
    mmap threshold (128 KiB at first) with a fresh mmap each time, and every 4 KiB page
    of it then costs a page fault on first touch. Raising the mmap threshold and the
    trim limit keeps those blocks in the heap: 10% less time per chunk of 8 lenet5-cat
    images, 23% per chunk of 32 (`scripts/benchmarks/profile_layers.py --chunk 32` with and
    without `--no-keep-freed-memory`). Values are unchanged.
    Returns False where mallopt is unavailable (not glibc), where it does nothing.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    # 32 MiB is glibc's largest accepted mmap threshold on 64-bit machines.
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))


def peak_rss_bytes():
    """This process's peak resident memory, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # Linux: KiB
