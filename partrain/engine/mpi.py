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
another backend, to the same bits. A rank that stays silent (stopped, stuck) is noticed
by rank 0 with the process backend's rule (20x the slowest recent answer, at least
10 s; :func:`.base.hang_limit`): every operation is nonblocking and rank 0 waits on it with that
deadline, then asks every rank for a sign of life (ranks answer while they wait) and
names the ones that give none; the run writes its checkpoint and the job ends
(``MPI_Abort``). An error on one rank aborts the job rather than leaving the others
waiting. Ctrl-C to ``mpiexec`` reaches every rank; rank 0 stops at the step boundary,
writes its checkpoint and outputs, and releases the others.

At the start every rank checks that the MPI library sees the processes the launcher
started, and that it holds rank 0's data (a hash of every split).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import pickle
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

from .. import signals
from ..errors import DataError, HungWorkerError, Interrupted, PartrainError, UsageError
from .base import Engine, hang_limit, raise_failure
from .host import keep_freed_memory, one_blas_thread
from .messages import Failure
from .partition import assign_chunks, chunk_bounds, param_ranges, sum_chunks
from .worker import Worker

_REPLY, _PING, _PONG = 1, 2, 3   # point-to-point tags; collectives need none
# A wait spins this long (as MPI's own blocking wait does), then sleeps between tests
# so an idle rank leaves its core to the others. MPI progresses a nonblocking
# collective only inside a test: spinning for 2 ms only made a lenet5-cat step 2.1x the
# process backend's instead of 1.16x (scripts/benchmarks/mpi_cost.py, 2 ranks).
SPIN_SECONDS, IDLE_SLEEP = 0.1, 0.0005
PING_SECONDS = 2.0   # how long rank 0 waits for the ranks' signs of life


def world():
    """MPI_COMM_WORLD (imports mpi4py, which initialises MPI, on first use)."""
    import warnings

    if "mpi4py.MPI" not in sys.modules:
        check_shared_memory_space()

    with warnings.catch_warnings():
        # mpi4py warns when the launcher is another MPI's; checked_world says it in
        # one line, with what to do.
        warnings.simplefilter("ignore")
        from mpi4py import MPI

    return MPI.COMM_WORLD


def rank():
    return world().Get_rank()


# MPICH 5 maps about this much of /dev/shm per rank of a host (2 ranks: 2,118,784
# bytes, 8: 8,462,848); a tmpfs with less free makes MPI_Init die of SIGBUS (exit 7).
SHM_BYTES_PER_RANK = 1_060_000


def free_shared_memory():
    """Bytes free in /dev/shm (None where it cannot be read)."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def check_shared_memory_space():
    """Before MPI starts: refuse, in one line, a /dev/shm too small for MPI's shared
    memory between this host's ranks, which MPI_Init would meet as a bus error."""
    from . import launcher_rank, launcher_size

    local = _int_env("MPI_LOCALNRANKS") or launcher_size()[0]
    free = free_shared_memory()
    needed = local * SHM_BYTES_PER_RANK
    if local > 1 and free is not None and free < needed:
        error = PartrainError(
            f"/dev/shm has {free / 2**20:.1f} MiB free; MPI's shared memory for the "
            f"{local} ranks on this host needs about {needed / 2**20:.1f} MiB: give "
            "/dev/shm more room (docker run --shm-size=256m, or mount -o remount,"
            "size=256m /dev/shm) or start fewer ranks per host")
        error.said_elsewhere = launcher_rank() > 0   # every rank meets it: say it once
        raise error


def _int_env(var):
    try:
        return int(os.environ[var])
    except (KeyError, ValueError):
        return None


