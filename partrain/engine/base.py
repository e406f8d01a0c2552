"""The engine contract: the partitioning rules, the one reduction, and what a worker
does with a message. Backends (serial, process, mpi) only move messages and bytes.

A step's batch (an index array into the training set) is cut into fixed-size chunks
of ``chunk_size`` samples, independent of how many workers there are. Whoever
computes a chunk writes its loss **sum** and gradient **sum** into that chunk's slot;
the slots are then added in chunk order and divided by the batch size once
(:func:`sum_chunks`). The same chunks, summed in the same order, give the same bits
whichever process computed them, so serial and any number of workers agree exactly.
The sum is elementwise, so it may also be split by parameter range across workers
(:func:`param_ranges`) without changing a bit.

Messages a worker handles (:meth:`Worker.handle`), whatever carries them:

* ``("gradient", step, [(chunk, sample_indices), ...], augment)``: forward and backward
  on the training split; the gradient sum goes to ``slots[chunk]``, the loss sum is
  returned. ``augment`` is None or ``(augmentation, key)``: each chunk's images are
  transformed first, with the random stream of ``(key, chunk)`` (partrain.data.augment).
* ``("reduce", step, n_chunks, batch, p_lo, p_hi)``: ``grad[p_lo:p_hi]`` = the chunk sum
  over that parameter range / batch (backends whose slots are shared).
* ``("evaluate", step, split, [(chunk, lo, hi), ...], want_scores)``: forward only on
  ``split[lo:hi]``; returns each chunk's loss sum and correct count (and scores).

A backend subclasses :class:`Engine` and supplies :meth:`Engine._start`,
:meth:`Engine._exchange` (send messages, collect replies), :meth:`Engine._reduce` and
:meth:`Engine.close`; counts, stats and partitioning come from here.
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
import time
import traceback
from dataclasses import dataclass
from functools import partial

import numpy as np
from threadpoolctl import threadpool_limits

from ..data.augment import chunk_rng
from ..errors import UsageError, WorkerError

# Forward-only chunks of an evaluation: no gradient slot to fill, so larger than a
# training chunk; fixed, so an evaluation's loss has the same bits on any worker count.
EVAL_CHUNK = 64

# More workers than this many per logical core only thrash; a typo like --workers
# 100000 must not fork-bomb the machine.
MAX_WORKERS_PER_CORE = 4


def chunk_bounds(n, chunk_size):
    """[(lo, hi), ...] positions cutting a batch of n samples into chunk_size pieces."""
    return [(lo, min(lo + chunk_size, n)) for lo in range(0, n, chunk_size)]


def assign_chunks(chunks, n_workers):
    """Split a chunk list [(lo, hi), ...] into one contiguous run per worker, each
    holding about 1/W of the samples (a chunk goes to the worker whose share its middle
    falls in). Returns [[(chunk index, lo, hi), ...] per worker]; a run may be empty."""
    n = chunks[-1][1] if chunks else 0
    runs = [[] for _ in range(n_workers)]
    for c, (lo, hi) in enumerate(chunks):
        w = min(int((lo + hi) / 2 * n_workers / n), n_workers - 1)
        runs[w].append((c, lo, hi))
    return runs


def param_ranges(num_params, n_workers, align=16):
    """Split 0..P into one contiguous range per worker, cut on multiples of ``align``
    elements (64 bytes of float32) so no two workers write the same cache line."""
    cuts = [min(num_params, round(num_params * i / n_workers / align) * align)
            for i in range(n_workers)] + [num_params]
    return list(zip(cuts[:-1], cuts[1:]))


def check_worker_count(requested):
    """Refuse a worker count that is not "auto"/None or a sane positive integer."""
    if requested in (None, "auto"):
        return
    if isinstance(requested, bool) or not isinstance(requested, (int, np.integer)) or requested < 1:
        raise UsageError(f"--workers must be a positive integer or auto, got {requested!r}")
    cores = os.cpu_count() or 1
    if requested > MAX_WORKERS_PER_CORE * cores:
        raise UsageError(f"--workers {requested} is more than {MAX_WORKERS_PER_CORE} per "
                         f"logical core ({cores} here); use --workers auto")


def resolve_workers(requested, default):
    """A worker count from an int or "auto" (``default``), bounded by the machine."""
    check_worker_count(requested)
    if requested in (None, "auto"):
        return default
    cores = os.cpu_count() or 1
    if requested > cores:
        print(f"partrain: warning: {requested} workers on {cores} logical cores; "
              "they will share cores", file=sys.stderr)
    return int(requested)


@dataclass
class StepStats:
    """Timing of the last step, in seconds."""

    wall: float = 0.0            # whole gradient call as the coordinator saw it
    worker_compute: float = 0.0  # the slowest worker's forward+backward time
    overhead: float = 0.0        # wall - worker_compute: messaging, waiting, reduction


# ----------------------------------------------------------------------------
# The coordinator's side
# ----------------------------------------------------------------------------

class Engine:
    """Computes ``(mean loss, mean gradient)`` of ``model`` on chunks of a batch, and
    evaluations, on ``workers`` processes.

    model: a :class:`partrain.nn.sequential.Sequential` (or anything with its interface).
    splits: ``{"train": (X, y), "val": ..., "test": ...}``, X (N, C, H, W) in the model
    dtype, y (N,) int64. ``gradient`` uses "train"; ``evaluate`` any split.
    ``gradient`` returns a flat gradient in a buffer the engine owns (valid until the
    next call), without weight decay (the trainer adds it).
    """

    name = ""
    default_workers = 1     # what "auto" means for this backend
    # How the chunk gradients are added: "ordered" (chunk order: the same bits on any
    # worker count) everywhere; a backend may offer faster, non-bitwise ones.
    reductions = ("ordered",)

    def __init__(self, model, splits, chunk_size, workers="auto", max_batch=None,
                 reduction="ordered"):
        if reduction not in self.reductions:
            raise UsageError(f"the {self.name} backend adds gradients "
                             f"{' or '.join(self.reductions)}, not {reduction!r}")
        self.reduction = reduction
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
                or chunk_size < 1:
            raise UsageError(f"--chunk-size must be a positive integer, got {chunk_size!r}")
        if "train" not in splits:
            raise UsageError("the engine needs a 'train' split")
        self.model, self.splits = model, dict(splits)
        self.workers = resolve_workers(workers, self.default_workers_for())
        self.chunk_size = int(chunk_size)
        n_train = len(self.splits["train"][0])
        self.max_batch = int(max_batch or n_train)
        self.max_chunks = -(-self.max_batch // self.chunk_size)
        self.stats = StepStats()
        self.replacements = 0      # workers restarted after dying or hanging
        self.step_id = 0
        self.grad = np.empty(model.num_params, model.dtype)

    @classmethod
    def default_workers_for(cls):
        return cls.default_workers

    # -- lifecycle --------------------------------------------------------------
    def start(self):
        """Start the workers; returns self. Safe to call close() after a failure."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    @property
    def is_coordinator(self):
        """False in processes that only serve a coordinator elsewhere (MPI ranks > 0)."""
        return True

    def serve(self):
        """In a serving-only process, answer the coordinator until it says stop."""

    def peak_rss(self):
        """Peak resident bytes of each worker process (empty when there are none)."""
        return []

    # -- the work ---------------------------------------------------------------
    def gradient(self, indices, augment=None, key=()):
        """indices: (B,) positions into the training split -> (mean loss, grad (P,)).

        augment: an :class:`partrain.data.augment.Augmentation` (or None) applied to each
        chunk's images with the stream of ``key`` (the trainer's (seed, step)) and the
        chunk index: the same transforms on any worker count.
        """
        indices = np.asarray(indices, dtype=np.int64)
        if not 0 < len(indices) <= self.max_batch:
            raise ValueError(f"batch of {len(indices)} outside 1..max_batch {self.max_batch}")
        self.step_id += 1
        t0 = time.perf_counter()
        chunks = chunk_bounds(len(indices), self.chunk_size)
        runs = assign_chunks(chunks, self.workers)
        how = (augment, tuple(key)) if augment else None
        messages = {w: ("gradient", self.step_id,
                        [(c, indices[lo:hi]) for c, lo, hi in run], how)
                    for w, run in enumerate(runs) if run}
        replies = self._exchange(messages)
        losses = _in_chunk_order(replies, len(chunks))
        self._reduce(len(chunks), len(indices))
        loss = mean_loss(losses, len(indices))
        wall = time.perf_counter() - t0
        compute = max(r[2] for r in replies.values())
        self.stats = StepStats(wall, compute, max(wall - compute, 0.0))
        return loss, self.grad

    def evaluate(self, split, want_scores=False):
        """Forward passes over a whole split on every worker.

        Returns (mean loss, accuracy), plus scores (N, K) when ``want_scores``.
        """
        n = len(self.splits[split][0])
        chunks = chunk_bounds(n, EVAL_CHUNK)
        runs = assign_chunks(chunks, self.workers)
        self.step_id += 1
        messages = {w: ("evaluate", self.step_id, split, run, want_scores)
                    for w, run in enumerate(runs) if run}
        results = _in_chunk_order(self._exchange(messages), len(chunks))
        loss = mean_loss([r[0] for r in results], n)
        accuracy = sum(r[1] for r in results) / n
        if want_scores:
            return loss, accuracy, np.concatenate([r[2] for r in results])
        return loss, accuracy

    # -- what a backend supplies -------------------------------------------------
    def _exchange(self, messages):
        """Deliver {worker index: message}; return {worker index: reply} where a reply
        is ``(kind, step, seconds, peak_rss_bytes, {chunk: result})``."""
        raise NotImplementedError

    def _reduce(self, n_chunks, batch):
        """Fill ``self.grad`` with the chunk sum / batch, in chunk order."""
        raise NotImplementedError


