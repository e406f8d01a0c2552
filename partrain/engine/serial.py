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
from .messages import Failure, GradientTask
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
        # One slot, which every chunk index maps to (a zero stride): each chunk's
        # gradient is folded into the sum as soon as it is computed (_exchange), while
        # it is still in cache, instead of max_chunks slots being written and read back.
        scratch = np.empty(self.model.num_params, self.model.dtype)
        slots = np.lib.stride_tricks.as_strided(
            scratch, (self.max_chunks, self.model.num_params), (0, scratch.strides[0]))
        arrays = {"params": self.model.flat, "grad": self.grad, "slots": slots}
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
            if isinstance(task, GradientTask):
                reply = self._gradient_chunk_by_chunk(task)
            else:
                reply = self.worker.reply(task)
            if isinstance(reply, Failure):
                raise_failure(reply, "0 (serial)")
            replies[w] = reply
        return replies

    def _gradient_chunk_by_chunk(self, task):
        """The task one chunk at a time, each chunk's gradient added to self.grad at
        once: self.grad = g0, then += g1, += g2, ... in chunk order, which is
        sum_chunks' order, so the same bits as every other backend."""
        scratch, seconds, results, reply = self.worker.a["slots"][0], 0.0, {}, None
        for i, chunk in enumerate(task.chunks):
            reply = self.worker.reply(task._replace(chunks=[chunk]))
            if isinstance(reply, Failure):
                return reply
            if i == 0:
                np.copyto(self.grad, scratch)
            else:
                self.grad += scratch
            seconds += reply.seconds
            results.update(reply.results)
        return reply._replace(seconds=seconds, results=results)

    def _reduce(self, n_chunks, batch, what):
        self.grad /= batch   # the chunks were added in _exchange
