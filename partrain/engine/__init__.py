"""Gradient engines: compute the exact batch-mean gradient of a model over chunks.

Backends follow joblib's pattern: one small base class (:class:`Engine`), chosen by
name with :func:`make_engine`, each backend in its own module.
"""

from ..errors import UsageError
from .base import Engine, StepStats, chunk_bounds

BACKENDS = ("serial", "process")


def make_engine(backend, model, X, y, chunk_size, workers=1, max_batch=None, blas_threads=1):
    """Build (not start) the engine called ``backend``: "serial" or "process"."""
    if backend == "serial":
        from .serial import SerialEngine
        return SerialEngine(model, X, y, chunk_size, max_batch=max_batch,
                            blas_threads=blas_threads)
    if backend == "process":
        from .process import ProcessEngine
        return ProcessEngine(model, X, y, chunk_size, workers=workers, max_batch=max_batch)
    raise UsageError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")


__all__ = ["Engine", "StepStats", "chunk_bounds", "make_engine", "BACKENDS"]