def checked_world():
    """MPI_COMM_WORLD, refused when the launcher started several processes but this MPI
    library sees one: each would train alone, as many copies of one run."""
    from . import launcher_rank, launcher_size

    comm = world()
    size, var = launcher_size()
    if size > 1 and comm.Get_size() == 1:
        from mpi4py import MPI

        library = MPI.Get_library_version().strip().splitlines()[0].split("Version")[0]
        beside = Path(sys.executable).parent / "mpiexec"
        use = f"run {beside}" if beside.exists() else "run the mpiexec of that MPI"
        error = PartrainError(
            f"the launcher started {'at least ' if var == 'MPI_LOCALNRANKS' else ''}"
            f"{size} processes ({var}={os.environ[var]}) but the MPI library mpi4py "
            f"loaded ({' '.join(library.split()) or 'unknown'}) sees 1: mpiexec comes "
            f"from a different MPI than mpi4py's; {use}, or point MPI4PY_LIBMPI at the "
            "launcher's libmpi")
        error.said_elsewhere = launcher_rank() > 0   # every process meets it: say it once
        raise error
    return comm


def forget_shared_memory_names():
    """Unlink the /dev/shm names of the MPICH segments this process has mapped.

    MPICH names its node's shared memory ``/dev/shm/mpich_shm_*`` and removes it only
    in MPI_Finalize, so a killed rank or an MPI_Abort leaves 2 MB behind for good. Once
    every rank of the job has started (call after a collective), the name is no longer
    needed: the mappings stay, and the memory goes with the last process. Only names in
    this process's own mappings are touched, never another job's."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(maxsplit=5)[5].strip() for line in maps
                     if len(line.split(maxsplit=5)) == 6}
    except OSError:
        return
    for path in paths:
        if path.startswith("/dev/shm/mpich_shm_") and not path.endswith("(deleted)"):
            try:
                os.unlink(path)
            except OSError:
                pass


class MPIEngine(Engine):
    name = "mpi"
    # "allreduce": each rank adds its own chunks in order, then one MPI_Allreduce. Fewer
    # bytes (see results/mpi/cost.md), but the order of the additions, and so the bits,
    # depends on the rank count: resumes and reruns with another -n differ slightly.
    reductions = ("ordered", "allreduce")

    @classmethod
    def default_workers_for(cls):
        return checked_world().Get_size()

    def __init__(self, model, splits, chunk_size, workers="auto", max_batch=None,
                 reduction="ordered"):
        comm = checked_world()
        size = comm.Get_size()
        if workers not in (None, "auto", size):
            raise UsageError(f"under MPI every rank is a worker: `workers={workers}` does "
                             f"not match mpiexec -n {size}; drop `workers`")
        super().__init__(model, splits, chunk_size, workers="auto", max_batch=max_batch,
                         reduction=reduction)
        self.comm, self.rank = comm, comm.Get_rank()
        self.ranges = param_ranges(model.num_params, size)
        self._blas = None
        # Rank 0's wall time of each kind of message, for the hang limit.
        self.durations = {k: deque(maxlen=20) for k in ("gradient", "reduce", "evaluate")}
        self._sent_at = time.monotonic()
        # Rank 0 broadcast a step's header and the others are inside that step, waiting
        # for rank 0's part of it: leaving now, only MPI_Abort can end the job.
        self._mid_step = False

    def run(self, main):
        """Every rank: start together; rank 0 calls ``main(engine)`` while the others
        serve it; every rank returns main's result, or raises its error."""
        self.start()
        if self.rank > 0:
            try:
                self.serve()
            finally:
                self.close()
            outcome, value = self._bcast_object(None, "end")
            _released[0] = True   # the job ended together: nobody waits for this rank
            if outcome == "raised":
                value.said_elsewhere = True   # rank 0 reports it, once for the job
                raise value
            return value
        try:
            result = main(self)
        except BaseException as exc:
            if self._mid_step:   # no collective can reach ranks waiting inside a step
                _broken[0] = True
                raise
            self.close()
            if not _broken[0]:
                self._bcast_object(("raised", exc), "end")
            raise
        self.close()
        self._bcast_object(("returned", result), "end")
        return result

    # -- lifecycle --------------------------------------------------------------
    def _start(self):
        import cloudpickle

        keep_freed_memory()
        self._check_same_data()   # a collective: every rank has started MPI
        forget_shared_memory_names()
        # Every rank computes with rank 0's model: the same classes and parameters,
        # whatever each rank's own copy of the script built.
        blob = self._bcast_object(cloudpickle.dumps(self.model) if self.rank == 0 else None,
                                  "start")
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

    def _check_same_data(self):
        """Every rank reads its data itself; a rank that read other files (another
        path, a stale copy on another host) would add gradients of other samples."""
        h = hashlib.blake2b(digest_size=32)
        for split, (X, y) in sorted(self.splits.items()):
            for a in (X, y):
                a = np.ascontiguousarray(a)
                h.update(f"{split}{a.shape}{a.dtype.str}".encode())
                h.update(a.data)
        mine = np.frombuffer(h.digest(), np.uint8)
        every = np.empty((self.comm.Get_size(), mine.size), np.uint8)
        self._sent_at = time.monotonic()
        self._wait([self.comm.Iallgather(mine, every)], "start", "the start")
        other = [r for r in range(len(every)) if not np.array_equal(every[r], every[0])]
        if other:
            _released[0] = True   # every rank knows, and stops: nobody waits
            error = DataError(
                f"rank{'s' if len(other) > 1 else ''} {', '.join(map(str, other))} read "
                f"different data from rank 0 (the arrays' shapes or bytes differ): every "
                "rank must read the same data path with the same files")
            error.said_elsewhere = self.rank > 0
            raise error

    def _check_stop(self):
        if self.rank == 0:
            signals.check()

    def _close(self):
        if getattr(self, "running", False) and self.rank == 0 and not _broken[0]:
            self._bcast_object(("stop",), "end")
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
            header = self._bcast_object(None, "header")
            if header[0] == "stop":
                self.running = False
                _open_engines.remove(self)
                return
            self._handle(header)

    # -- waiting, with rank 0's deadline ------------------------------------------
    def _wait(self, requests, kind, what, test=None):
        """Complete ``requests`` (nonblocking MPI operations; ``test()``, if given, is
        more work that must finish: True when done). Ranks > 0 wait as long as it takes,
        answering rank 0's pings; rank 0 gives up after the hang limit, counted from
        the message's start (``self._sent_at``)."""
        from mpi4py import MPI

        spin_until = time.monotonic() + SPIN_SECONDS
        while True:
            done = MPI.Request.Testall(requests) if requests else True
            if test is not None:
                done = test() and done
            if done:
                return
            if self.rank > 0:
                self._answer_ping()
            if time.monotonic() > spin_until:
                time.sleep(IDLE_SLEEP)
                if self.rank == 0:
                    limit = self.allowed_seconds(kind)
                    if time.monotonic() - self._sent_at > limit:
                        self._declare_silent(what, limit)

    def allowed_seconds(self, kind):
        """The process backend's rule (:func:`.base.hang_limit`) over the last 20
        answers of this kind (of any kind, for control messages)."""
        seen = self.durations.get(kind) or [d for q in self.durations.values() for d in q]
        return hang_limit(seen)

    def _answer_ping(self):
        if self.comm.iprobe(source=0, tag=_PING):
            ping = self.comm.recv(source=0, tag=_PING)
            self.comm.send((self.rank, ping), dest=0, tag=_PONG)

    def _declare_silent(self, what, limit):
        """Rank 0, past the limit: ask every rank for a sign of life; the ones that give
        none are named, and the job is marked for MPI_Abort (nothing can be said to a
        rank that does not listen). Everyone answering means the wait goes on."""
        waited = time.monotonic() - self._sent_at
        size = self.comm.Get_size()
        _pings.append(len(_pings))
        _pings_sent.extend(self.comm.isend(_pings[-1], dest=r, tag=_PING)
                           for r in range(1, size))
        answered = set()
        deadline = time.monotonic() + PING_SECONDS
        while len(answered) < size - 1 and time.monotonic() < deadline:
            if self.comm.iprobe(tag=_PONG):
                r, ping = self.comm.recv(tag=_PONG)
                if ping == _pings[-1]:   # not a late answer to an earlier ping
                    answered.add(r)
            else:
                time.sleep(0.01)
        silent = [r for r in range(1, size) if r not in answered]
        if not silent:
            self._sent_at = time.monotonic()
            return
        _broken[0] = True
        s = "s" if len(silent) > 1 else ""
        raise HungWorkerError(
            f"{what}: rank{s} {', '.join(map(str, silent))} sent nothing for {waited:.1f} s "
            f"(limit {limit:.1f} s) and do{'' if s else 'es'} not answer; ending the MPI job")

    def _bcast_object(self, obj, kind, what=None):
        """Rank 0's ``obj`` on every rank: its pickled length, then its bytes."""
        if self.rank == 0:
            self._sent_at = time.monotonic()
            data = np.frombuffer(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL), np.uint8)
            length = np.array([data.size], np.int64)
        else:
            length = np.empty(1, np.int64)
        what = what or ("the start" if kind == "start" else "the end of the run")
        self._wait([self.comm.Ibcast(length, root=0)], kind, what)
        if self.rank > 0:
            data = np.empty(int(length[0]), np.uint8)
        self._wait([self.comm.Ibcast(data, root=0)], kind, what)
        return obj if self.rank == 0 else pickle.loads(data)

    # -- the collective steps, run by every rank ------------------------------------
    def _handle(self, header, what=None):
        """One exchange or reduction; rank 0 calls it with the header it broadcast."""
        if header[0] == "exchange":
            tasks = header[1]
            kind = next(iter(tasks.values())).kind
            what = what or next(iter(tasks.values())).what
            self._wait([self.comm.Ibcast(self.worker.a["params"], root=0)], kind, what)
            task = tasks.get(self.rank)
            if self.rank > 0:
                reply = self.worker.reply(task) if task is not None else None
                self._wait([self.comm.isend(reply, dest=0, tag=_REPLY)], kind, what)
                return None
            stop = None
            try:
                mine = self.worker.reply(task) if task is not None else None
            except Interrupted as exc:
                # The others are computing and will send: take their replies first, so
                # no rank is left waiting on a send when the run stops.
                stop, mine = exc, None
            replies = self._collect(kind, what)
            self._mid_step = False
            replies[0] = mine
            if stop is not None:
                raise stop
            return replies
        _, n_chunks, batch = header
        what = what or "the gradient reduction"
        if self.reduction == "allreduce":
            self._allreduce(n_chunks, batch, what)
        else:
            self._ordered_reduce(n_chunks, batch, what)
        self._mid_step = False
        return None

    def _collect(self, kind, what):
        """Rank 0: every other rank's reply to this exchange, in rank order."""
        size = self.comm.Get_size()
        replies, receiving = [None] * size, {}
        waiting = set(range(1, size))

        def test():
            for r in sorted(waiting):
                if r not in receiving:
                    message = self.comm.improbe(source=r, tag=_REPLY)
                    if message is not None:
                        receiving[r] = message.irecv()
                if r in receiving:
                    done, value = receiving[r].test()
                    if done:
                        replies[r] = value
                        waiting.discard(r)
            return not waiting

        self._wait([], kind, what, test)
        return replies

    def _exchange(self, tasks):
        header = ("exchange", tasks)
        kind = next(iter(tasks.values())).kind
        self._mid_step = True
        self._bcast_object(header, kind, next(iter(tasks.values())).what)
        replies = self._handle(header)
        self.durations[kind].append(time.monotonic() - self._sent_at)
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
        self._mid_step = True
        self._bcast_object(header, "reduce", what)
        self._handle(header, what)
        self.durations["reduce"].append(time.monotonic() - self._sent_at)

    def _ordered_reduce(self, n_chunks, batch, what):
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
        self._wait([self.comm.Ialltoallv(
            [send, (send_counts, _displacements(send_counts))],
            [recv, (recv_counts, _displacements(recv_counts))])], "reduce", what)
        # Ranks' chunk runs are contiguous and in rank order, so the received blocks,
        # one after another, are the slots of this range in chunk order.
        part = np.empty(hi - lo, self.model.dtype)
        sum_chunks(recv.reshape(n_chunks, hi - lo), batch, out=part)
        self._wait([self.comm.Igatherv(part, [self.grad, (widths, _displacements(widths))]
                                       if self.rank == 0 else None)], "reduce", what)

    def _allreduce(self, n_chunks, batch, what):
        """grad = (sum over ranks of each rank's own chunk sum) / batch: one Allreduce."""
        from mpi4py import MPI

        counts = [len(run) for run in assign_chunks(chunk_bounds(batch, self.chunk_size),
                                                   self.comm.Get_size())]
        first = sum(counts[: self.rank])
        local = np.zeros(self.model.num_params, self.model.dtype)
        for slot in self.worker.a["slots"][first : first + counts[self.rank]]:
            local += slot
        self._wait([self.comm.Iallreduce(local, self.grad, op=MPI.SUM)], "reduce", what)
        self.grad /= batch


