"""Layers: each a small class with ``forward(x) -> (y, cache)`` and
``backward(dy, cache) -> (dx, grads)``, in the cs231n ``layers.py`` tradition.

Conventions
-----------
* Images are NCHW: ``x.shape == (N, C, H, W)``; dense inputs are ``(N, D)``.
* A layer's parameters live in ``layer.params`` (``dict[str, ndarray]``), which the
  model binds to named views of its one flat parameter buffer; ``backward`` returns
  ``grads`` with the same keys and shapes.
* Everything runs in the dtype of the input and parameters (float32 or float64).
* No per-pixel or per-image Python loops. A convolution runs one of two ways, both
  whole-batch array operations: im2col (a strided view copied once, then one matrix
  product) or FFT (transform, multiply per frequency, transform back). Pooling loops
  only over the k*k offsets inside a window.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

Init = "callable(rng: numpy.random.Generator, shape: tuple) -> float64 ndarray"


class uniform_init:
    """Initializer drawing from U(-limit, limit). A class, not a lambda, so a model
    pickles with the standard library (checkpoints, worker processes)."""

    def __init__(self, limit):
        self.limit = float(limit)

    def __call__(self, rng, shape):
        return rng.uniform(-self.limit, self.limit, size=shape)


class normal_init:
    """Initializer drawing from N(0, std**2)."""

    def __init__(self, std):
        self.std = float(std)

    def __call__(self, rng, shape):
        return self.std * rng.standard_normal(size=shape)


def zeros_init(rng, shape):
    return np.zeros(shape)


class constant_init:
    """Initializer returning fixed values, such as a seed's hand-set starting weights
    (seed 003). Draws nothing from the generator; the layer's shape must match."""

    def __init__(self, values):
        self.values = np.array(values, dtype=np.float64)

    def __call__(self, rng, shape):
        if self.values.shape != tuple(shape):
            raise ValueError(f"hand-set values have shape {self.values.shape}, "
                             f"the layer needs {tuple(shape)}")
        return self.values.copy()


# ----------------------------------------------------------------------------
# Window helpers shared by convolution and pooling
# ----------------------------------------------------------------------------

def output_size(size, kernel, stride, pad=0):
    """Spatial output size of a valid window sweep: floor((size + 2 pad - kernel) / stride) + 1."""
    return (size + 2 * pad - kernel) // stride + 1


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


def _pad(x, pad):
    if pad == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


# ----------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------

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


