"""The coordinator's side of every engine: the base class a backend subclasses.

A backend (serial, process, mpi) only moves tasks, replies and bytes; the work itself is
:mod:`.worker`, the partitioning and the reduction are :mod:`.partition`. A backend
supplies :meth:`Engine._start`, :meth:`Engine._exchange` (send tasks, collect replies),
:meth:`Engine._reduce` and :meth:`Engine._close`; counts, stats and partitioning come
from here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError, WorkerError
from .messages import EvaluateTask, Failure, GradientTask
from .partition import EVAL_CHUNK, assign_chunks, chunk_bounds, mean_loss
from .shared_memory import ensure_standard_fds
from .worker_count import resolve_workers

# A worker (or MPI rank) silent this long on a message counts as hung, in seconds:
# HANG_FACTOR x the slowest of its recent answers of that kind, at least HANG_FLOOR;
# HANG_FIRST before any answer was timed (a first step may compile, page in, warm up).
HANG_FACTOR, HANG_FLOOR, HANG_FIRST = 20.0, 10.0, 300.0


def hang_limit(seen):
    """Seconds a message may go unanswered, given recent answers' durations ``seen``."""
    return max(HANG_FLOOR, HANG_FACTOR * max(seen)) if seen else HANG_FIRST


@dataclass
class StepStats:
    """Timing of the last step, in seconds."""

    wall: float = 0.0            # whole gradient call as the coordinator saw it
    worker_compute: float = 0.0  # the slowest worker's forward+backward time
    overhead: float = 0.0        # wall - worker_compute: messaging, waiting, reduction


