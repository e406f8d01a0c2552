"""partrain's messages to people: one logger, ``logging.getLogger("partrain")``.

Everything partrain says while it works (warnings, a stop request, a replaced worker)
goes through this logger, never straight to stderr, so a program or notebook can route,
silence or capture it like any other library's output. Unless the application set up
logging for partrain (or for the root logger) itself, the first message installs one
handler that writes ``partrain: <message>`` lines to stderr, as the command line does.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("partrain")


class _Format(logging.Formatter):
    def format(self, record):
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"partrain: {level}{record.getMessage()}"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (pytest and notebooks replace it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _configured():
    if not logger.handlers and not logging.getLogger().handlers:
        use_stderr()
    return logger


def use_stderr():
    """Send partrain's messages to stderr as ``partrain: ...`` lines, whatever logging
    the application set up (the command line's choice)."""
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_Format())
        logger.addHandler(handler)
    logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def info(message):
    _configured().info(message)


def warn(message):
    _configured().warning(message)


def result(line):
    """A command's result, on standard output (the one thing a script reads from it)."""
    if not _silenced:
        print(line, flush=True)


_silenced = False


def silence():
    """Say nothing more from this process (an MPI rank that only serves rank 0)."""
    global _silenced
    _silenced = True
    _configured().setLevel(logging.CRITICAL + 1)
