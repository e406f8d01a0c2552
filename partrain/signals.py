"""Stop requests: Ctrl-C, SIGTERM and SIGHUP are *deferred*, never acted on mid-state.

A handler that raises (Python's default for Ctrl-C) can land anywhere: inside the
optimizer's in-place update, between the update and the step counter, inside a
checkpoint write. A run checkpointed at such a moment does not resume to the same
bits. So while a run is in progress the handlers only record the signal; the code
polls :func:`check` at the places where nothing is half done (between steps, while
waiting for workers before any state changed) and stops there. A second signal
changes nothing: the outputs are always written whole.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

from .errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_requested: list[int] = []   # signal numbers received while deferring, in order
_held = [0]                  # depth of held() blocks: check() does nothing inside them


def _record(signum, frame):
    if not _requested:
        print(f"\npartrain: {signal.Signals(signum).name} received; stopping at the end "
              "of this step and saving a checkpoint", file=sys.stderr, flush=True)
    _requested.append(signum)


@contextlib.contextmanager
def deferred():
    """Within this block, stop signals are recorded instead of raising.

    Nests: an inner block keeps the outer block's record. Outside the main thread (where
    Python cannot install handlers) it does nothing and signals behave as usual.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    # A stop requested before the block (request(): the command line's start-up) stays
    # pending, so the run stops at its first step boundary.
    outermost = all(h is not _record for h in old.values())
    for s in STOP_SIGNALS:
        signal.signal(s, _record)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if outermost:
            # The stop was acted on inside the block (or the block ended first): what
            # comes next in this process (a predict after an interrupted fit) starts
            # with no stop pending.
            _requested.clear()


def request(signum):
    """Record a stop asked for outside a deferred block, where a handler also raised
    it: should library code swallow that exception (a bare ``except:``), the run
    still stops at its first step boundary instead of training on."""
    _requested.append(signum)


def forget():
    """Drop pending stop requests: the command they were for has ended."""
    _requested.clear()


def check():
    """Raise :class:`Interrupted` if a stop was requested. Call only where stopping
    leaves every piece of state whole; inside :func:`held` it does nothing."""
    if _requested and not _held[0]:
        raise Interrupted(_requested[0])


@contextlib.contextmanager
def held():
    """A block that must finish once started (a commit, a checkpoint, the outputs):
    stop requests made inside it wait for its end."""
    _held[0] += 1
    try:
        yield
    finally:
        _held[0] -= 1
