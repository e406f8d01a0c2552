"""The base class of a layer: ``forward(x) -> (y, cache)`` and ``backward(dy, cache) ->
(dx, grads)``, in the cs231n ``layers.py`` tradition.

Conventions every built-in layer keeps:

* Images are NCHW: ``x.shape == (N, C, H, W)``; dense inputs are ``(N, D)``.
* A layer's parameters live in ``layer.params`` (``dict[str, ndarray]``), which the
  model binds to named views of its one flat parameter buffer; ``backward`` returns
  ``grads`` with the same keys and shapes.
* Everything runs in the dtype of the input and parameters (float32 or float64).
* No per-pixel or per-image Python loops: whole-batch array operations only.
"""

from __future__ import annotations

import numpy as np


class Layer:
    """Base class of a layer: ``forward(x) -> (y, cache)``, ``backward(dy, cache) ->
    (dx, grads)``.

    Parameters live in ``self.params`` (``dict[str, ndarray]``); the model re-binds them
    to named views of its one flat buffer, so a layer must update nothing but through
    those views, and ``backward`` returns ``grads`` with the same keys and shapes.

    Two ways to declare parameters:

    * simplest (your own layer): set ``self.params = {"W": initial_array, ...}`` in
      ``__init__``; the model copies those values into its buffer;
    * or override :meth:`param_shapes` and :meth:`init_params` (the built-in layers do),
      so the values come from the model's seeded random generator.

    ``decay`` names the parameters that L2 weight decay applies to (weights, not biases).
    ``output_shape`` is optional: the model finds shapes by a forward pass on one sample.
    """

    decay: tuple = ()

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        # The model clears this on the first layer: nobody needs d(loss)/d(input image),
        # and for a convolution it is the most expensive part of backward.
        self.need_dx = True

    def param_shapes(self) -> dict[str, tuple]:
        return {k: np.shape(v) for k, v in getattr(self, "params", {}).items()}

    def init_params(self, rng) -> dict[str, np.ndarray]:
        return {k: np.array(v, dtype=np.float64) for k, v in getattr(self, "params", {}).items()}

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy, cache):
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__
