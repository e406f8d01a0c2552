"""Dropout: during training, zero each activation with probability ``rate`` and scale
the rest by 1/(1 - rate) ("inverted" dropout, so evaluation needs no rescaling).

The mask comes from :func:`partrain.nn.randomness.training_rng`, keyed on (seed, step,
chunk), so a network with dropout has the same bits on any number of workers or MPI
ranks and after a resume. In evaluation and ``predict`` it passes its input through.
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from .layer import Layer
from .randomness import training_rng


class Dropout(Layer):
    """rate: the probability of zeroing an activation, in [0, 1).

    forward(x): x any shape (N, ...) -> (y same shape, cache = the scaled mask or None).
    backward(dy, cache) -> (dy * mask, {}).
    """

    def __init__(self, rate=0.5):
        super().__init__()
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise UsageError(f"Dropout rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)

    def forward(self, x):
        rng = training_rng()
        if rng is None or self.rate == 0:
            return x, None
        keep = rng.random(x.shape, dtype=np.float32) >= self.rate
        mask = keep.astype(x.dtype) * x.dtype.type(1 / (1 - self.rate))
        return x * mask, mask

    def backward(self, dy, cache):
        return (dy if cache is None else dy * cache), {}

    def describe(self):
        return f"Dropout({self.rate:g})"
