"""Error types the command line turns into one line on stderr and an exit status.

Anything the user can fix (a path, a flag, a file) raises one of these with a
message that names the problem and what to do. Everything else is a bug and
keeps its traceback.
"""


class PartrainError(Exception):
    """A runtime problem the user can act on (exit status 1)."""

    exit_code = 1


class UsageError(PartrainError):
    """A bad flag value, unknown name or conflicting options (exit status 2)."""

    exit_code = 2


class DataError(PartrainError):
    """A dataset file that is missing, corrupt or holds the wrong shapes (exit status 1)."""


class DivergenceError(PartrainError):
    """The loss or a gradient stopped being finite (exit status 1)."""


class LayerError(PartrainError):
    """A layer's forward or backward raised, or returned gradients that do not fit its
    parameters; the message names the layer (exit status 1)."""


class WorkerError(PartrainError):
    """A chunk's computation raised inside a worker process (exit status 1)."""


class HungWorkerError(WorkerError):
    """A worker stopped answering and could not be replaced (exit status 1)."""


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop (Ctrl-C, SIGTERM, SIGHUP) and stopped at a step
    boundary; the exit status is 128 + the signal number, as a shell reports it.

    A KeyboardInterrupt, so ``except KeyboardInterrupt:`` in a script or notebook
    catches every stop; and so a BaseException, because a stop raised inside library
    code must reach the command line: psutil, for one, wraps its import-time reads in
    ``except Exception`` and would swallow it, leaving itself half-initialised.
    """

    def __init__(self, signum):
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum

    def __reduce__(self):   # pickled from rank 0 to the other MPI ranks
        return (Interrupted, (self.signum,))