def _in_chunk_order(replies, n_chunks):
    merged = {}
    for reply in replies.values():
        merged.update(reply[4])
    return [merged[c] for c in range(n_chunks)]


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


# ----------------------------------------------------------------------------
# The worker's side
# ----------------------------------------------------------------------------

class Worker:
    """What every worker process (or the serial engine itself) does with a message.

    arrays: ``params`` (P,), ``slots`` (max_chunks, P), ``grad`` (P,), and
    ``<split>.X`` / ``<split>.y`` for every split; shared memory or private, as the
    backend arranges. The model is bound to ``params``.
    """

    def __init__(self, model, arrays, between_chunks=None):
        self.model, self.a = model, arrays
        self.between_chunks = between_chunks or (lambda: None)
        model.bind(arrays["params"])

    def reply(self, msg):
        """Handle ``msg`` and build the reply, or ``("error", step, what, detail)``."""
        t0 = time.perf_counter()
        try:
            results = self.handle(msg)
        except _ChunkFailed as failure:
            return ("error", msg[1], failure.what, failure.detail)
        return (msg[0], msg[1], time.perf_counter() - t0, peak_rss_bytes(), results)

    def handle(self, msg):
        kind = msg[0]
        a = self.a
        results = {}
        if kind == "gradient":
            X, y = a["train.X"], a["train.y"]
            _, _, run, how = msg
            for c, idx in run:
                self.between_chunks()
                with _naming(f"chunk {c}"):
                    transform = None
                    if how is not None:
                        augmentation, key = how
                        transform = partial(augmentation, rng=chunk_rng(key, c))
                    results[c] = compute_chunk(self.model, X, y, idx, a["slots"][c],
                                               transform)
        elif kind == "reduce":
            _, _, n_chunks, n, lo, hi = msg
            with _naming("the gradient reduction"):
                sum_chunks(a["slots"][:n_chunks, lo:hi], n, out=a["grad"][lo:hi])
        elif kind == "evaluate":
            _, _, split, run, want_scores = msg
            X, y = a[f"{split}.X"], a[f"{split}.y"]
            for c, lo, hi in run:
                self.between_chunks()
                with _naming(f"evaluation chunk {c}"):
                    results[c] = evaluate_chunk(self.model, X[lo:hi], y[lo:hi], want_scores)
        else:
            raise ValueError(f"unknown message {kind!r}")
        return results


