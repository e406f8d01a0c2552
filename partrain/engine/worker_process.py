"""The worker process of the process backend: ``python -c "...worker_main()" SOCKET_FD
COORDINATOR_PID``.

It imports only what computing needs (numpy, the model's own modules, cloudpickle), so
that many workers start fast: the coordinator's side (:mod:`.process`) imports psutil,
subprocess and the rest. It maps the shared arrays it is told about, rebuilds the model
from its pickled bytes, says it is ready, and answers tasks until told to stop.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from multiprocessing.connection import Connection

from .host import keep_freed_memory, one_blas_thread
from .messages import Stop
from .shared_memory import SharedArray, ensure_standard_fds
from .worker import Worker


def worker_main():
    """Entry point of a worker: ``python -c "...worker_main()" SOCKET_FD COORDINATOR_PID``."""
    sock_fd, coordinator = int(sys.argv[1]), int(sys.argv[2])
    ensure_standard_fds()
    _die_with_parent(coordinator)
    keep_freed_memory()
    conn = Connection(sock_fd)
    try:
        boot = conn.recv()
        sys.path[:] = boot["sys_path"]
        arrays = {key: SharedArray.attach(spec) for key, spec in boot["arrays"].items()}
        import cloudpickle   # noqa: F401  (classes pickled by value need it to unpickle)
        import pickle

        try:
            model = pickle.loads(boot["model"])
        except Exception as exc:
            conn.send(("failed", f"cannot rebuild the model in a worker: "
                                 f"{type(exc).__name__}: {exc}"))
            return
        worker = Worker(model, arrays)
        conn.send(("ready", os.getpid()))
        with one_blas_thread():
            while True:
                task = conn.recv()
                if isinstance(task, Stop):
                    return
                conn.send(worker.reply(task))
    except (EOFError, OSError, KeyboardInterrupt):
        return   # the coordinator is gone or stopping us: leave quietly


def _die_with_parent(coordinator_pid):
    """Ask Linux to SIGKILL this process when the coordinator dies (even a stopped
    worker), and leave at once if it is already gone."""
    try:
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass   # not Linux: the socket's EOF still ends the worker when it next reads
    if os.getppid() != coordinator_pid:
        os._exit(0)
