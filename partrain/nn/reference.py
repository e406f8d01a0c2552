"""Plain reference kernels, one loop per output element, as cs231n's ``layers.py``
keeps ``conv_forward_naive`` beside its fast layers.

They are slow on purpose: each line is the definition of the operation, so a reader can
check it, and the tests compare every fast kernel (im2col, FFT, the pooling offsets)
against them on random inputs. Shapes: x (N, C, H, W), W (F, C, k, k), b (F,).
"""

from __future__ import annotations

import numpy as np


def window(i, j, size, stride):
    """(rows, cols): the slices of the size x size window of output position (i, j)."""
    return (slice(stride * i, stride * i + size), slice(stride * j, stride * j + size))


def conv2d_forward(x, W, b, stride=1, pad=0):
    """y[n, f, i, j] = sum over c, p, q of xp[n, c, s i + p, s j + q] W[f, c, p, q] + b[f]."""
    N, _, H, Wd = x.shape
    F, _, k, _ = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (H + 2 * pad - k) // stride + 1, (Wd + 2 * pad - k) // stride + 1
    y = np.zeros((N, F, oh, ow), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(oh):
                for j in range(ow):
                    rows, cols = window(i, j, k, stride)
                    y[n, f, i, j] = np.sum(xp[n, :, rows, cols] * W[f]) + (0 if b is None else b[f])
    return y


def conv2d_backward(dy, x, W, stride=1, pad=0):
    """(dx, dW, db) of :func:`conv2d_forward`: every output's gradient goes back to the
    window and the kernel that made it."""
    k = W.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dW = np.zeros_like(xp), np.zeros_like(W)
    N, F, oh, ow = dy.shape
    for n in range(N):
        for f in range(F):
            for i in range(oh):
                for j in range(ow):
                    rows, cols = window(i, j, k, stride)
                    dW[f] += dy[n, f, i, j] * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += dy[n, f, i, j] * W[f]
    dx = dxp[:, :, pad : pad + x.shape[2], pad : pad + x.shape[3]]
    return dx, dW, dy.sum(axis=(0, 2, 3))


def pool_forward(x, size, stride, reduce):
    """y[n, c, i, j] = reduce(x's window at (i, j)); reduce: np.max or np.mean."""
    N, C, H, W = x.shape
    oh, ow = (H - size) // stride + 1, (W - size) // stride + 1
    y = np.zeros((N, C, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            rows, cols = window(i, j, size, stride)
            y[:, :, i, j] = reduce(x[:, :, rows, cols], axis=(2, 3))
    return y


def max_pool_backward(dy, x, size, stride):
    """The gradient of a window's max goes to its first maximum in row-major order."""
    dx = np.zeros_like(x)
    N, C, oh, ow = dy.shape
    for n in range(N):
        for c in range(C):
            for i in range(oh):
                for j in range(ow):
                    rows, cols = window(i, j, size, stride)
                    p, q = np.unravel_index(np.argmax(x[n, c, rows, cols]), (size, size))
                    dx[n, c, rows.start + p, cols.start + q] += dy[n, c, i, j]
    return dx


def avg_pool_backward(dy, x, size, stride):
    """Each window's gradient is shared equally by its size * size inputs."""
    dx = np.zeros_like(x)
    _, _, oh, ow = dy.shape
    for i in range(oh):
        for j in range(ow):
            rows, cols = window(i, j, size, stride)
            dx[:, :, rows, cols] += dy[:, :, i, j][:, :, None, None] / size ** 2
    return dx