_open_engines = []   # engines started and not yet closed in this rank


def abort_if_others_wait(code):
    """End every rank with MPI_Abort when this rank fails while the others may still be
    waiting for it (a rank > 0 before the job's outcome was shared, or rank 0 before it
    released them, or after a rank fell silent): a job must end, not hang. A job that
    ended together (its outcome shared by :meth:`MPIEngine.run`, error or not) ends
    without an abort."""
    comm = world()
    if comm.Get_size() > 1 and (_open_engines or not _released[0] or _broken[0]):
        _broken[0] = False   # MPICH's abort runs the exit handlers: not a second one
        _abort_quietly(comm, code)


_released = [False]   # rank 0 has told the other ranks to stop
_pings, _pings_sent = [], []   # rank 0's pings so far, and their sends (kept alive)
_broken = [False]     # a rank fell silent: only MPI_Abort can end the job


@atexit.register
def _abort_if_broken():
    # A script that called partrain.fit and let the error end it: MPI_Finalize would
    # wait for the silent rank forever.
    if _broken[0]:
        _broken[0] = False
        _abort_quietly(world(), 1)


def _abort_quietly(comm, code):
    """MPI_Abort without MPICH's "application called MPI_Abort" line: the reason has
    been said already (the command's one line, or the script's traceback)."""
    sys.stdout.flush()
    sys.stderr.flush()
    _wait_until_read((1, 2))
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    comm.Abort(code)


def _wait_until_read(fds, limit=2.0):
    """Wait, at most ``limit`` seconds, until whoever reads the pipes ``fds`` (the
    launcher's proxy) has read everything this rank wrote to them. MPI_Abort tears the
    job down at once, and the launcher drops what it had not read yet: the end of the
    output, where the reason is (``python scripts/stress/abort_output.py`` counts how
    often, with and without this wait). Files and terminals need no wait."""
    try:
        import fcntl
        import stat
        import termios
    except ImportError:   # not a POSIX system
        return
    deadline = time.monotonic() + limit
    for fd in fds:
        try:
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                continue
            while time.monotonic() < deadline and \
                    int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, bytes(4)), sys.byteorder):
                time.sleep(0.005)
        except OSError:   # closed, or a pipe that cannot say how full it is
            continue


def _displacements(counts):
    return [0] + list(np.cumsum(counts)[:-1].tolist())
