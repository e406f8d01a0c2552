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
    """Strided view of every kh x kw window of ``x`` (no copy, read-only).

    x: (N, C, H, W) -> (N, C, oh, ow, kh, kw)
    """
    n, c, h, w = x.shape
    sn, sc, sh, sw = x.strides
    shape = (n, c, (h - kh) // stride + 1, (w - kw) // stride + 1, kh, kw)
    strides = (sn, sc, sh * stride, sw * stride, sh, sw)
    if x.flags.c_contiguous:
        # The same view sliding_window_view makes, built directly: its checks are
        # Python and cost more than the view, twice per convolution and chunk.
        view = np.ndarray(shape, x.dtype, buffer=x, strides=strides)
        view.flags.writeable = False
        return view
    return sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]


def col2im(dwin, x_shape, stride):
    """Adjoint of :func:`windows`: add every window's gradient back onto its pixels.

    dwin: (kh, kw, A, B, oh, ow), gradient per kernel offset and window; the kernel
          offsets lead so that each ``dwin[i, j]`` slice is one contiguous (A B, oh, ow)
          slab when the caller produced it that way (conv's backward GEMM does): the
          additions then run over 3-D arrays instead of 4-D strided ones
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
    # Merging (A, B) is a view for a contiguous dwin and copies otherwise; either way
    # every element gets the same additions in the same order.
    slabs = dwin.reshape(kh, kw, A * B, oh, ow)
    dx3 = dx.reshape(A * B, *x_shape[2:])
    for i in range(kh):
        for j in range(kw):
            dx3[:, i : i + stride * oh : stride, j : j + stride * ow : stride] += slabs[i, j]
    return dx


def col2im_flat(dflat, x_shape):
    """:func:`col2im` for stride 1, on every map laid out at the input's size.

    dflat: (kh, kw, A B H W), per kernel offset the gradient of every output position
           (r, c) of every map m = a B + b, stored where the input pixel (r, c) of
           that map is, at (m H + r) W + c; zeros where r >= oh or c >= ow
    x_shape: (A, B, H, W), H = oh + kh - 1, W = ow + kw - 1
    returns dx: (A, B, H, W), a view

    Output (r, c) and offset (i, j) touch input (r + i, c + j), i W + j further on:
    each offset's gradient is one shifted run of numbers, added by one contiguous
    1-D operation (a 2-D strided one costs numpy a loop step per row). A valid
    output never reaches past its own map; the zeros may, and add nothing.
    """
    kh, kw, total = dflat.shape
    W = x_shape[3]
    flat = np.zeros(total + (kh - 1) * W + kw - 1, dtype=dflat.dtype)
    for i in range(kh):
        for j in range(kw):
            start = i * W + j
            run = flat[start : start + total]
            np.add(run, dflat[i, j], out=run)
    return flat[:total].reshape(x_shape)