class _ChunkFailed(Exception):
    def __init__(self, what, detail):
        super().__init__(what)
        self.what, self.detail = what, detail


class _naming:
    """Turn any exception raised by the model's code into a one-line description."""

    def __init__(self, what):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, _ChunkFailed):
            return False
        frames = traceback.extract_tb(tb)
        where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        detail = "".join(traceback.format_exception_only(exc)).strip().splitlines()[-1]
        raise _ChunkFailed(self.what, detail + where) from None


def compute_chunk(model, X, y, indices, grad_out, transform=None):
    """Loss sum of one chunk, its gradient sum written into ``grad_out``; ``transform``
    (images -> images), if given, is applied to the chunk's images first.

    A contiguous run of indices is sliced (no gather copy); the values, and so the
    bits, are the same as a gathered copy.
    """
    if len(indices) > 1 and indices[-1] - indices[0] == len(indices) - 1 and \
            np.all(np.diff(indices) == 1):
        sl = slice(int(indices[0]), int(indices[-1]) + 1)
        Xc, yc = X[sl], y[sl]
    else:
        Xc, yc = X[indices], y[indices]
    if transform is not None:
        Xc = transform(Xc)
    # Overflow is not an error here: the trainer checks loss and gradient for NaN/inf
    # after every step and stops with one clear line.
    with np.errstate(all="ignore"):
        loss_sum, _ = model.loss_sum_and_grads(Xc, yc, grad_out=grad_out)
    return float(loss_sum)


def evaluate_chunk(model, X, y, want_scores=False):
    """(loss sum, correct count, scores or None) of a forward pass on one chunk."""
    with np.errstate(all="ignore"):   # a diverged model evaluates to nan, not warnings
        scores, _ = model.forward(X)
        loss_sum, _ = model.loss(scores, y)
        correct = int(np.count_nonzero(model.loss.predict_labels(scores) == y))
    return float(loss_sum), correct, (np.array(scores) if want_scores else None)


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # Linux: KiB


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


def raise_worker_error(reply, worker):
    """Turn an ``("error", step, what, detail)`` reply into a one-line WorkerError."""
    _, step, what, detail = reply
    raise WorkerError(f"step {step}: {what} failed in worker {worker}: {detail}")
