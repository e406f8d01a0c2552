"""The serial backend: the chunked computation in the coordinator process.

It is the reference the multi-process backend must match bit for bit, and the right
choice for tiny models where process messaging would cost more than the math.
"""

from __future__ import annotations

import time

import numpy as np

from .base import Engine, compute_chunk, one_blas_thread


class SerialEngine(Engine):
    name = "serial"

    def __init__(self, model, X, y, chunk_size, max_batch=None):
        super().__init__(model, X, y, chunk_size, max_batch)
        self.slots = np.empty((self.max_chunks, model.num_params), model.dtype)
        self.losses = np.zeros(self.max_chunks)
        self.workers = 1

    def _compute_chunks(self, indices, chunks):
        t0 = time.perf_counter()
        with one_blas_thread():
            for c, (lo, hi) in enumerate(chunks):
                self.losses[c] = compute_chunk(self.model, self.X, self.y, indices[lo:hi],
                                               self.slots[c])
        n = len(chunks)
        return self.slots[:n], self.losses[:n], time.perf_counter() - t0
