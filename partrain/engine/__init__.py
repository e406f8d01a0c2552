"""Gradient engines: compute the exact batch-mean gradient of a model over chunks.

Backends follow joblib's pattern: one small base class (:class:`Engine`), a registry
by name (:data:`BACKENDS`), each backend one module that owns its worker count. Only
this package knows which backend runs; the trainer gets an engine from
:func:`make_engine`.
"""

import importlib
import os

from ..errors import UsageError
from .base import Engine, StepStats, assign_chunks, chunk_bounds, param_ranges

# name -> "module:class", imported only when chosen (mpi4py is optional).
BACKENDS = {
    "serial": "partrain.engine.serial:SerialEngine",
    "process": "partrain.engine.process:ProcessEngine",
    "mpi": "partrain.engine.mpi:MPIEngine",
}

# Set in every rank by the launchers of MPICH, Open MPI, Intel MPI and Slurm.
_MPI_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE")


def launched_by_mpi():
    """True when this process is one of several ranks started by mpiexec/srun."""
    for var in _MPI_SIZE_VARIABLES:
        try:
            if int(os.environ.get(var, "1")) > 1:
                return True
        except ValueError:
            pass
    return False


def is_main_process():
    """True except in MPI ranks > 0 (which neither print nor write outputs)."""
    if not launched_by_mpi():
        return True
    from .mpi import _comm

    return _comm().Get_rank() == 0


def end_process(exit_code):
    """Call as a command ends: under MPI a failing rank ends the whole job, so no rank is
    left waiting for it (see mpi.abort_if_others_wait)."""
    if exit_code and launched_by_mpi():
        from .mpi import abort_if_others_wait

        abort_if_others_wait(exit_code)


def backend_class(name):
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise UsageError(f"backend {name!r} needs a package that is not installed "
                         f"({exc.name}); for mpi: pip install 'partrain[mpi]'") from None


def choose_backend(backend=None, workers="auto"):
    """The backend name to use: the one asked for, else mpi under mpiexec, else
    process for several workers and serial for one."""
    if backend not in (None, "auto"):
        backend_class(backend)   # validates the name
        return backend
    if launched_by_mpi():
        return "mpi"
    if workers == 1:
        return "serial"
    if workers in (None, "auto") and backend_class("process").default_workers_for() == 1:
        return "serial"
    return "process"


def make_engine(model, splits, chunk_size, backend=None, workers="auto", max_batch=None,
                **options):
    """Build (not start) an engine. splits: {"train": (X, y), ...}."""
    cls = backend_class(choose_backend(backend, workers))
    return cls(model, splits, chunk_size, workers=workers, max_batch=max_batch, **options)


__all__ = ["Engine", "StepStats", "chunk_bounds", "assign_chunks", "param_ranges",
           "make_engine", "choose_backend", "backend_class", "launched_by_mpi",
           "is_main_process", "end_process", "BACKENDS"]