class Engine:
    """Computes ``(mean loss, mean gradient)`` of ``model`` on chunks of a batch, and
    evaluations, on ``workers`` processes.

    model: a :class:`partrain.nn.Sequential` (or anything with its interface).
    splits: ``{"train": (X, y), "val": ..., "test": ...}``, X (N, C, H, W) in the model
    dtype, y (N,) int64. ``gradient`` uses "train"; ``evaluate`` any split.
    ``gradient`` returns a flat gradient in a buffer the engine owns (valid until the
    next call), without weight decay (the trainer adds it).

    Use :meth:`run`: it starts the engine, runs the caller's function in the process
    that coordinates, and returns its result in every process of the job.
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
                             f"{' or '.join(self.reductions)}, not `reduction={reduction!r}`")
        self.reduction = reduction
        check_arguments(splits, chunk_size)
        self.model, self.splits = model, dict(splits)
        self.workers = resolve_workers(workers, self.default_workers_for())
        self.chunk_size = int(chunk_size)
        n_train = len(self.splits["train"][0])
        self.max_batch = int(max_batch or n_train)
        self.max_chunks = -(-self.max_batch // self.chunk_size)
        self.stats = StepStats()
        self.replacements = 0      # workers restarted after dying or hanging
        self.seq = 0               # tasks sent so far: matches replies to their task
        self.gradients = 0         # gradient calls so far
        self.started = False
        self.grad = np.empty(model.num_params, model.dtype)

    @classmethod
    def default_workers_for(cls):
        return cls.default_workers

    # -- lifecycle --------------------------------------------------------------
    def run(self, main):
        """Call ``main(engine)`` where the job is coordinated, close the engine, and
        return ``main``'s result. The workers start on the first gradient or
        evaluation, inside ``main``, so ``main`` sees a failed or interrupted start as
        it sees any other stop. Backends whose other processes only serve the
        coordinator (MPI ranks > 0) return the same result there, or raise the same
        error, so callers never ask which process they are in."""
        try:
            return main(self)
        finally:
            self.close()

    def start(self):
        """Start the workers (once); returns self. Safe to call close() after a failure."""
        if self.started:
            return self
        ensure_standard_fds()   # before any backend opens a file or starts a worker
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        self.started = True
        return self

    def close(self):
        """Stop the workers and free what they shared; the engine may start again."""
        self._close()
        self.started = False

    def _start(self):
        pass

    def _close(self):
        pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def peak_rss(self):
        """Peak resident bytes of each worker process (empty when there are none)."""
        return []

    # -- the work ---------------------------------------------------------------
    def gradient(self, indices, augment=None, key=(), what=None):
        """indices: (B,) positions into the training split -> (mean loss, grad (P,)).

        augment: an :class:`partrain.data.augment.Augmentation` (or None) applied to each
        chunk's images.
        key: the trainer's (seed, step); with the chunk index it keys the chunk's random
        draws (augmentation, dropout): the same on any worker count.
        what: what this gradient is for, in error messages (the trainer's "step 12");
        by default "step N", N counting this engine's gradients.
        """
        indices = np.asarray(indices, dtype=np.int64)
        if not 0 < len(indices) <= self.max_batch:
            raise ValueError(f"batch of {len(indices)} outside 1..max_batch {self.max_batch}")
        self.start()
        self.gradients += 1
        what = what or f"step {self.gradients}"
        t0 = time.perf_counter()
        chunks = chunk_bounds(len(indices), self.chunk_size)
        runs = assign_chunks(chunks, self.workers)
        seq = self._next_seq()
        key = tuple(int(k) for k in key)
        tasks = {w: GradientTask(seq, what, [(c, indices[lo:hi]) for c, lo, hi in run], key,
                                 augment or None)
                 for w, run in enumerate(runs) if run}
        replies = self._exchange(tasks)
        losses = _in_chunk_order(replies, len(chunks))
        self._reduce(len(chunks), len(indices), what)
        loss = mean_loss(losses, len(indices))
        wall = time.perf_counter() - t0
        compute = max(r.seconds for r in replies.values())
        self.stats = StepStats(wall, compute, max(wall - compute, 0.0))
        return loss, self.grad

    def evaluate(self, split, want_scores=False):
        """Forward passes over a whole split on every worker.

        Returns (mean loss, accuracy), plus scores (N, K) when ``want_scores``.
        """
        self.start()
        n = len(self.splits[split][0])
        chunks = chunk_bounds(n, EVAL_CHUNK)
        runs = assign_chunks(chunks, self.workers)
        seq = self._next_seq()
        tasks = {w: EvaluateTask(seq, f"evaluation of {split}", split, run, want_scores)
                 for w, run in enumerate(runs) if run}
        results = _in_chunk_order(self._exchange(tasks), len(chunks))
        loss = mean_loss([r[0] for r in results], n)
        accuracy = sum(r[1] for r in results) / n
        if want_scores:
            return loss, accuracy, np.concatenate([r[2] for r in results])
        return loss, accuracy

    def _next_seq(self):
        self.seq += 1
        return self.seq

    # -- what a backend supplies -------------------------------------------------
    def _exchange(self, tasks):
        """Deliver {worker index: task}; return {worker index: :class:`Reply`}."""
        raise NotImplementedError

    def _reduce(self, n_chunks, batch, what):
        """Fill ``self.grad`` with the chunk sum / batch, in chunk order."""
        raise NotImplementedError


def check_arguments(splits, chunk_size):
    """Refuse what no engine can work with: a bad chunk size, no training split."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
            or chunk_size < 1:
        raise UsageError(f"`chunk_size` must be a positive integer, got {chunk_size!r}")
    if "train" not in splits:
        raise UsageError("the engine needs a 'train' split")


def _in_chunk_order(replies, n_chunks):
    merged = {}
    for reply in replies.values():
        merged.update(reply.results)
    return [merged[c] for c in range(n_chunks)]


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, as text: the cause of the
    WorkerError, so a Python user sees where their code failed (as
    concurrent.futures does for its workers)."""

    def __str__(self):
        return "\n\n" + self.args[0]


def raise_failure(failure: Failure, worker):
    """Turn a :class:`Failure` reply into a one-line WorkerError caused by the worker's
    own traceback."""
    raise WorkerError(f"{failure.what}: {failure.where} failed in worker {worker}: "
                      f"{failure.detail}") from RemoteTraceback(failure.traceback)
