"""Training settings: one dataclass, its defaults, and their validation, in one place.

The CLI, the Python API and resume all build a :class:`TrainSettings`; its defaults are
the CLI's defaults (every core, float32 models, chunks of 8).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError

# Settings of a model that names none (your own network); presets bring their seed's.
DEFAULT_TRAINING = dict(batch_size=32, epochs=1, optimizer="momentum", lr=0.01,
                        momentum=0.9, lr_decay=1.0, weight_decay=0.0,
                        batch_order="shuffle", momentum_reset="never")

# The choices of TrainSettings.batch_order and .momentum_reset (see their comments).
BATCH_ORDERS = ("shuffle", "ordered", "replacement")
MOMENTUM_RESETS = ("never", "epoch")


@dataclass
class TrainSettings:
    """How to run the loop. Which model, data and optimizer is not here: those are
    objects handed to the trainer."""

    steps: int | None = None             # optimizer steps; or
    epochs: int | None = None            # passes over the training split (default 1)
    batch_size: int | str = 32           # an int or "full"
    lr_decay: float = 1.0                # multiply the lr by this after every epoch
    seed: int = 0                        # which samples each step uses
    # How each step picks its samples (trainer.Sampler): "shuffle", a new permutation
    # every epoch; "ordered", the stored order every epoch, as seed 004; "replacement",
    # each batch drawn independently with replacement, as seed 001's cs231n Solver.
    # Shuffling is the default: every sample once per epoch, in a different order.
    batch_order: str = "shuffle"
    # "epoch" zeroes the optimizer's state (velocity, moments) at the first step of every
    # epoch, as seed 004 does (it restarts its momentum with each pass). "never" is the
    # default: the momentum carries over, as in one continuous run.
    momentum_reset: str = "never"
    # Random transforms of the training images, e.g. "flip,shift=2" (partrain.data.augment);
    # None: the images as stored.
    augment: str | None = None
    chunk_size: int | None = None        # None: default_chunk_size(batch)
    workers: int | str = "auto"          # an int or "auto" (one per physical core)
    backend: str | None = None           # None: chosen by the engine (see engine/)
    reduction: str = "ordered"           # "allreduce" (MPI only): faster, not bitwise
    eval_every: int | None = None        # steps between evaluations (default: per epoch)
    checkpoint_every: int | None = None  # steps between checkpoints (also on stop)
    progress: bool = True
    out: str | None = None               # run directory; None writes nothing
    overwrite: bool = False

    # Settings that change the parameters or the history; the others (workers, backend,
    # progress, where outputs go, how often to checkpoint) change only how fast.
    RESULT_FIELDS = ("batch_size", "lr_decay", "seed", "chunk_size", "eval_every",
                     "batch_order", "momentum_reset", "reduction", "augment")

    def resolved(self, n_train):
        """A copy with every None filled and every value checked (``n_train``: size of
        the training split, for "full" batches and epochs)."""
        s = dataclasses.replace(self)
        if s.steps is not None and s.epochs is not None:
            raise UsageError("give steps or epochs, not both")
        if s.steps is None and s.epochs is None:
            s.epochs = 1
        if s.batch_size == "full":
            s.batch_size = n_train
        for key in ("steps", "epochs", "batch_size", "chunk_size", "eval_every",
                    "checkpoint_every"):
            _positive_int(key, getattr(s, key), optional=True)
        if isinstance(s.seed, bool) or not isinstance(s.seed, (int, np.integer)) or s.seed < 0:
            raise UsageError(f"seed must be a non-negative integer, got {s.seed!r}")
        if s.batch_order not in BATCH_ORDERS:
            raise UsageError(f"batch order must be one of {', '.join(BATCH_ORDERS)}, "
                             f"got {s.batch_order!r}")
        if s.momentum_reset not in MOMENTUM_RESETS:
            raise UsageError(f"momentum reset must be one of {', '.join(MOMENTUM_RESETS)}, "
                             f"got {s.momentum_reset!r}")
        if not (isinstance(s.lr_decay, (int, float)) and math.isfinite(s.lr_decay)
                and 0 < s.lr_decay <= 1):
            raise UsageError(f"lr decay must lie in (0, 1], got {s.lr_decay!r}")
        from ..data.augment import parse
        from ..engine.base import check_worker_count

        augmentation = parse(s.augment)
        s.augment = str(augmentation) if augmentation else None   # one spelling per choice

        check_worker_count(s.workers)
        s.batch_size = min(int(s.batch_size), n_train)
        s.chunk_size = s.chunk_size or default_chunk_size(s.batch_size)
        steps_per_epoch = -(-n_train // s.batch_size)
        if s.steps is None:
            s.steps = s.epochs * steps_per_epoch
        if s.eval_every is None:
            s.eval_every = steps_per_epoch if steps_per_epoch > 1 else max(1, s.steps // 20)
        return s

    # Result fields added after checkpoints already existed: left out of the
    # fingerprint while unset, so those checkpoints still resume.
    LATER_FIELDS = ("augment",)

    def result_settings(self):
        return {k: getattr(self, k) for k in self.RESULT_FIELDS
                if not (k in self.LATER_FIELDS and getattr(self, k) is None)}

    def as_dict(self):
        return dataclasses.asdict(self)


def _positive_int(key, value, optional=False):
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UsageError(f"{key.replace('_', ' ')} must be a positive integer, got {value!r}")


def default_chunk_size(batch):
    """8 samples per chunk, more for huge batches so the per-chunk slots stay ~256.
    It depends on the batch size only, never on the worker count (determinism)."""
    return max(8, -(-batch // 256))
