"""Which samples each step uses: a function of (seed, epoch, step in epoch) only."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from .settings import BATCH_ORDERS


class Sampler:
    """Which samples each step uses: a function of (seed, epoch, step in epoch) only,
    so every backend, worker count and resumed run sees the same batches.

    An epoch is ceil(n / batch_size) steps whatever the order. ``order``:

    * ``"shuffle"`` (default): a new permutation every epoch, cut into batches; every
      sample once per epoch.
    * ``"ordered"``: the samples as stored, batch i = [i B, (i + 1) B) every epoch, as
      seed 004 walks its 8000 images. The same batches every epoch: with data stored
      sorted by class a batch can hold one class only.
    * ``"replacement"``: each step draws B indices uniformly with replacement, each step
      from its own stream, as seed 001's cs231n Solver does (``np.random.choice(n, B)``;
      it counts n // B steps an epoch, the same where B divides n). Some samples are
      seen twice in an epoch, others not at all.
    """

    def __init__(self, n, batch_size, seed, order="shuffle"):
        if order not in BATCH_ORDERS:
            raise UsageError(f"`batch_order` must be one of {', '.join(BATCH_ORDERS)}, "
                             f"got {order!r}")
        self.n, self.batch_size, self.seed, self.order = n, batch_size, seed, order
        self.steps_per_epoch = -(-n // batch_size)
        self._epoch, self._perm = None, None

    def batch(self, step):
        """step: 0-based global step -> (epoch, indices)."""
        epoch, i = divmod(step, self.steps_per_epoch)
        if self.order == "replacement":
            # Three numbers: never the stream of a permutation ([seed, epoch]).
            rng = np.random.default_rng([self.seed, epoch, i])
            return epoch, rng.integers(0, self.n, size=self.batch_size)
        if self.batch_size >= self.n:
            return epoch, np.arange(self.n)
        if self.order == "ordered":
            return epoch, np.arange(i * self.batch_size, min((i + 1) * self.batch_size, self.n))
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return epoch, self._perm[i * self.batch_size : (i + 1) * self.batch_size]
