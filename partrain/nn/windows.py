"""Sliding-window helpers shared by convolution and pooling: output sizes, zero
padding, a strided view of every window (im2col without the copy) and its adjoint."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def output_size(size, kernel, stride, pad=0):
    """Spatial output size of a valid window sweep: floor((size + 2 pad - kernel) / stride) + 1."""
    return (size + 2 * pad - kernel) // stride + 1


def zero_pad(x, pad):
    """x: (N, C, H, W) -> (N, C, H + 2 pad, W + 2 pad), zeros around; x itself when pad is 0."""
    if pad == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def windows(x, kh, kw, stride):
    """Strided view of every kh x kw window of ``x`` (no copy).

    x: (N, C, H, W) -> (N, C, oh, ow, kh, kw)
    """
    return sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]


def col2im(dwin, x_shape, stride):
    """Adjoint of :func:`windows`: add every window's gradient back onto its pixels.

    dwin: (kh, kw, A, B, oh, ow), gradient per kernel offset and window; the kernel
          offsets lead so that each ``dwin[i, j]`` slice is a contiguous (oh, ow) slab
          when the caller produced it that way (conv's backward GEMM does)
    x_shape: (A, B, H, W) of the (padded) input the windows were taken from
    returns dx: (A, B, H, W)
    """
    kh, kw, A, B, oh, ow = dwin.shape
    dx = np.zeros(x_shape, dtype=dwin.dtype)
    if stride == kh == kw:
        # Non-overlapping windows tile the image: a transpose places every
        # element, no additions needed (and the result equals the loop's bits).
        tiled = dwin.transpose(2, 3, 4, 0, 5, 1).reshape(A, B, oh * kh, ow * kw)
        dx[:, :, : oh * kh, : ow * kw] = tiled
        return dx
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride] += dwin[i, j]
    return dx