class Conv2D(Layer):
    """2-D cross-correlation with stride, zero padding and an optional connection table.

    x: (N, C_in, H, W) -> y: (N, C_out, oh, ow), oh = (H + 2 pad - k) // stride + 1.

    Parameters
    ----------
    W: (C_out, C_in, k, k) for a full convolution, or (n_connections, k, k) when
       ``table`` lists which input maps each output map sees (LeNet-5's C3). Only the
       connected kernels are parameters; the passes scatter them into a dense
       (C_out, C_in, k, k) array, so the layer stays a few whole-batch operations.
    b: (C_out,) unless ``bias=False``.

    ``method`` picks how the sums are computed; both give the same values up to
    rounding and both are checked against finite differences:

    * ``"im2col"``: copy every window into a row, then one matrix product.
      Costs ~2 C_in k^2 flops per output pixel and map; best for small kernels.
    * ``"fft"``: correlation theorem, per image and channel. Costs O(log HW) per
      pixel whatever k is, so it wins for large kernels over many input maps.
      Stride 1 only.
    * ``"auto"`` (default): ``fft`` for stride 1 when each output sums at least
      FFT_MIN_TAPS = C_in k^2 products, else ``im2col``.
    """

    decay = ("W",)
    # Where the FFT starts to pay: `scripts/profile_layers.py --model M --conv-method
    # im2col|fft` (one core, float32, chunks of 8, forward+backward ms, im2col -> fft):
    # LeNet-5-cat C1 (243 taps) 24.4 -> 6.0, C3 (486) 12.7 -> 5.2; classic LeNet-5 C3
    # (150) 1.1 -> 1.5; cs231n conv (147) 7.4 -> 12.0; MNIST conv (81) 1.0 -> 2.6.
    # The im2col GEMM's cost grows with the taps, the FFT's does not.
    FFT_MIN_TAPS = 200

    def __init__(self, in_channels, out_channels, kernel, stride=1, pad=0,
                 table=None, bias=True, w_init=None, b_init=zeros_init, method="auto"):
        super().__init__()
        self.cin, self.cout, self.k = in_channels, out_channels, kernel
        self.stride, self.pad, self.bias = stride, pad, bias
        self.w_init = w_init or normal_init(1e-2)
        self.b_init = b_init
        if method == "auto":
            taps = in_channels * kernel * kernel
            method = "fft" if stride == 1 and taps >= self.FFT_MIN_TAPS else "im2col"
        if method not in ("im2col", "fft") or (method == "fft" and stride != 1):
            raise ValueError(f"method must be 'im2col', 'fft' (stride 1) or 'auto', "
                             f"got {method!r} with stride {stride}")
        self.method = method
        self._weight_fft_memo = None   # (fft size, W it was computed from, its transform)
        if table is not None:
            pairs = [(o, i) for o, inputs in enumerate(table) for i in inputs]
            if len(table) != out_channels or any(not 0 <= i < in_channels for _, i in pairs):
                raise ValueError("connection table does not match the channel counts")
            self.table_out = np.array([o for o, _ in pairs])
            self.table_in = np.array([i for _, i in pairs])
        else:
            self.table_out = self.table_in = None

    def param_shapes(self):
        k = self.k
        if self.table_out is not None:
            shapes = {"W": (len(self.table_out), k, k)}
        else:
            shapes = {"W": (self.cout, self.cin, k, k)}
        if self.bias:
            shapes["b"] = (self.cout,)
        return shapes

    def init_params(self, rng):
        shapes = self.param_shapes()
        out = {"W": self.w_init(rng, shapes["W"])}
        if self.bias:
            out["b"] = self.b_init(rng, shapes["b"])
        return out

    def output_shape(self, input_shape):
        c, h, w = input_shape
        if c != self.cin:
            raise ValueError(f"expects {self.cin} input channels, got {c}")
        return (self.cout, output_size(h, self.k, self.stride, self.pad),
                output_size(w, self.k, self.stride, self.pad))

    def _dense_weight(self):
        W = self.params["W"]
        if self.table_out is None:
            return W
        dense = np.zeros((self.cout, self.cin, self.k, self.k), dtype=W.dtype)
        dense[self.table_out, self.table_in] = W
        return dense

    def _connected(self, dense):
        """(C_out, C_in, ...) -> the entries that are parameters: (n_connections, ...)
        with a connection table, all of them otherwise."""
        return dense if self.table_out is None else dense[self.table_out, self.table_in]

    def _weight_grads(self, dW, dy):
        """dW: gradient of the parameter W (already reduced to the connected kernels)."""
        grads = {"W": dW}
        if self.bias:
            grads["b"] = dy.sum(axis=(0, 2, 3))
        return grads

    def _crop_pad(self, dxp):
        p = self.pad
        if p:
            dxp = dxp[:, :, p:-p, p:-p]
        return np.ascontiguousarray(dxp)

    def forward(self, x):
        xp = _pad(x, self.pad)
        if self.method == "fft":
            return self._forward_fft(xp)
        return self._forward_im2col(xp)

    def backward(self, dy, cache):
        if self.method == "fft":
            return self._backward_fft(dy, cache)
        return self._backward_im2col(dy, cache)

    # -- im2col -----------------------------------------------------------------
    def _forward_im2col(self, xp):
        N = xp.shape[0]
        win = windows(xp, self.k, self.k, self.stride)            # (N, C, oh, ow, k, k)
        oh, ow = win.shape[2], win.shape[3]
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(N * oh * ow, -1)  # the one im2col copy
        Wd = self._dense_weight().reshape(self.cout, -1)          # (C_out, C_in k k)
        y = cols @ Wd.T                                           # (N oh ow, C_out)
        if self.bias:
            y += self.params["b"]
        y = y.reshape(N, oh, ow, self.cout).transpose(0, 3, 1, 2)
        return y, (xp.shape, cols, Wd)

    def _backward_im2col(self, dy, cache):
        xp_shape, cols, Wd = cache
        N, _, oh, ow = dy.shape
        dy2 = dy.transpose(0, 2, 3, 1).reshape(N * oh * ow, self.cout)
        dWd = (dy2.T @ cols).reshape(self.cout, self.cin, self.k, self.k)
        grads = self._weight_grads(self._connected(dWd), dy)
        dx = None
        if self.need_dx:
            # (C_in k k, N oh ow): each kernel offset's gradient is a contiguous slab,
            # which makes col2im's additions stream through memory.
            dcols_t = (Wd.T @ dy2.T).reshape(self.cin, self.k, self.k, N, oh, ow)
            n, c, hp, wp = xp_shape
            dxp = col2im(dcols_t.transpose(1, 2, 0, 3, 4, 5), (c, n, hp, wp), self.stride)
            dx = self._crop_pad(dxp.transpose(1, 0, 2, 3))
        return dx, grads

    # -- FFT ----------------------------------------------------------------------
    # With the transforms F taken at size s >= the padded input (hp, wp), circular
    # correlation equals the linear one on every index we keep, because no kept index
    # reaches past the input's edge:
    #   y[i]     = sum_u x[i+u] w[u]       F(y)  = F(x) conj(F(w))   i < oh
    #   dW[u]    = sum_i x[i+u] dy[i]      F(dW) = F(x) conj(F(dy))  u < k
    #   dx[i+u] += dy[i] w[u]              F(dx) = F(dy) F(w)        i+u < hp
    #
    # Exact zeros. A transform mixes every input into every output, so an output whose
    # sum holds only zero products (a window of an all-black patch, of zero padding, or
    # of maps a ReLU switched off) comes back as rounding noise of either sign, about
    # 1e-16, where im2col's sum of zeros is exactly 0. The layers after it make discrete
    # choices on these values: a ReLU gate x > 0 passes the noise that is positive, and
    # with it an O(1) error that must be blocked; a max pool picks the largest noise
    # among tied zeros and routes the error there. So the forward pass writes exact
    # zeros where every product is zero by structure: the window holds no nonzero input
    # in any map the output reads through a kernel that is not all zeros. That is plain
    # logic on (x != 0), so it needs no tolerance and leaves every other output as the
    # FFT computed it; a tolerance on |y| would also erase true values that are merely
    # small. The gradients keep their noise: noise there is only a 1e-16 error in a
    # value (even ReLU's "error_sign" rule passes it as the 1e-16 it is), never a
    # switched decision.
    def _forward_fft(self, xp):
        hp, wp = xp.shape[2:]
        s = (scipy.fft.next_fast_len(hp, True), scipy.fft.next_fast_len(wp, True))
        oh, ow = hp - self.k + 1, wp - self.k + 1
        Xf = scipy.fft.rfft2(xp, s=s)                             # (N, C_in, s0, s1//2+1)
        Wf = self._weight_fft(s)                                  # (C_out, C_in, ...)
        y = scipy.fft.irfft2(mix_channels(Xf, Wf.conj()), s=s)[:, :, :oh, :ow]
        zero = structural_zeros(xp, self.k, self._links())        # (N, C_out, oh, ow) or None
        if zero is not None:
            y[zero] = 0
        y = y + self.params["b"][:, None, None] if self.bias else np.ascontiguousarray(y)
        return y, (xp.shape, s, Xf, Wf)

    def _links(self):
        """(C_in, C_out) bool: input map c reaches output map o through a kernel with a
        nonzero tap (the connection table's missing pairs are all-zero kernels)."""
        return (self._dense_weight() != 0).any(axis=(2, 3)).T

    def _backward_fft(self, dy, cache):
        (_, _, hp, wp), s, Xf, Wf = cache
        dYf = scipy.fft.rfft2(dy, s=s)                            # (N, C_out, ...)
        # Sum over the batch in frequency space, then one inverse transform per
        # connected kernel (60 of LeNet-5's 96 C3 pairs).
        dWf = self._connected(mix_channels(dYf.conj().swapaxes(0, 1), Xf.swapaxes(0, 1)))
        dW = scipy.fft.irfft2(dWf, s=s)[..., : self.k, : self.k]
        grads = self._weight_grads(np.ascontiguousarray(dW), dy)
        dx = None
        if self.need_dx:
            dxp = scipy.fft.irfft2(mix_channels(dYf, Wf.swapaxes(0, 1)), s=s)[:, :, :hp, :wp]
            dx = self._crop_pad(dxp)
        return dx, grads

    def _weight_fft(self, s):
        """rfft2 of the dense kernels at size s, recomputed only when W has changed.

        Every chunk of a step uses the same weights, so a worker transforms them once
        per step instead of once per chunk. The check compares values (a few thousand
        numbers), so the memo can never serve stale weights.
        """
        W = self.params["W"]
        memo = self._weight_fft_memo
        if memo is not None and memo[0] == s and memo[1].dtype == W.dtype \
                and np.array_equal(memo[1], W):
            return memo[2]
        Wf = scipy.fft.rfft2(self._dense_weight(), s=s)
        self._weight_fft_memo = (s, W.copy(), Wf)
        return Wf

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_weight_fft_memo"] = None   # a per-process cache, rebuilt on first use
        return state

    def describe(self):
        conn = f", {len(self.table_out)} connections" if self.table_out is not None else ""
        return (f"Conv2D({self.cin}->{self.cout}, {self.k}x{self.k}, stride {self.stride}, "
                f"pad {self.pad}{conn}{'' if self.bias else ', no bias'}, {self.method})")


