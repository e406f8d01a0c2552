"""How many workers a run gets: the user's count checked against the machine, or for
``"auto"`` the count a cost model predicts to be fastest."""

from __future__ import annotations

import math
import os
import time

import numpy as np

from ..errors import UsageError
from ..log import warn

# More workers than this many per logical core only thrash; a typo like
# workers=100000 must not fork-bomb the machine.
MAX_WORKERS_PER_CORE = 4


def check_worker_count(requested):
    """Refuse a worker count that is not "auto"/None or a sane positive integer."""
    if requested in (None, "auto"):
        return
    if isinstance(requested, bool) or not isinstance(requested, (int, np.integer)) or requested < 1:
        raise UsageError(f"`workers` must be a positive integer or auto, got {requested!r}")
    cores = os.cpu_count() or 1
    if requested > MAX_WORKERS_PER_CORE * cores:
        raise UsageError(f"`workers` {requested} is more than {MAX_WORKERS_PER_CORE} per "
                         f"logical core ({cores} here); use `workers` auto")


def resolve_workers(requested, default):
    """A worker count from an int or "auto" (``default``), bounded by the machine."""
    check_worker_count(requested)
    if requested in (None, "auto"):
        return default
    cores = os.cpu_count() or 1
    if requested > cores:
        warn(f"{requested} workers on {cores} logical cores; they will share cores")
    return int(requested)


# What one more worker costs the coordinator per training step, in seconds: its
# gradient and reduction tasks pickled, sent and answered. On a 16-core Xeon the
# coordinator's share of a step at 16 workers was about 1 ms for lenet5 at batch 32
# and for mnist-conv at batch 100, some 60 us per worker; 100 us leaves a margin for
# slower machines, where a worker too many costs more than one too few.
MESSAGE_SECONDS = 1e-4


def predicted_step_seconds(workers, chunks, chunk_seconds, message_seconds=MESSAGE_SECONDS):
    """A step of ``chunks`` chunks on ``workers`` workers: the busiest worker computes
    ceil(chunks / workers) chunks, and the coordinator talks to every worker."""
    return math.ceil(chunks / workers) * chunk_seconds + workers * message_seconds


def auto_workers(cores, chunks, chunk_seconds, message_seconds=MESSAGE_SECONDS):
    """The worker count, at most ``cores`` and never more than a step has ``chunks``,
    with the shortest predicted step; the smaller count on a tie."""
    candidates = range(1, max(1, min(cores, chunks)) + 1)
    return min(candidates, key=lambda w: (predicted_step_seconds(w, chunks, chunk_seconds,
                                                                 message_seconds), w))


def chunk_seconds(model, X, y, chunk_size, repeats=3):
    """Seconds one core takes for the forward and backward pass of one chunk: the
    median of ``repeats`` timed passes after a first one that warms caches up. It
    writes only into a scratch gradient: nothing of the model changes."""
    from .host import one_blas_thread
    from .worker import compute_chunk

    n = min(chunk_size, len(X))
    indices = np.arange(n)
    scratch = np.empty(model.num_params, model.dtype)
    times = []
    with one_blas_thread():
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            compute_chunk(model, X, y, indices, scratch)
            times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))
