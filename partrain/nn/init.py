"""Initializers: ``init(rng, shape) -> float64 ndarray`` of a parameter's starting values.

``rng`` is the model's seeded ``numpy.random.Generator``; the model casts the values to
its dtype, so float32 and float64 models start from the same draws. Each initializer
is a class or a module-level function, not a lambda, so a model pickles with the
standard library (checkpoints, worker processes).
"""

from __future__ import annotations

import numpy as np


class uniform_init:
    """Draws from U(-limit, limit)."""

    def __init__(self, limit):
        self.limit = float(limit)

    def __call__(self, rng, shape):
        return rng.uniform(-self.limit, self.limit, size=shape)


class normal_init:
    """Draws from N(0, std**2)."""

    def __init__(self, std):
        self.std = float(std)

    def __call__(self, rng, shape):
        return self.std * rng.standard_normal(size=shape)


def zeros_init(rng, shape):
    """Zeros; draws nothing from the generator."""
    return np.zeros(shape)


class constant_init:
    """Fixed values, such as a seed's hand-set starting weights (seed 003). Draws
    nothing from the generator; the layer's shape must match."""

    def __init__(self, values):
        self.values = np.array(values, dtype=np.float64)

    def __call__(self, rng, shape):
        if self.values.shape != tuple(shape):
            raise ValueError(f"hand-set values have shape {self.values.shape}, "
                             f"the layer needs {tuple(shape)}")
        return self.values.copy()
