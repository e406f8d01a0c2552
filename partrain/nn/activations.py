"""Elementwise activations: ReLU (with the seeds' backward rules), Sigmoid, Tanh
(with LeCun's scaled variant), and the overflow-free logistic function they share
with the losses."""

from __future__ import annotations

import numpy as np

from .layer import Layer


class ReLU(Layer):
    """max(x, 0), any shape.

    ``backward_rule`` says where the error passes on the way back; the forward pass is
    max(x, 0) whatever the rule:

    * ``"input"`` (default): where the input x > 0. The derivative of max(x, 0), so the
      only rule that gives the gradient of the loss.
    * ``"error_sign"``: where the incoming error dy > 0, whatever x was. Seed 000 does
      this after S4 (its "multiply by the ReLU's derivative" tests the error's own
      sign): it blocks every negative error, even of units that were on, and passes
      positive errors of units that were off.
    * ``"none"``: dy passes unchanged, as if there were no ReLU. Seed 000 does this
      after S2, where it applies no ReLU derivative at all.

    Exact zeros: the gate x > 0 is only as good as x. Conv2D's FFT path writes the
    outputs that are zero by structure as exact zeros, so an all-black patch is
    blocked here as it is after im2col (see :mod:`partrain.nn.fft`).
    """

    RULES = ("input", "error_sign", "none")

    def __init__(self, backward_rule="input"):
        super().__init__()
        if backward_rule not in self.RULES:
            raise ValueError(f"backward_rule must be one of {self.RULES}, got {backward_rule!r}")
        self.backward_rule = backward_rule

    def forward(self, x):
        return np.maximum(x, 0), (x > 0 if self.backward_rule == "input" else None)

    def backward(self, dy, mask):
        if self.backward_rule == "input":
            return dy * mask, {}
        if self.backward_rule == "error_sign":
            return np.where(dy > 0, dy, dy.dtype.type(0)), {}
        return dy, {}

    def describe(self):
        return "ReLU" if self.backward_rule == "input" else f"ReLU(backward {self.backward_rule})"


def sigmoid(x):
    """Logistic function without overflow warnings for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(Layer):
    """1 / (1 + exp(-x)), any shape."""

    def forward(self, x):
        y = sigmoid(x)
        return y, y

    def backward(self, dy, y):
        return dy * y * (1 - y), {}


class Tanh(Layer):
    """amplitude * tanh(slope * x), any shape; plain tanh by default.

    LeCun et al. (1998, appendix A) use amplitude 1.7159 and slope 2/3, so that
    f(+-1) = +-1 and the gain is largest where unit-variance inputs fall: with small
    initial weights the plain tanh passes too little signal and LeNet-5 sits on a plateau.
    """

    def __init__(self, amplitude=1.0, slope=1.0):
        super().__init__()
        self.amplitude, self.slope = float(amplitude), float(slope)

    def forward(self, x):
        t = np.tanh(x * self.slope) if self.slope != 1 else np.tanh(x)
        return (t * self.amplitude if self.amplitude != 1 else t), t

    def backward(self, dy, t):
        gain = self.amplitude * self.slope
        return (dy * (1 - t * t) * gain if gain != 1 else dy * (1 - t * t)), {}

    def describe(self):
        if self.amplitude == self.slope == 1:
            return "Tanh"
        return f"Tanh({self.amplitude:g} tanh({self.slope:.4g} x))"
