"""The serial backend: the chunked computation in the coordinator process.

It is the reference the multi-process backends must match bit for bit, and the right
choice for tiny models where process messaging would cost more than the math.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from .. import signals
from .base import Engine, raise_failure
from .host import keep_freed_memory
from .messages import Failure
from .partition import sum_chunks
from .worker import Worker


class SerialEngine(Engine):
    name = "serial"

    def __init__(self, model, splits, chunk_size, workers="auto", max_batch=None,
                 reduction="ordered", blas_threads=1):
        super().__init__(model, splits, chunk_size, workers=1, max_batch=max_batch,
                         reduction=reduction)
        # 1 for the deterministic reference; more only for the multi-threaded-BLAS
        # baseline of `partrain scale` (whose bits may then depend on the thread count).
        self.blas_threads = blas_threads

    def _start(self):
        keep_freed_memory()   # the coordinator computes every chunk itself
        arrays = {"params": self.model.flat, "grad": self.grad,
                  "slots": np.empty((self.max_chunks, self.model.num_params), self.model.dtype)}
        for split, (X, y) in self.splits.items():
            arrays[f"{split}.X"], arrays[f"{split}.y"] = X, y
        # A stop request is honoured between chunks: nothing is half done there.
        self.worker = Worker(self.model, arrays, between_chunks=signals.check)
        # Pinned once for the engine's life, as the process engine pins its coordinator:
        # entering threadpool_limits on every exchange cost about 2 ms a step.
        self._blas = threadpool_limits(limits=self.blas_threads, user_api="blas")
        self._blas.__enter__()

    def _close(self):
        self.worker = None
        if getattr(self, "_blas", None) is not None:
            self._blas.__exit__(None, None, None)
            self._blas = None

    def _exchange(self, tasks):
        replies = {}
        for w, task in tasks.items():
            reply = self.worker.reply(task)
            if isinstance(reply, Failure):
                raise_failure(reply, "0 (serial)")
            replies[w] = reply
        return replies

    def _reduce(self, n_chunks, batch, what):
        sum_chunks(self.worker.a["slots"][:n_chunks], batch, out=self.grad)
