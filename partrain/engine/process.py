"""The process backend: persistent worker processes on this machine, shared memory.

Memory: every large array lives in an *anonymous* shared-memory file (``memfd_create``)
that the coordinator hands to its workers as an inherited file descriptor:

* ``<split>.X``, ``<split>.y`` for train, val, test: copied in once, never sent again;
* ``params`` (P,): the coordinator's model is re-bound to it, so the optimizer's
  in-place update *is* the broadcast;
* ``slots`` (max_chunks, P): one gradient sum per chunk; ``grad`` (P,): their mean.

(:mod:`.shared_memory`: anonymous, so nothing outlives the processes that map it.)

Workers are started with ``python -c`` (not ``multiprocessing``), so they never
re-import the user's ``__main__``: a script needs no ``if __name__ == "__main__"``
guard, and a model defined in a notebook or ``python -c`` works. The model itself
travels to them pickled with cloudpickle (which joblib already depends on): it pickles
classes defined in ``__main__`` or a notebook *by value*, where the standard pickle
would only name them and fail in the worker.

A step sends each worker a small message over its socket (its chunks' sample indices,
or its parameter range to reduce); see :mod:`.messages`. A small gradient (at most
``LOCAL_REDUCE_ELEMENTS`` chunk-elements) is reduced by the coordinator itself, with the
same function in the same order, saving the second round trip.

Failures: the coordinator waits on the sockets and the process handles with a short
timeout, so a dead worker is noticed at once and a stop request within a fraction of a
second. A worker that stays silent past :meth:`ProcessEngine.allowed_seconds` (20x the
slowest recent answer, at least 10 s) is taken as hung (stopped, stuck, swapped out):
it is killed. A dead or hung worker is replaced and its message sent again: the work
rewrites only its own slots or range, so doing it twice changes no bit. Workers
die with the coordinator (``PR_SET_PDEATHSIG``) and sit in their own session, so a
terminal's Ctrl-C or hang-up reaches only the coordinator, which stops them cleanly.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from multiprocessing.connection import Connection, wait
from pathlib import Path

import numpy as np
import psutil

from .. import signals
from ..errors import HungWorkerError, PartrainError, WorkerError
from ..log import info
from ..machine import BLAS_THREAD_VARIABLES, process_limit_room
from .base import Engine, hang_limit, raise_failure
from .host import one_blas_thread
from .messages import Failure, ReduceTask, Stop
from .partition import param_ranges, sum_chunks
from .shared_memory import SharedArray
from .worker import Worker, pickled_model

POLL_SECONDS = 0.2         # how often waits look at stop requests and worker health
START_TIMEOUT = 120.0      # a worker not ready by then counts as a failed start
SPAWN_ATTEMPTS = 3         # starts tried before the run stops with an error
RETRIES_PER_MESSAGE = 3    # replacements of one worker within one message
# Gradients of at most this many chunk-elements (chunks x parameters) are added by the
# coordinator itself: about 0.25 ms of additions on one core (4 x 60,806 for lenet5 at
# batch 32: 62 us), less than a round of reduce tasks to every worker and back
# (lenet5 b32 on 2 workers: 0.84 ms of coordination a step with the round trip).
LOCAL_REDUCE_ELEMENTS = 1_000_000


class _WorkerProcess:
    """One worker as the coordinator sees it: the process, its socket, its stderr."""

    def __init__(self, index, boot, fds):
        parent, child = socket.socketpair()
        self.index = index
        self.stderr = tempfile.TemporaryFile()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parents[2])] + sys.path[1:]))
        env.pop("PYTHONSTARTUP", None)
        # A worker computes on one BLAS thread: let BLAS start no others when numpy
        # loads (under `ulimit -u` a failed thread start makes OpenBLAS raise SIGINT).
        env.update(dict.fromkeys(BLAS_THREAD_VARIABLES, "1"))
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from partrain.engine.worker_process import "
                 "worker_main; worker_main()", str(child.fileno()), str(os.getpid())],
                pass_fds=[child.fileno(), *fds], stdin=subprocess.DEVNULL,
                stderr=self.stderr, env=env, start_new_session=True)
        except OSError as exc:   # EAGAIN: the process limit; ENOMEM: no memory to fork
            child.close()
            parent.close()
            self.stderr.close()
            raise PartrainError(f"cannot start worker {index}: {exc.strerror or exc}"
                                + (" (the process limit, ulimit -u, is reached)"
                                   if exc.errno == errno.EAGAIN else "")) from None
        child.close()   # the worker's end is now only in the worker: EOF when it dies
        self.conn = Connection(parent.detach())
        self.boot = boot
        self.peak_rss = 0
        self.sentinel = _ProcessSentinel(self.proc)

    def send_boot(self):
        """Send what the worker needs to start (it waits in the socket while the worker
        imports; a large model fills the buffer and blocks until the worker reads it)."""
        try:
            self.conn.send(self.boot)
        except OSError:
            pass   # died before reading it: wait_ready reports it with its exit status

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while not self.conn.poll(POLL_SECONDS):
            signals.check()
            if self.proc.poll() is not None:
                break
            if time.monotonic() > deadline:
                raise PartrainError(f"worker {self.index} did not start within {START_TIMEOUT:.0f} s")
        try:
            msg = self.conn.recv()
        except (EOFError, OSError):
            self.proc.wait()
            raise PartrainError(f"worker {self.index} died while starting "
                                f"({_exit_phrase(self.proc.returncode)})"
                                f"{self.last_error_line()}") from None
        if msg[0] == "failed":
            raise WorkerError(msg[1])

    def how_it_ended(self, what):
        """One phrase on how this worker failed, for the error that gives up on it."""
        if what == "hung":
            return f"worker {self.index} sent nothing for {self.silent_for():.1f} s"
        self.proc.wait()
        return f"worker {self.index} {_exit_phrase(self.proc.returncode)}{self.last_error_line()}"

    def last_error_line(self):
        self.stderr.seek(0)
        lines = [ln for ln in self.stderr.read().decode(errors="replace").splitlines() if ln.strip()]
        return f": {lines[-1].strip()}" if lines else ""

    def silent_for(self):
        return time.monotonic() - self.sent_at

    def send(self, msg):
        self.sent_at = time.monotonic()
        self.conn.send(msg)

    def kill(self):
        try:
            self.proc.kill()   # SIGKILL also ends a stopped (SIGSTOP) process
        except OSError:
            pass
        self.proc.wait()
        self.conn.close()
        self.stderr.close()
        self.sentinel.close()

    def stop(self, deadline):
        try:
            self.conn.send(Stop())
        except OSError:
            pass
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        self.kill()


def _exit_phrase(returncode):
    if returncode is not None and returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _check_process_limit(workers):
    """Refuse, in one line, to start more workers than the process limit leaves room
    for: past it, fork fails, or a worker dies as its libraries start threads."""
    room = process_limit_room()
    if room is not None and room[1] + workers > room[0]:
        limit, running = room
        raise PartrainError(
            f"the process limit (ulimit -u) is {limit} and this user already runs "
            f"{running} processes and threads: no room for {workers} worker"
            f"{'s' * (workers > 1)}; raise the limit or use fewer `workers`")


class _ProcessSentinel:
    """A file descriptor that becomes readable when the process exits (pidfd), for
    ``multiprocessing.connection.wait``; None where unsupported (then we poll)."""

    def __init__(self, proc):
        try:
            self.fd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            self.fd = None

    def fileno(self):
        return self.fd

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# ----------------------------------------------------------------------------
# The coordinator
# ----------------------------------------------------------------------------

class ProcessEngine(Engine):
    name = "process"
    local_reduce_elements = LOCAL_REDUCE_ELEMENTS

    @classmethod
    def default_workers_for(cls):
        return psutil.cpu_count(logical=False) or os.cpu_count() or 1

    def __init__(self, model, splits, chunk_size, workers="auto", max_batch=None,
                 reduction="ordered"):
        super().__init__(model, splits, chunk_size, workers=workers, max_batch=max_batch,
                         reduction=reduction)
        self.procs: list[_WorkerProcess] = []
        self.shared: dict[str, SharedArray] = {}
        self.durations = {k: deque(maxlen=20) for k in ("gradient", "reduce", "evaluate")}
        self._blas = None

    # -- lifecycle --------------------------------------------------------------
    def _start(self):
        m = self.model
        P = m.num_params
        layout = {"params": ((P,), m.dtype), "grad": ((P,), m.dtype),
                  "slots": ((self.max_chunks, P), m.dtype)}
        for split, (X, y) in self.splits.items():
            layout[f"{split}.X"], layout[f"{split}.y"] = (X.shape, X.dtype), (y.shape, np.int64)
        for key, (shape, dtype) in layout.items():
            self.shared[key] = SharedArray(shape, dtype, key)
        a = {k: s.array for k, s in self.shared.items()}
        for split, (X, y) in self.splits.items():
            a[f"{split}.X"][...] = X
            a[f"{split}.y"][...] = y
        a["params"][...] = m.flat
        m.bind(a["params"])   # from now on the optimizer updates the shared copy in place
        self.grad = a["grad"]
        self.boot = dict(sys_path=list(sys.path), model=pickled_model(m),
                         arrays={k: s.spec for k, s in self.shared.items()})
        self.fds = [s.fd for s in self.shared.values()]
        # The coordinator only adds and updates; pin its BLAS too, so no idle BLAS
        # thread spins on a core a worker needs.
        self._blas = one_blas_thread()
        self._blas.__enter__()
        _check_process_limit(self.workers)
        self.procs = self._spawn(range(self.workers))

    def _spawn(self, indices):
        """Start the workers ``indices`` all at once (each start is mostly a new Python
        importing numpy: in parallel they take the time of one) and wait until every
        one is ready; a failed start is retried. Returns their _WorkerProcess objects."""
        started = []
        try:
            for i in indices:
                started.append(_WorkerProcess(i, self.boot, self.fds))
            for proc in started:
                proc.send_boot()
            for n, proc in enumerate(started):
                for attempt in range(1, SPAWN_ATTEMPTS + 1):
                    try:
                        proc.wait_ready()
                        break
                    except WorkerError:
                        raise   # the model itself cannot be rebuilt: retrying will not help
                    except PartrainError:
                        proc.kill()
                        if attempt == SPAWN_ATTEMPTS:
                            raise
                        proc = started[n] = _WorkerProcess(proc.index, self.boot, self.fds)
                        proc.send_boot()
        except BaseException:
            for proc in started:
                proc.kill()
            raise
        return started

    def _close(self):
        deadline = time.monotonic() + 5.0
        for proc in self.procs:
            if proc is not None:
                proc.stop(deadline)
        self.procs = []
        if "params" in self.shared and self.model.flat is self.shared["params"].array:
            self.model.bind(self.model.flat.copy())   # keep the parameters past the segment
            self.grad = self.grad.copy()
        for s in self.shared.values():
            s.close()
        self.shared = {}
        if self._blas is not None:
            self._blas.__exit__(None, None, None)
            self._blas = None

    def peak_rss(self):
        return [p.peak_rss for p in self.procs]

    @property
    def worker_pids(self):
        return [p.proc.pid for p in self.procs]

    # -- one exchange -------------------------------------------------------------
    def _reduce(self, n_chunks, batch, what):
        if n_chunks * self.model.num_params <= self.local_reduce_elements:
            # The same sum in the same order, so the same bits, without a round trip.
            sum_chunks(self.shared["slots"].array[:n_chunks], batch, out=self.grad)
            return
        ranges = param_ranges(self.model.num_params, self.workers)
        seq = self._next_seq()
        self._exchange({w: ReduceTask(seq, what, n_chunks, batch, lo, hi)
                        for w, (lo, hi) in enumerate(ranges)})

    def allowed_seconds(self, kind):
        """How long a worker may stay silent on a message of this kind before it counts
        as hung (:func:`.base.hang_limit` of the last 20 answers of that kind)."""
        return hang_limit(self.durations[kind])

    def _exchange(self, tasks):
        pending = dict(tasks)
        retries = dict.fromkeys(tasks, 0)
        for w, task in tasks.items():
            try:
                self.procs[w].send(task)
            except OSError:   # died between steps: same recovery as dying mid-step
                self._replace(w, task, retries, "died")
        replies = {}
        while pending:
            busy = [self.procs[w] for w in pending]
            sentinels = [p.sentinel for p in busy if p.sentinel.fd is not None]
            ready = wait([p.conn for p in busy] + sentinels, POLL_SECONDS)
            for w in list(pending):
                proc = self.procs[w]
                reply = None
                if proc.conn in ready or proc.conn.poll():
                    try:
                        reply = proc.conn.recv()
                    except (EOFError, OSError):
                        reply = None
                if reply is not None:
                    task = pending[w]
                    if (reply.kind, reply.seq) != (task.kind, task.seq):
                        continue   # a late answer to a task given up on
                    if isinstance(reply, Failure):
                        raise_failure(reply, w)
                    replies[w] = reply
                    proc.peak_rss = max(proc.peak_rss, reply.peak_rss)
                    self.durations[reply.kind].append(reply.seconds)
                    del pending[w]
                    continue
                if proc.proc.poll() is not None:
                    self._replace(w, pending[w], retries, "died")
                elif proc.silent_for() > self.allowed_seconds(pending[w].kind):
                    self._replace(w, pending[w], retries, "hung")
            # Nothing has changed the run's state yet: stopping here loses nothing.
            signals.check()
        return replies

    def _replace(self, w, task, retries, what):
        """Kill worker ``w`` (dead or hung), start a new one and resend its task.

        A replacement that dies while starting, or before the task reaches it, is one
        more failure of the same message, under the same limit: a step whose workers
        keep dying ends as a WorkerError (checkpoint, one line) however they die."""
        failed_start = None   # why the previous replacement never became ready
        while True:
            old = self.procs[w]
            waited = old.silent_for() if hasattr(old, "sent_at") else 0.0
            retries[w] += 1
            if retries[w] > RETRIES_PER_MESSAGE:
                last = failed_start or old.how_it_ended(what)
                old.kill()
                error = HungWorkerError if what == "hung" else WorkerError
                raise error(f"worker {w} {what} {retries[w]} times on {task.what} "
                            f"({task.kind}); giving up; last: {last}")
            old.kill()
            if what == "hung":
                info(f"worker {w} sent nothing for {waited:.1f} s (limit "
                     f"{self.allowed_seconds(task.kind):.1f} s); replacing it")
            new = self.procs[w] = _WorkerProcess(w, self.boot, self.fds)
            new.send_boot()
            what, failed_start = "died", None
            try:
                new.wait_ready()
            except WorkerError:
                raise   # the model cannot be rebuilt: no replacement ever will
            except PartrainError as exc:   # died, or never became ready
                failed_start = str(exc)
                continue
            try:
                new.send(task)
            except OSError:   # ready, then dead before the task reached it
                continue
            self.replacements += 1
            return
