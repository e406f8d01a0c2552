"""The numerics of a stride-1 convolution by FFT (the correlation theorem), for
:class:`partrain.nn.conv.Conv2D`: transform, multiply per frequency, transform back.

With the transforms F taken at size s >= the padded input (hp, wp), circular
correlation equals the linear one on every index we keep, because no kept index
reaches past the input's edge:

    y[i]     = sum_u x[i+u] w[u]       F(y)  = F(x) conj(F(w))   i < oh
    dW[u]    = sum_i x[i+u] dy[i]      F(dW) = F(x) conj(F(dy))  u < k
    dx[i+u] += dy[i] w[u]              F(dx) = F(dy) F(w)        i+u < hp

Exact zeros. A transform mixes every input into every output, so an output whose
sum holds only zero products (a window of an all-black patch, of zero padding, or
of maps a ReLU switched off) comes back as rounding noise of either sign, about
1e-16, where im2col's sum of zeros is exactly 0. The layers after it make discrete
choices on these values: a ReLU gate x > 0 passes the noise that is positive, and
with it an O(1) error that must be blocked; a max pool picks the largest noise
among tied zeros and routes the error there. So the forward pass writes exact
zeros where every product is zero by structure (:func:`structural_zeros`): the
window holds no nonzero input in any map the output reads through a kernel that is
not all zeros. That is plain logic on (x != 0), so it needs no tolerance and leaves
every other output as the FFT computed it; a tolerance on |y| would also erase true
values that are merely small. The gradients keep their noise: noise there is only a
1e-16 error in a value (even ReLU's "error_sign" rule passes it as the 1e-16 it is),
never a switched decision.

Shapes: N images, C_in input maps, C_out output maps, k x k kernels; spectra are
complex arrays (..., s0, s1 // 2 + 1).
"""

from __future__ import annotations

import numpy as np


def _scipy_fft():
    # Imported on first use: scipy costs a worker 0.2 s to import, and only models
    # with large kernels take the FFT path.
    import scipy.fft

    return scipy.fft


def transform_size(hp, wp):
    """(s0, s1): the smallest sizes >= the padded input's (hp, wp) that pocketfft
    transforms fast (factors 2, 3, 5, 7 and 11).

    Not ``next_fast_len(n, real=True)``, which allows only 2, 3 and 5: it padded
    LeNet-5-cat's 28 x 28 C3 input to 30 x 30, where the transforms take longer and
    there are 13% more frequencies to multiply (``python scripts/benchmarks/fft_parts.py``
    times both sizes).
    """
    return (_scipy_fft().next_fast_len(hp), _scipy_fft().next_fast_len(wp))


def spectrum(a, s):
    """2-D real FFT of the last two axes at size s: (..., H, W) -> (..., s0, s1 // 2 + 1)."""
    return _scipy_fft().rfft2(a, s=s)


def correlate(xp, Wf, k, s, links):
    """The forward pass without the bias, structural zeros written as exact zeros.

    xp: (N, C_in, hp, wp), the padded input
    Wf: (C_out, C_in, ...), ``spectrum`` of the dense kernels at size s
    links: (C_in, C_out) bool, whether output map o reads input map c through a kernel
           with a nonzero tap
    Returns y: (N, C_out, hp - k + 1, wp - k + 1), a non-contiguous view, and
    Xf: (N, C_in, ...), the input's spectrum, which the backward pass reuses.
    """
    hp, wp = xp.shape[2:]
    oh, ow = hp - k + 1, wp - k + 1
    Xf = spectrum(xp, s)
    y = _scipy_fft().irfft2(mix_channels(Xf, Wf.conj()), s=s)[:, :, :oh, :ow]
    zero = structural_zeros(xp, k, links)
    if zero is not None:
        y[zero] = 0
    return y, Xf


def kernel_gradient(dYf, Xf, k, s, connected):
    """dW[u] = sum over the batch and i of x[i+u] dy[i].

    dYf: (N, C_out, ...), ``spectrum`` of dy; Xf: (N, C_in, ...), of the padded input
    connected: maps a (C_out, C_in, ...) array to its entries that are parameters,
               (n_kernels, ...): a connection table's pairs, or all of them
    Returns (n_kernels, k, k), a non-contiguous view.
    """
    # Sum over the batch in frequency space, then one inverse transform per
    # connected kernel (60 of LeNet-5's 96 C3 pairs).
    dWf = connected(mix_channels(dYf.conj().swapaxes(0, 1), Xf.swapaxes(0, 1)))
    return _scipy_fft().irfft2(dWf, s=s)[..., :k, :k]