def structural_zeros(a, k, links):
    """Where a sum over k x k windows of ``a`` is exactly zero by structure (see Conv2D).

    a: (N, A, H, W); links: (A, M) bool, whether output map m reads map a at all.
    Returns bool (N, M, H - k + 1, W - k + 1), True where no window of a linked map
    holds a nonzero; or None when there is no such output (nothing to do).
    """
    nonzero = a != 0
    every_output_linked = links.any(axis=0).all()
    if every_output_linked and nonzero.all():
        return None                          # natural images: no window can be empty
    occupied = _window_any(_window_any(nonzero, k, axis=3), k, axis=2)   # (N, A, oh, ow)
    if every_output_linked and occupied.all():
        return None
    # Per output map, how many linked input maps have a nonzero in the window: small
    # whole numbers, exact in float32, so one BLAS product decides it.
    reach = np.tensordot(occupied.astype(np.float32), links.astype(np.float32), axes=([1], [0]))
    return (reach == 0).transpose(0, 3, 1, 2)                    # (N, M, oh, ow)


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


class _Pool(Layer):
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
    ties = "first"   # class default: models pickled before the option still load

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
    blocked here as it is after im2col (see Conv2D).
    """

    RULES = ("input", "error_sign", "none")
    backward_rule = "input"   # class default: models pickled before the option still load

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

    amplitude = slope = 1.0   # what models pickled before these options had

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
        dx = dy @ self.params["W"].T if self.need_dx else None
        return dx, grads

    def describe(self):
        return f"Dense({self.din}->{self.dout}{'' if self.bias else ', no bias'})"
