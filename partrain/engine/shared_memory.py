"""Arrays in anonymous shared memory, inherited by worker processes.

Every large array of the process backend lives in an *anonymous* shared-memory file
(``memfd_create``) that the coordinator hands to its workers as an inherited file
descriptor. An anonymous file has no name in ``/dev/shm``, so nothing can outlive the
processes that map it, whatever kills them (SIGKILL of the whole process group
included), and no run can trip over another's leftovers. Its space is reserved up
front (``posix_fallocate``): too little memory is one clear error at start, not a
SIGBUS in the middle of a step.
"""

from __future__ import annotations

import mmap
import os
import tempfile

import numpy as np

from ..errors import PartrainError


def ensure_standard_fds():
    """Open /dev/null onto any of file descriptors 0, 1, 2 that is closed.

    A process started with one of them closed (``partrain train >&-``) would hand that
    number to the next file it opens: a shared-memory file, whose bytes a ``print`` in a
    user's layer would then overwrite (stdout), or which the workers' own stdin or
    stderr would replace, so they could not map it. Called before anything is opened:
    by the command line, ``partrain.fit``, each engine's start, and each worker."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)   # the lowest free number: fd or below
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            os.set_inheritable(fd, True)   # as a standard descriptor is: workers get it


class SharedArray:
    """A numpy array in an anonymous shared-memory file, inheritable by child processes.

    ``spec`` (fd, shape, dtype) is what a child needs to map it.
    """

    def __init__(self, shape, dtype, what):
        ensure_standard_fds()
        dtype = np.dtype(dtype)
        self.size = max(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, 1)
        import psutil   # here, not at the top: a worker process only attaches

        available = psutil.virtual_memory().available
        if self.size > available:   # reserving it would only wake the OOM killer
            raise PartrainError(
                f"{what} needs {self.size / 2**20:,.0f} MiB of shared memory, only "
                f"{available / 2**20:,.0f} MiB are available; use a smaller `batch_size` "
                "or dataset, or free memory")
        self.fd = _anonymous_file(f"partrain-{what}")
        try:
            os.ftruncate(self.fd, self.size)
            os.posix_fallocate(self.fd, 0, self.size)
        except OSError as exc:
            os.close(self.fd)
            raise PartrainError(
                f"cannot reserve {self.size / 2**20:.0f} MiB of shared memory for {what} "
                f"({exc.strerror}); use a smaller `batch_size` or dataset, or free memory") from None
        self.map = mmap.mmap(self.fd, self.size)
        self.array = np.ndarray(shape, dtype=dtype, buffer=self.map)
        self.spec = (self.fd, tuple(shape), dtype.str)

    @staticmethod
    def attach(spec):
        fd, shape, dtype = spec
        dtype = np.dtype(dtype)
        size = max(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, 1)
        return np.ndarray(shape, dtype=dtype, buffer=mmap.mmap(fd, size))

    def close(self):
        # The mapping is not closed by hand: arrays handed out (a gradient, a parameter
        # view) keep it alive through their base, and it is unmapped when the last of
        # them goes. Closing it under them would make reading them a segfault.
        self.array = self.map = None
        os.close(self.fd)


def _anonymous_file(name):
    if hasattr(os, "memfd_create"):
        return os.memfd_create(name, os.MFD_CLOEXEC)
    # Elsewhere (macOS): a temporary file, unlinked at once, so it has no name either.
    fd, path = tempfile.mkstemp(prefix=name)
    os.unlink(path)
    return fd
