"""The MPI backend (mpi4py): one rank per core, on one machine or many.

Launch every rank with the same command (``mpiexec -n 4 partrain train ...``, or
``mpiexec -n 4 python my_script.py`` calling ``partrain.fit``). Rank 0 coordinates
(optimizer, outputs, checkpoints, progress) and computes its share of the chunks like
every other rank; ranks > 0 only serve it (:meth:`MPIEngine.serve`).

Each rank reads the data itself, as from a shared filesystem, and keeps only the splits
it is given. Per step only these travel:

1. ``bcast`` of the step's message (each rank's chunks and their sample indices) and
   ``Bcast`` of the parameters (P numbers), from rank 0;
2. the ordered reduction, which keeps the local engine's bits: rank q owns parameter
   range q (:func:`param_ranges`). ``Alltoallv`` sends it every chunk's slice of that
   range; it adds them *in chunk order* (:func:`sum_chunks`, the one reduction every
   backend uses) and ``Gatherv`` brings the ranges to rank 0. A plain float
   ``Allreduce`` would add in an order that depends on the rank count, so the bits
   would change with it; ``scripts/benchmarks/mpi_cost.py`` measures what the ordered exchange
   costs against it (results/mpi/).
3. ``gather`` of each rank's loss sums (Python floats, exact).

:meth:`MPIEngine.run` is the one entry: every rank calls it with the same function;
rank 0 runs it while the others serve, and every rank returns its result (or raises
its error), so code above the engine never asks which rank it is on.

Faults: MPI ends the whole job when a rank dies (that is MPI's model, and partrain
does not hide it); the last checkpoint then resumes, with any number of ranks or
another backend, to the same bits. An error on one rank aborts the job
(``MPI_Abort``) rather than leaving the others waiting. Ctrl-C to ``mpiexec`` reaches
every rank; rank 0 stops at the step boundary, writes its checkpoint and outputs, and
releases the others.
"""

from __future__ import annotations

import numpy as np

from .. import log, signals
from ..errors import UsageError
from .base import Engine, raise_failure
from .host import keep_freed_memory, one_blas_thread
from .messages import Failure
from .partition import assign_chunks, chunk_bounds, param_ranges, sum_chunks
from .worker import Worker


def world():
    """MPI_COMM_WORLD (imports mpi4py, which initialises MPI, on first use)."""
    from mpi4py import MPI

    return MPI.COMM_WORLD


def rank():
    return world().Get_rank()


