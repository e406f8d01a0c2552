"""Gradient engines: compute the exact batch-mean gradient of a model over chunks.

Backends follow joblib's pattern: one small base class (:class:`Engine`), a registry
by name (:data:`BACKENDS`), each backend one module that owns its worker count. Only
this package knows which backend runs and which process (MPI rank) this is; above it,
code gets an engine from :func:`make_engine` and calls :meth:`Engine.run`, or calls
:func:`forward_scores`, and ends a command with :func:`end_process`.

Modules: ``partition`` (chunks, ranges, the one reduction), ``messages`` (tasks and
replies), ``worker`` (what a worker does with a task), ``base`` (the coordinator's
side), ``host`` (BLAS threads, allocator, memory), ``worker_count``, ``shared_memory``,
and one module per backend: ``serial``, ``process``, ``mpi``.
"""

import importlib
import os

import numpy as np

from ..errors import UsageError
from .base import Engine, StepStats, check_arguments
from .partition import EVAL_CHUNK
from .worker_count import check_worker_count

# name -> "module:class", imported only when chosen (mpi4py is optional).
BACKENDS = {
    "serial": "partrain.engine.serial:SerialEngine",
    "process": "partrain.engine.process:ProcessEngine",
    "mpi": "partrain.engine.mpi:MPIEngine",
}

# Every way chunk gradients can be added; "ordered" (chunk order: the same bits on any
# worker count) is the default and every backend's; see Engine.reductions.
REDUCTIONS = ("ordered", "allreduce")

# What a launcher tells each process it starts: the job's size, as (variable, how to
# read it). PMI_SIZE: MPICH's hydra, Intel MPI, Slurm's PMI-2; OMPI_COMM_WORLD_SIZE:
# Open MPI; PMIX_SIZE: PMIx launchers that set it. MPI_LOCALNRANKS (hydra) counts only
# this host's ranks, so it says "at least". SLURM_NTASKS is left out: an sbatch script
# has it without being one of several ranks.
_MPI_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")
_MPI_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")


def _int_variable(var):
    try:
        return int(os.environ.get(var, ""))
    except ValueError:
        return None


def launcher_size():
    """(processes, variable) as the launcher reports them, the largest count it states;
    (1, None) outside a launcher of several processes."""
    best = (1, None)
    for var in _MPI_SIZE_VARIABLES:
        n = _int_variable(var)
        if n is not None and n > best[0]:
            best = (n, var)
    return best


def launcher_rank():
    """This process's rank as the launcher numbered it (0 when none says)."""
    for var in _MPI_RANK_VARIABLES:
        n = _int_variable(var)
        if n is not None:
            return n
    return 0


def launched_by_mpi():
    """True when this process is one of several ranks started by mpiexec/srun."""
    return launcher_size()[0] > 1


def begin_process():
    """Call as a command starts: standard descriptors 0-2 are made valid before any
    file is opened (see shared_memory.ensure_standard_fds); a process that only serves
    another (an MPI rank > 0) says nothing, so a job prints each line once. The
    launcher's numbering counts too: where mpiexec and mpi4py's MPI differ, every
    process believes it is rank 0, and the one error they all meet is said once. MPI's
    shared memory loses its /dev/shm name once every rank has it, so no kill or abort
    leaves a segment behind."""
    from .shared_memory import ensure_standard_fds

    ensure_standard_fds()
    if launched_by_mpi():
        from .. import log
        from .mpi import forget_shared_memory_names, world

        if world().Get_rank() > 0 or launcher_rank() > 0:
            log.silence()
        world().Barrier()   # every rank has started MPI: its segment's name can go
        forget_shared_memory_names()


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
        if backend != "mpi" and launched_by_mpi():
            size, var = launcher_size()
            # Every rank would run the whole training on its own and write the same
            # run directory.
            raise UsageError(f"`backend={backend!r}` under mpiexec ({var}={size}): each of "
                             f"the {size} processes would train the whole run into the "
                             "same `out`; drop `backend` to train one run on every rank, "
                             "or start a single process without mpiexec")
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
    """Build (not start) an engine. splits: {"train": (X, y), ...}.

    workers "auto" on this machine: the count :func:`.worker_count.auto_workers`
    predicts fastest for a step of ``max_batch`` samples, timed on one chunk here;
    one worker is the serial backend (no process to talk to)."""
    check_arguments(splits, chunk_size)
    if workers in (None, "auto") and backend in (None, "auto", "process") \
            and not launched_by_mpi():
        workers = _auto_local_workers(model, splits["train"], chunk_size, max_batch)
        if backend in (None, "auto"):
            backend = "serial" if workers == 1 else "process"
    cls = backend_class(choose_backend(backend, workers))
    return cls(model, splits, chunk_size, workers=workers, max_batch=max_batch, **options)


def _auto_local_workers(model, train, chunk_size, max_batch):
    from .worker_count import auto_workers, chunk_seconds

    X, y = train
    cores = backend_class("process").default_workers_for()
    chunks = -(-int(max_batch or len(X)) // int(chunk_size))
    if min(cores, chunks) <= 1:
        return 1
    return auto_workers(cores, chunks, chunk_seconds(model, X, y, chunk_size))


def forward_scores(model, X, y=None, workers="auto"):
    """A forward pass over images X (N, *input_shape) on every core (every rank under
    MPI). Returns (scores (N, K), mean loss, accuracy); loss and accuracy are None
    without labels y (N,). A split of one evaluation chunk or less runs here, in this
    process (one worker is the serial backend): starting workers would cost more than
    it saves."""
    labels = np.zeros(len(X), np.int64) if y is None else y
    if workers in (None, "auto") and not launched_by_mpi():
        # A forward pass costs little per chunk: one worker per chunk, up to the cores.
        cores = backend_class("process").default_workers_for()
        workers = max(1, min(cores, -(-len(X) // EVAL_CHUNK)))
    engine = make_engine(model, {"train": (X, labels)}, EVAL_CHUNK, workers=workers)
    loss, accuracy, scores = engine.run(lambda e: e.evaluate("train", want_scores=True))
    return (scores, None, None) if y is None else (scores, loss, accuracy)


__all__ = ["Engine", "StepStats", "BACKENDS", "REDUCTIONS", "EVAL_CHUNK", "make_engine", "forward_scores",
           "choose_backend", "backend_class", "check_worker_count", "launched_by_mpi",
           "launcher_size",
           "begin_process", "end_process"]
