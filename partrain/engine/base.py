"""The engine contract and the one reduction every backend shares.

A step's batch (an index array into the training set) is cut into fixed-size chunks
of ``chunk_size`` samples, independent of how many workers there are. Whoever
computes a chunk writes its loss **sum** and gradient **sum** into that chunk's slot;
the slots are then added in chunk order and divided by the batch size once
(:func:`sum_chunks`). The same chunks, summed in the same order, give the same bits
whichever process computed them, so serial and any number of workers agree exactly.
The sum is elementwise, so it may also be split by parameter range across processes
(the process backend does) without changing a bit.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import UsageError


def chunk_bounds(n, chunk_size):
    """[(lo, hi), ...] positions cutting a batch of n samples into chunk_size pieces."""
    return [(lo, min(lo + chunk_size, n)) for lo in range(0, n, chunk_size)]


@dataclass
class StepStats:
    """Timing of the last step, in seconds."""

    wall: float = 0.0            # whole gradient call as the coordinator saw it
    worker_compute: float = 0.0  # the slowest worker's forward+backward time
    overhead: float = 0.0        # wall - worker_compute: messaging, waiting, reduction


class Engine:
    """Computes ``(mean loss, mean gradient)`` of ``model`` on ``X[indices]``.

    model: a :class:`partrain.models.Sequential`; X: (N, C, H, W) in the model dtype;
    y: (N,) int64. ``gradient`` returns a flat gradient in a buffer the engine owns
    (valid until the next call), without weight decay (the trainer adds it).
    """

    name = ""

    def __init__(self, model, X, y, chunk_size, max_batch=None):
        if chunk_size < 1:
            raise UsageError(f"--chunk-size must be positive, got {chunk_size}")
        self.model, self.X, self.y = model, X, y
        self.chunk_size = int(chunk_size)
        self.max_batch = int(max_batch or len(X))
        self.max_chunks = -(-self.max_batch // self.chunk_size)
        self.stats = StepStats()
        self.grad = np.empty(model.num_params, model.dtype)
        self.step_id = 0

    # -- lifecycle --------------------------------------------------------------
    def start(self):
        return self

    def close(self):
        pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # -- the work ------------------------------------------------------------------
    def gradient(self, indices):
        """indices: (B,) int positions into X -> (mean loss: float, grad (P,) flat)."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) > self.max_batch:
            raise ValueError(f"batch of {len(indices)} exceeds max_batch {self.max_batch}")
        self.step_id += 1
        t0 = time.perf_counter()
        chunks = chunk_bounds(len(indices), self.chunk_size)
        slots, losses, compute = self._compute_chunks(indices, chunks)
        loss = self._reduce(slots, losses, len(indices))
        wall = time.perf_counter() - t0
        self.stats = StepStats(wall, compute, max(wall - compute, 0.0))
        return loss, self.grad

    def _compute_chunks(self, indices, chunks):
        """Fill one slot per chunk. Returns (slots (n_chunks, P), loss sums (n_chunks,),
        seconds of the slowest worker)."""
        raise NotImplementedError

    def _reduce(self, slots, losses, n):
        """Mean loss and mean gradient (into self.grad) from the chunk sums."""
        sum_chunks(slots, n, out=self.grad)
        return mean_loss(losses, n)


def sum_chunks(slots, n, out):
    """out = (slots[0] + slots[1] + ... in chunk order) / n: the one reduction.

    slots: (n_chunks, P) gradient sums, or any column range of them; out: (P,).
    Every backend computes each element this way, so every backend gets the same bits.
    """
    np.copyto(out, slots[0])
    for slot in slots[1:]:
        out += slot
    out /= n
    return out


def mean_loss(losses, n):
    """Chunk loss sums (float64) added in chunk order, divided by n."""
    loss_sum = 0.0
    for value in losses:
        loss_sum += float(value)
    return loss_sum / n


def compute_chunk(model, X, y, indices, grad_out):
    """Loss sum of one chunk, its gradient sum written into ``grad_out``.

    A contiguous run of indices is sliced (no gather copy); the values, and so the
    bits, are the same as a gathered copy.
    """
    if len(indices) > 1 and indices[-1] - indices[0] == len(indices) - 1 and \
            np.all(np.diff(indices) == 1):
        sl = slice(int(indices[0]), int(indices[-1]) + 1)
        Xc, yc = X[sl], y[sl]
    else:
        Xc, yc = X[indices], y[indices]
    # Overflow is not an error here: the trainer checks loss and gradient for NaN/inf
    # after every step and stops with one clear line.
    with np.errstate(all="ignore"):
        loss_sum, _ = model.loss_sum_and_grads(Xc, yc, grad_out=grad_out)
    return loss_sum


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
    images, 23% per chunk of 32 (`scripts/profile_layers.py --chunk 32` with and
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