def input_gradient(dYf, Wf, s, hp, wp):
    """dx[i+u] += dy[i] w[u]: the gradient of the padded input.

    dYf: (N, C_out, ...), ``spectrum`` of dy; Wf: (C_out, C_in, ...), of the kernels
    Returns (N, C_in, hp, wp), a non-contiguous view.
    """
    return _scipy_fft().irfft2(mix_channels(dYf, Wf.swapaxes(0, 1)), s=s)[:, :, :hp, :wp]


def structural_zeros(a, k, links):
    """Where a sum over k x k windows of ``a`` is exactly zero by structure (see the
    module docstring).

    a: (N, A, H, W); links: (A, M) bool, whether output map m reads map a at all.
    Returns bool (N, M, H - k + 1, W - k + 1), True where no window of a linked map
    holds a nonzero; or None when there is no such output (nothing to do).
    """
    if links.all():
        return zeros_all_linked(a, k, links.shape[1])
    return zeros_per_map(a, k, links)


def zeros_all_linked(a, k, m):
    """:func:`structural_zeros` when each of the m outputs reads every map (no
    connection table): a window is empty only where it is empty in all of them, so
    the maps are ORed first, A times fewer windows to test and no product
    (``python scripts/benchmarks/fft_parts.py`` times both ways)."""
    any_map = (a != 0).any(axis=1, keepdims=True)                      # (N, 1, H, W)
    if any_map.all():
        return None                          # natural images: no window can be empty
    occupied = _window_any(_window_any(any_map, k, axis=3), k, axis=2)
    if occupied.all():
        return None
    return np.broadcast_to(~occupied, (a.shape[0], m) + occupied.shape[2:])


def zeros_per_map(a, k, links):
    """:func:`structural_zeros` for any links: each map's window occupancy, then per
    output map how many linked maps have a nonzero in the window."""
    nonzero = a != 0
    every_output_linked = links.any(axis=0).all()
    if every_output_linked and nonzero.all():
        return None
    occupied = _window_any(_window_any(nonzero, k, axis=3), k, axis=2)   # (N, A, oh, ow)
    if every_output_linked and occupied.all():
        return None
    # The counts are small whole numbers, exact in float32, so one BLAS product per
    # image decides them, laid out (N, M, oh ow) as the output is.
    n, maps, oh, ow = occupied.shape
    reach = links.T.astype(np.float32) @ occupied.reshape(n, maps, -1).astype(np.float32)
    return (reach == 0).reshape(n, links.shape[1], oh, ow)


def _window_any(m, k, axis):
    """Whether each run of k consecutive entries of the bool array m along ``axis``
    holds a True (the axis shrinks by k - 1). ORs of shifted copies: spans 1, 2, 4, ...
    up to the largest power of two p <= k, then two spans of p, k - p apart, cover k.
    Plain logic, so exact, and ~2 log2(k) passes over bytes."""
    def part(lo, hi):
        index = [slice(None)] * m.ndim
        index[axis] = slice(lo, hi)
        return tuple(index)

    span = 1
    while 2 * span <= k:
        n = m.shape[axis]
        m = m[part(0, n - span)] | m[part(span, n)]
        span *= 2
    if span < k:
        n = m.shape[axis]
        m = m[part(0, n - (k - span))] | m[part(k - span, n)]
    return m


def mix_channels(a, b):
    """out[n, o, ...] = sum_c a[n, c, ...] * b[o, c, ...]: the per-frequency channel sum
    of an FFT convolution.

    a: (N, C, *F), b: (O, C, *F) -> (N, O, *F). A loop over C of broadcast products:
    for these shapes (C <= 50, tiny per-frequency matrices) it beat einsum and a
    stacked matmul, which would first transpose F to the front, in a one-off timing on
    LeNet-5-cat's shapes (not kept as a script).
    """
    out = a[:, 0, None] * b[None, :, 0]
    term = np.empty_like(out)
    for c in range(1, a.shape[1]):
        np.multiply(a[:, c, None], b[None, :, c], out=term)
        out += term
    return out