class MPIEngine(Engine):
    name = "mpi"
    # "allreduce": each rank adds its own chunks in order, then one MPI_Allreduce. Fewer
    # bytes (see results/mpi/cost.md), but the order of the additions, and so the bits,
    # depends on the rank count: resumes and reruns with another -n differ slightly.
    reductions = ("ordered", "allreduce")

    @classmethod
    def default_workers_for(cls):
        return world().Get_size()

    def __init__(self, model, splits, chunk_size, workers="auto", max_batch=None,
                 reduction="ordered"):
        comm = world()
        size = comm.Get_size()
        if workers not in (None, "auto", size):
            raise UsageError(f"under MPI every rank is a worker: `workers={workers}` does "
                             f"not match mpiexec -n {size}; drop `workers`")
        super().__init__(model, splits, chunk_size, workers="auto", max_batch=max_batch,
                         reduction=reduction)
        self.comm, self.rank = comm, comm.Get_rank()
        self.ranges = param_ranges(model.num_params, size)
        self._blas = None

    def run(self, main):
        """Every rank: start together; rank 0 calls ``main(engine)`` while the others
        serve it; every rank returns main's result, or raises its error."""
        self.start()
        if self.rank > 0:
            try:
                self.serve()
            finally:
                self.close()
            outcome, value = self.comm.bcast(None)
            _released[0] = True   # the job ended together: nobody waits for this rank
            if outcome == "raised":
                value.said_elsewhere = True   # rank 0 reports it, once for the job
                raise value
            return value
        try:
            result = main(self)
        except BaseException as exc:
            self.close()
            self.comm.bcast(("raised", exc))
            raise
        self.close()
        self.comm.bcast(("returned", result))
        return result

    # -- lifecycle --------------------------------------------------------------
    def _start(self):
        import cloudpickle

        keep_freed_memory()
        # Every rank computes with rank 0's model: the same classes and parameters,
        # whatever each rank's own copy of the script built.
        blob = self.comm.bcast(cloudpickle.dumps(self.model) if self.rank == 0 else None)
        model = self.model if self.rank == 0 else cloudpickle.loads(blob)
        P = model.num_params
        arrays = {"params": model.flat, "grad": self.grad,
                  "slots": np.empty((self.max_chunks, P), model.dtype)}
        for split, (X, y) in self.splits.items():
            arrays[f"{split}.X"], arrays[f"{split}.y"] = X, y
        self.worker = Worker(model, arrays, between_chunks=self._check_stop)
        self._blas = one_blas_thread()
        self._blas.__enter__()
        self.running = True
        _open_engines.append(self)

    def _check_stop(self):
        if self.rank == 0:
            signals.check()

    def _close(self):
        if getattr(self, "running", False) and self.rank == 0:
            self.comm.bcast(("stop",))
            _released[0] = True
        self.running = False
        if self in _open_engines:
            _open_engines.remove(self)
        if self._blas is not None:
            self._blas.__exit__(None, None, None)
            self._blas = None

    def serve(self):
        """Ranks > 0: answer rank 0's messages until it says stop."""
        while True:
            header = self.comm.bcast(None)
            if header[0] == "stop":
                self.running = False
                _open_engines.remove(self)
                return
            self._handle(header)

    # -- the collective steps, run by every rank ------------------------------------
    def _handle(self, header):
        """One exchange or reduction; rank 0 calls it with the header it broadcast."""
        if header[0] == "exchange":
            self.comm.Bcast(self.worker.a["params"])
            task = header[1].get(self.rank)
            reply = self.worker.reply(task) if task is not None else None
            return self.comm.gather(reply)
        _, n_chunks, batch = header
        if self.reduction == "allreduce":
            self._allreduce(n_chunks, batch)
        else:
            self._ordered_reduce(n_chunks, batch)

    def _exchange(self, tasks):
        header = ("exchange", tasks)
        self.comm.bcast(header)
        replies = self._handle(header)
        out = {}
        for rank, reply in enumerate(replies):
            if reply is None:
                continue
            if isinstance(reply, Failure):
                raise_failure(reply, f"rank {rank}")
            out[rank] = reply
        self._check_stop()
        return out

    def _reduce(self, n_chunks, batch, what):
        header = ("reduce", n_chunks, batch)
        self.comm.bcast(header)
        self._handle(header)

    def _ordered_reduce(self, n_chunks, batch):
        """grad = (sum of chunk slots in chunk order) / batch, each rank summing its own
        parameter range, then gathered on rank 0. Same bits as the local engines."""
        size = self.comm.Get_size()
        chunks = chunk_bounds(batch, self.chunk_size)
        assert len(chunks) == n_chunks
        counts = [len(run) for run in assign_chunks(chunks, size)]
        first = sum(counts[: self.rank])
        mine = self.worker.a["slots"][first : first + counts[self.rank]]
        widths = [hi - lo for lo, hi in self.ranges]
        send = np.concatenate([mine[:, lo:hi].ravel() for lo, hi in self.ranges])
        send_counts = [counts[self.rank] * w for w in widths]
        lo, hi = self.ranges[self.rank]
        recv = np.empty(n_chunks * (hi - lo), self.model.dtype)
        recv_counts = [c * (hi - lo) for c in counts]
        self.comm.Alltoallv([send, (send_counts, _displacements(send_counts))],
                            [recv, (recv_counts, _displacements(recv_counts))])
        # Ranks' chunk runs are contiguous and in rank order, so the received blocks,
        # one after another, are the slots of this range in chunk order.
        part = np.empty(hi - lo, self.model.dtype)
        sum_chunks(recv.reshape(n_chunks, hi - lo), batch, out=part)
        self.comm.Gatherv(part, [self.grad, (widths, _displacements(widths))]
                          if self.rank == 0 else None)

    def _allreduce(self, n_chunks, batch):
        """grad = (sum over ranks of each rank's own chunk sum) / batch: one Allreduce."""
        from mpi4py import MPI

        counts = [len(run) for run in assign_chunks(chunk_bounds(batch, self.chunk_size),
                                                   self.comm.Get_size())]
        first = sum(counts[: self.rank])
        local = np.zeros(self.model.num_params, self.model.dtype)
        for slot in self.worker.a["slots"][first : first + counts[self.rank]]:
            local += slot
        self.comm.Allreduce(local, self.grad, op=MPI.SUM)
        self.grad /= batch


_open_engines = []   # engines started and not yet closed in this rank


def abort_if_others_wait(code):
    """End every rank with MPI_Abort when this rank fails while the others may still be
    waiting for it (a rank > 0 before the job's outcome was shared, or rank 0 before it
    released them): a job must end, not hang. A job that ended together (its outcome
    shared by :meth:`MPIEngine.run`, error or not) ends without an abort."""
    comm = world()
    if comm.Get_size() > 1 and (_open_engines or not _released[0]):
        comm.Abort(code)


_released = [False]   # rank 0 has told the other ranks to stop


def _displacements(counts):
    return [0] + list(np.cumsum(counts)[:-1].tolist())
