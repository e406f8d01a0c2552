"""The multi-process backend: persistent workers, shared memory, pipe signals.

Layout in shared memory (POSIX segments with random names, created once per run):

* ``X``, ``y``: the training set, copied in once; workers map it, never receive it.
* ``params``: the model's flat parameter vector. The coordinator's model is re-bound to
  it, so the optimizer's in-place update *is* the broadcast.
* ``slots`` (max_chunks, P) and ``losses`` (max_chunks,): one gradient sum and loss sum
  per chunk, written by whichever worker computed it.
* ``grad`` (P,): the step's mean gradient, which the trainer reads.
* ``indices`` (max_batch,): the step's sample indices.

A step is two small messages to each worker over its pipe:

1. ``("chunks", step, [(chunk, lo, hi), ...])`` (positions into ``indices``), answered
   by ``("done", step, seconds, peak_rss)``. A worker owns a contiguous run of chunks
   holding about 1/W of the samples.
2. ``("reduce", step, n_chunks, batch, p_lo, p_hi)``: the worker adds every chunk's
   gradient over its 1/W of the parameter range, in chunk order, into ``grad``
   (answered ``("reduced", step, seconds, peak_rss)``). The sum is elementwise, so
   splitting it by parameter range gives the same bits as one process summing it all,
   and the coordinator's serial share of a step no longer grows with the chunk count.

Measured on 2 cores, a pipe message plus shared memory costs ~0.3 ms a step; a joblib
call per step ~10 ms, which is why joblib is not the per-step transport.

Failure handling: the coordinator waits on pipes *and* process sentinels with a
one-second timeout, so a killed worker is noticed at once; it is replaced and its
message sent again (same chunks or the same sums, same bits). Workers ignore SIGINT (the coordinator
handles Ctrl-C for everyone) and exit when their pipe closes, so a dead coordinator
leaves no orphans; the resource tracker that multiprocessing starts unlinks the
segments even if the coordinator is SIGKILLed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import secrets
import signal
import time
import traceback
from multiprocessing.connection import wait
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from ..errors import PartrainError, WorkerError
from .base import Engine, compute_chunk, keep_freed_memory, mean_loss, one_blas_thread, sum_chunks

WAIT_SECONDS = 1.0       # how often the coordinator looks for dead workers while waiting
START_TIMEOUT = 120.0    # a worker that is not ready by then is reported, not waited for


class SharedArray:
    """A numpy array in a named POSIX shared-memory segment.

    ``spec`` (name, shape, dtype) is what another process needs to attach to it.
    """

    def __init__(self, shape, dtype, name=None):
        dtype = np.dtype(dtype)
        size = max(int(np.prod(shape)) * dtype.itemsize, 1)
        self.owner = name is None
        if self.owner:
            # Unpredictable (a random token) but attributable: the owner's pid says whose
            # segment it is, for anyone looking for leftovers in /dev/shm.
            name = f"partrain-{os.getpid()}-{secrets.token_hex(8)}"
        self.shm = SharedMemory(name=name, create=self.owner, size=size if self.owner else 0)
        self.array = np.ndarray(shape, dtype=dtype, buffer=self.shm.buf)
        self.spec = (self.shm.name, tuple(shape), dtype.str)

    @classmethod
    def attach(cls, spec):
        name, shape, dtype = spec
        return cls(shape, dtype, name=name)

    def close(self):
        self.array = None
        try:
            self.shm.close()
        except BufferError:   # a view is still alive somewhere; unlink still frees it
            pass
        if self.owner:
            try:
                self.shm.unlink()
            except FileNotFoundError:
                pass


def _peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # Linux: KiB


def _worker_main(worker_id, conn, specs, model_spec):
    """Entry point of a worker process (module level so that spawn can import it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_freed_memory()
    from ..models import build_model

    shared = {key: SharedArray.attach(spec) for key, spec in specs.items()}
    a = {key: s.array for key, s in shared.items()}
    try:
        model = build_model(**model_spec)
        model.bind(a["params"])
        conn.send(("ready", worker_id, os.getpid()))
        with one_blas_thread():
            while True:
                try:
                    msg = conn.recv()
                except (EOFError, OSError):   # the coordinator is gone: leave quietly
                    return
                if msg[0] == "stop":
                    return
                t0 = time.perf_counter()
                step, what = msg[1], msg[0]
                try:
                    if msg[0] == "chunks":
                        _, step, chunks = msg
                        for c, lo, hi in chunks:
                            what = f"chunk {c}"
                            a["losses"][c] = compute_chunk(model, a["X"], a["y"],
                                                           a["indices"][lo:hi], a["slots"][c])
                        reply = "done"
                    else:   # "reduce"
                        _, step, n_chunks, n, p_lo, p_hi = msg
                        what = "the gradient reduction"
                        sum_chunks(a["slots"][:n_chunks, p_lo:p_hi], n, out=a["grad"][p_lo:p_hi])
                        reply = "reduced"
                except Exception as exc:
                    detail = "".join(traceback.format_exception_only(exc)).strip()
                    conn.send(("error", step, what, detail))
                    continue
                conn.send((reply, step, time.perf_counter() - t0, _peak_rss_bytes()))
    except (BrokenPipeError, EOFError, KeyboardInterrupt):
        return
    finally:
        model = a = None
        for s in shared.values():
            s.close()


class _Worker:
    def __init__(self, ctx, worker_id, specs, model_spec):
        parent_end, child_end = ctx.Pipe(duplex=True)
        self.id = worker_id
        self.conn = parent_end
        self.proc = ctx.Process(target=_worker_main, name=f"partrain-worker-{worker_id}",
                                args=(worker_id, child_end, specs, model_spec), daemon=True)
        self.proc.start()
        child_end.close()   # so the worker's pipe end is the only one: EOF when we die
        self.peak_rss = 0
        self.pid = None

    def wait_ready(self):
        if not self.conn.poll(START_TIMEOUT):
            raise PartrainError(f"worker {self.id} did not start within {START_TIMEOUT:.0f} s")
        try:
            msg = self.conn.recv()
        except EOFError:
            raise PartrainError(f"worker {self.id} died while starting "
                                f"(exit code {self.proc.exitcode})") from None
        self.pid = msg[2]

    def stop(self):
        try:
            self.conn.send(("stop",))
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


class ProcessEngine(Engine):
    name = "process"

    def __init__(self, model, X, y, chunk_size, workers=2, max_batch=None):
        super().__init__(model, X, y, chunk_size, max_batch)
        if workers < 1:
            raise PartrainError(f"--workers must be positive, got {workers}")
        self.num_workers = int(workers)
        self.workers: list[_Worker] = []
        self.shared: dict[str, SharedArray] = {}
        self.replacements = 0   # workers restarted after dying

    # -- lifecycle --------------------------------------------------------------
    def start(self):
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self):
        m = self.model
        P = m.num_params
        for key, shape, dtype in [
            ("X", self.X.shape, self.X.dtype), ("y", self.y.shape, np.int64),
            ("params", (P,), m.dtype), ("grad", (P,), m.dtype),
            ("slots", (self.max_chunks, P), m.dtype),
            ("losses", (self.max_chunks,), np.float64), ("indices", (self.max_batch,), np.int64),
        ]:
            self.shared[key] = SharedArray(shape, dtype)
        a = self.arrays = {k: s.array for k, s in self.shared.items()}
        a["X"][...] = self.X
        a["y"][...] = self.y
        a["params"][...] = m.flat
        m.bind(a["params"])   # from now on the optimizer updates the shared copy in place
        self.grad = a["grad"]
        self.specs = {k: s.spec for k, s in self.shared.items()}
        self.ctx = mp.get_context("spawn")   # no fork: the coordinator may hold threads
        self.workers = [self._spawn(i) for i in range(self.num_workers)]

    def _spawn(self, worker_id, attempts=3):
        """Start a worker and wait until it is ready; one killed while starting is retried."""
        for attempt in range(attempts):
            w = _Worker(self.ctx, worker_id, self.specs, self.model.spec)
            try:
                w.wait_ready()
                return w
            except PartrainError:
                w.stop()
                if attempt == attempts - 1:
                    raise

    def close(self):
        for w in self.workers:
            w.stop()
        self.workers = []
        if "params" in self.shared and self.model.flat is self.shared["params"].array:
            self.model.bind(self.model.flat.copy())   # keep the parameters past the segment
            self.grad = self.grad.copy()
        self.X = self.y = None
        self.arrays = {}
        for s in self.shared.values():
            s.close()
        self.shared = {}

    @property
    def worker_pids(self):
        return [w.proc.pid for w in self.workers]

    def peak_rss(self):
        """Peak resident bytes of each worker, as last reported."""
        return [w.peak_rss for w in self.workers]

    # -- one step -------------------------------------------------------------------
    def assign(self, chunks):
        """Split the chunk list into one contiguous run per worker, each holding about
        1/W of the samples (chunk c goes to the worker whose share its start falls in)."""
        n = chunks[-1][1]
        runs = [[] for _ in self.workers]
        for c, (lo, hi) in enumerate(chunks):
            w = min(int((lo + hi) / 2 * len(runs) / n), len(runs) - 1)
            runs[w].append((c, lo, hi))
        return runs

    def _compute_chunks(self, indices, chunks):
        a = self.arrays
        a["indices"][: len(indices)] = indices
        messages = {w.id: ("chunks", self.step_id, run)
                    for w, run in zip(self.workers, self.assign(chunks)) if run}
        replies = self._exchange(messages)
        n = len(chunks)
        return a["slots"][:n], a["losses"][:n], max(r[2] for r in replies.values())

    def param_ranges(self):
        """Split 0..P into one contiguous range per worker, on 64-byte boundaries so
        no two workers write the same cache line."""
        P, W, align = self.model.num_params, len(self.workers), 16
        cuts = [min(P, round(P * i / W / align) * align) for i in range(W)] + [P]
        return list(zip(cuts[:-1], cuts[1:]))

    def _reduce(self, slots, losses, n):
        messages = {w.id: ("reduce", self.step_id, len(slots), n, lo, hi)
                    for w, (lo, hi) in zip(self.workers, self.param_ranges())}
        self._exchange(messages)
        return mean_loss(losses, n)

    def _exchange(self, messages):
        """Send each worker its message and wait for all the answers.

        messages: {worker id: message}. A worker that dies (before or while working)
        is replaced and sent the same message again: the work only rewrites its own
        slots or its own range of ``grad``, so doing it twice changes nothing.
        Returns {worker id: answer}.
        """
        expected = {"chunks": "done", "reduce": "reduced"}
        pending = dict(messages)
        for worker_id, msg in messages.items():
            try:
                self.workers[worker_id].conn.send(msg)
            except (BrokenPipeError, ConnectionResetError):
                # Died between steps: same recovery as dying mid-step.
                self._replace(worker_id, msg)
        replies = {}
        while pending:
            busy = [self.workers[i] for i in pending]
            ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], WAIT_SECONDS)
            for w in busy:
                if w.conn in ready or w.conn.poll():
                    try:
                        reply = w.conn.recv()
                    except (EOFError, OSError):
                        reply = None
                    if reply is not None:
                        kind, step = reply[0], reply[1]
                        if kind == "error":
                            raise WorkerError(f"step {step}, {reply[2]} failed in worker "
                                              f"{w.id}: {reply[3]}")
                        # Anything else is a late answer from before a replacement.
                        if step == self.step_id and kind == expected[pending[w.id][0]]:
                            replies[w.id] = reply
                            w.peak_rss = max(w.peak_rss, reply[3])
                            del pending[w.id]
                        continue
                if w.proc.sentinel in ready or not w.proc.is_alive():
                    self._replace(w.id, pending[w.id])
        return replies

    def _replace(self, worker_id, msg):
        """Start a new worker in place of a dead one and send it the lost work."""
        old = self.workers[worker_id]
        old.proc.join(timeout=1)
        old.conn.close()
        new = self._spawn(worker_id)
        self.workers[worker_id] = new
        self.replacements += 1
        new.conn.send(msg)
