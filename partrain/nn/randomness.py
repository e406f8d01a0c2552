"""Random numbers for layers that keep partrain's bits.

A layer that draws random numbers (:class:`partrain.nn.Dropout`, or one of yours) must
not use ``np.random``: the global generator's state depends on what else ran in the
process, so the same step would draw differently on 1 worker, 3 workers or after a
resume. Instead it asks :func:`training_rng` inside ``forward``::

    from partrain.nn import training_rng

    def forward(self, x):
        rng = training_rng()
        if rng is None:                 # not a training step: evaluation or predict
            return x, None
        noise = rng.standard_normal(x.shape, dtype=x.dtype)
        ...

Each call returns a fresh generator of the stream keyed on (seed, step, chunk, n),
n counting the calls made for this chunk so far: a chunk computes the same draws
whichever worker, rank or resumed process computes it, because it is the same chunk of
the same step. Outside a training step (evaluation, ``predict``, the model's shape check)
it returns None, so a random layer is deterministic there.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

import numpy as np

# Mixed into every layer stream so it is never a batch's or an augmentation's stream.
_STREAM_TAG = 0xD0
# (key..., chunk) and a one-element list counting the draws, while a chunk is computed.
_current = contextvars.ContextVar("partrain_training_stream", default=None)


@contextmanager
def training_stream(key, chunk):
    """While it lasts, :func:`training_rng` draws from the stream of ``(key, chunk)``.

    key: the trainer's (seed, step), ints; chunk: the chunk's index in its step. The
    engine's workers wrap each training chunk in it; a test or a gradient check wraps
    each evaluation of the loss in it to get the same draws every time.
    """
    token = _current.set(((*map(int, key), int(chunk)), [0]))
    try:
        yield
    finally:
        _current.reset(token)


def training_rng():
    """A numpy Generator for the next draw of the current training chunk, or None
    outside a training step. Call it once per forward and draw from what it returns."""
    state = _current.get()
    if state is None:
        return None
    base, calls = state
    calls[0] += 1
    return np.random.default_rng([*base, calls[0], _STREAM_TAG])
