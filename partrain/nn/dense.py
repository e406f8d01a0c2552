"""Fully connected layers: Flatten, from images to vectors, and Dense, the affine map."""

from __future__ import annotations

import numpy as np

from .init import normal_init, zeros_init
from .layer import Layer


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), in C order (channel-major)."""

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x):
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, dy, x_shape):
        return dy.reshape(x_shape), {}


class Dense(Layer):
    """Affine map y = x @ W + b.

    x: (N, D) -> y: (N, M); W: (D, M); b: (M,) unless ``bias=False``.
    """

    decay = ("W",)

    def __init__(self, in_features, out_features, bias=True, w_init=None, b_init=zeros_init):
        super().__init__()
        self.din, self.dout, self.bias = in_features, out_features, bias
        self.w_init = w_init or normal_init(1e-2)
        self.b_init = b_init

    def param_shapes(self):
        shapes = {"W": (self.din, self.dout)}
        if self.bias:
            shapes["b"] = (self.dout,)
        return shapes

    def init_params(self, rng):
        out = {"W": self.w_init(rng, (self.din, self.dout))}
        if self.bias:
            out["b"] = self.b_init(rng, (self.dout,))
        return out

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.din,):
            raise ValueError(f"expects {self.din} input features, got shape {input_shape}")
        return (self.dout,)

    def forward(self, x):
        y = x @ self.params["W"]
        if self.bias:
            y += self.params["b"]
        return y, x

    def backward(self, dy, x):
        grads = {"W": x.T @ dy}
        if self.bias:
            grads["b"] = dy.sum(axis=0)
        dx = None
        if self.need_dx:
            # (W dy^T)^T is dy W^T; BLAS takes it about 2x faster for a chunk of a few
            # rows (mnist-conv's 2000->100: 0.069 against 0.123 ms on one core, in
            # scripts/benchmarks/gemm_layouts.py). dx is then a transposed view.
            dx = (self.params["W"] @ dy.T).T
        return dx, grads

    def describe(self):
        return f"Dense({self.din}->{self.dout}{'' if self.bias else ', no bias'})"
