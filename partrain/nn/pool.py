"""Pooling layers: max and mean over k x k windows, as k*k whole-array operations
(one per position inside the window), never a loop over pixels or images."""

from __future__ import annotations

import numpy as np

from .layer import Layer
from .windows import output_size


class _Pool(Layer):
    """What both pools share: a square window, its stride (the window by default:
    non-overlapping), the output shape and the k*k window offsets."""

    def __init__(self, window=2, stride=None):
        super().__init__()
        self.window = window
        self.stride = stride or window

    def output_shape(self, input_shape):
        c, h, w = input_shape
        return (c, output_size(h, self.window, self.stride), output_size(w, self.window, self.stride))

    def _offsets(self, x_shape):
        """One index per position (i, j) inside the window: ``x[sl]`` is the
        (N, C, oh, ow) array of every window's element at that position. Pooling is
        then k*k whole-array operations instead of a copy of every window."""
        k, st = self.window, self.stride
        oh, ow = output_size(x_shape[2], k, st), output_size(x_shape[3], k, st)
        return [(slice(None), slice(None), slice(i, i + st * (oh - 1) + 1, st),
                 slice(j, j + st * (ow - 1) + 1, st)) for i in range(k) for j in range(k)]

    def _new_dx(self, x_shape, dtype):
        """Input-gradient buffer: zeros unless the windows tile x exactly without
        overlapping (then every element gets written once)."""
        k, st = self.window, self.stride
        tiles = st == k and x_shape[2] % k == 0 and x_shape[3] % k == 0
        return np.empty(x_shape, dtype) if tiles else np.zeros(x_shape, dtype)

    def describe(self):
        return f"{type(self).__name__}({self.window}x{self.window}, stride {self.stride})"


class MaxPool2D(_Pool):
    """Max over each window; the gradient goes to the maximum of its window.

    x: (N, C, H, W) -> y: (N, C, oh, ow), oh = (H - window) // stride + 1.

    ``ties`` says where a window's gradient goes when several elements equal its max:

    * ``"first"`` (default): to the first of them in row-major order (what argmax
      picks). A tie that persists under small changes of the parameters -- identical
      windows of binary images, zeros after a ReLU -- is one value counted once, so
      this is the gradient of the max.
    * ``"all"``: the whole gradient to every tied element, as seed 003 does (it passes
      the error wherever a conv output equals its pool output) and seed 001's cs231n
      ``max_pool_backward_naive`` does (``(window == max) * dout``). With k tied
      elements that are the same function of the parameters the error is counted k
      times; kept only to reproduce those seeds.
    """

    TIES = ("first", "all")

    def __init__(self, window=2, stride=None, ties="first"):
        super().__init__(window, stride)
        if ties not in self.TIES:
            raise ValueError(f"ties must be one of {self.TIES}, got {ties!r}")
        self.ties = ties

    def forward(self, x):
        offsets = self._offsets(x.shape)
        y = x[offsets[0]].copy()
        for sl in offsets[1:]:
            np.maximum(y, x[sl], out=y)
        routes = np.empty((len(offsets),) + y.shape, dtype=bool)   # (k*k, N, C, oh, ow)
        unclaimed = np.ones(y.shape, dtype=bool)
        for hit, sl in zip(routes, offsets):
            np.equal(x[sl], y, out=hit)
            if self.ties == "first":    # a maximum claims its window for itself
                hit &= unclaimed
                unclaimed ^= hit
        return y, (x.shape, routes)

    def backward(self, dy, cache):
        x_shape, routes = cache
        dx = self._new_dx(x_shape, dy.dtype)
        for sl, hit in zip(self._offsets(x_shape), routes):
            if self.stride < self.window:      # overlapping windows share pixels
                dx[sl] += dy * hit
            else:
                np.multiply(dy, hit, out=dx[sl])
        return dx, {}

    def describe(self):
        text = super().describe()
        return text if self.ties == "first" else f"{text[:-1]}, ties {self.ties})"


class AvgPool2D(_Pool):
    """Mean over each window (seed 004's "mean pool").

    x: (N, C, H, W) -> y: (N, C, oh, ow).
    """

    def forward(self, x):
        offsets = self._offsets(x.shape)
        y = x[offsets[0]].copy()
        for sl in offsets[1:]:
            y += x[sl]
        y *= 1.0 / len(offsets)
        return y, x.shape

    def backward(self, dy, x_shape):
        offsets = self._offsets(x_shape)
        share = dy * (1.0 / len(offsets))
        dx = self._new_dx(x_shape, dy.dtype)
        for sl in offsets:
            if self.stride < self.window:
                dx[sl] += share
            else:
                dx[sl] = share
        return dx, {}
