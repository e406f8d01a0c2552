"""The serial backend: the chunked computation in the coordinator process.

It is the reference the multi-process backend must match bit for bit, and the right
choice for tiny models where process messaging would cost more than the math.
"""

from __future__ import annotations

import time

import numpy as np

from threadpoolctl import threadpool_limits

from .base import Engine, compute_chunk, keep_freed_memory


class SerialEngine(Engine):
    name = "serial"

    def __init__(self, model, X, y, chunk_size, max_batch=None, blas_threads=1):
        super().__init__(model, X, y, chunk_size, max_batch)
        # 1 for the deterministic reference; more only for the multi-threaded-BLAS
        # baseline of `partrain scale` (whose bits may then depend on the thread count).
        self.blas_threads = blas_threads
        self.slots = np.empty((self.max_chunks, model.num_params), model.dtype)
        self.losses = np.zeros(self.max_chunks)
        self.workers = 1

    def start(self):
        keep_freed_memory()   # the coordinator computes every chunk itself
        return self

    def _compute_chunks(self, indices, chunks):
        t0 = time.perf_counter()
        with threadpool_limits(limits=self.blas_threads, user_api="blas"):
            for c, (lo, hi) in enumerate(chunks):
                self.losses[c] = compute_chunk(self.model, self.X, self.y, indices[lo:hi],
                                               self.slots[c])
        n = len(chunks)
        return self.slots[:n], self.losses[:n], time.perf_counter() - t0
