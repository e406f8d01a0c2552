"""2-D convolution: the Conv2D layer, its im2col path, and the choice between im2col
and the FFT (whose numerics live in :mod:`partrain.nn.fft`).

Both paths are whole-batch array operations, no per-pixel or per-image Python loops:
im2col copies a strided view of every window once, then does one matrix product; the
FFT transforms, multiplies per frequency and transforms back.
"""

from __future__ import annotations

import numpy as np

from . import fft
from .init import normal_init, zeros_init
from .layer import Layer
from .windows import col2im, col2im_flat, output_size, windows, zero_pad


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
    * ``"fft"``: correlation theorem, per image and channel (:mod:`partrain.nn.fft`).
      Costs O(log HW) per pixel whatever k is, so it wins for large kernels over many
      input maps. Stride 1 only.
    * ``"auto"`` (default): ``fft`` for stride 1 when each output sums at least
      FFT_MIN_TAPS = C_in k^2 products, else ``im2col``.
    """

    decay = ("W",)
    # Where the FFT starts to pay: `scripts/benchmarks/profile_layers.py --model M --conv-method
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

    def dense_weight(self):
        """W as dense kernels (C_out, C_in, k, k): a connection table's missing pairs
        are all-zero kernels."""
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
        xp = zero_pad(x, self.pad)
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
        # The one im2col copy, kernel offset first: (C_in k k, N oh ow). Each (c, i, j)
        # row is the input shifted by (i, j), copied a whole image row at a time; the
        # pixel-major layout (N oh ow, C_in k k) gathered k numbers at a time and took
        # 2-4x longer on small inputs (scripts/benchmarks/profile_layers.py). The GEMM
        # computes the same dot products, and its bits are the same.
        cols_t = np.ascontiguousarray(win.transpose(1, 4, 5, 0, 2, 3)).reshape(-1, N * oh * ow)
        Wd = self.dense_weight().reshape(self.cout, -1)          # (C_out, C_in k k)
        y = Wd @ cols_t                                           # (C_out, N oh ow)
        if self.bias:
            y += self.params["b"][:, None]
        y = y.reshape(self.cout, N, oh, ow).transpose(1, 0, 2, 3)
        return y, (xp.shape, cols_t, Wd)

    def _backward_im2col(self, dy, cache):
        xp_shape, cols_t, Wd = cache
        N, _, oh, ow = dy.shape
        # dy map-major, (C_out, N oh ow), the columns in cols_t's order: a small copy
        # (free when dy still has the layout this layer's forward gave y).
        dy_maps = np.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(self.cout, -1)
        # dW = dy_maps cols_t^T, computed as (cols_t dy_maps^T)^T: the same dot
        # products, which BLAS runs up to 1.7x faster in this orientation on chunk-sized
        # inputs (scripts/benchmarks/gemm_layouts.py: lenet5's C3 0.050 against 0.085
        # ms, mnist-conv's C1 0.168 against 0.228).
        dWd = (cols_t @ dy_maps.T).T.reshape(self.cout, self.cin, self.k, self.k)
        grads = self._weight_grads(self._connected(dWd), dy)
        dx = None
        if self.need_dx:
            # Rows in (i, j, c) order, (k k C_in, N oh ow): each kernel offset's gradient
            # is then one contiguous slab, which col2im adds with few, long operations
            # (the (c, i, j) order made them 4-D strided). The same dot products, rows
            # permuted.
            k = self.k
            W_offset_major = Wd.reshape(self.cout, self.cin, k * k)
            W_offset_major = W_offset_major.transpose(0, 2, 1).reshape(self.cout, -1)
            n, c, hp, wp = xp_shape
            if self.stride == 1:
                # dy placed at the padded input's size, zeros past (oh, ow): kernel
                # offset (i, j) is then the flat shift i wp + j, and col2im is k*k
                # contiguous additions instead of k*k strided 4-D ones. The GEMM grows
                # by hp wp / (oh ow), but lenet5's C3 backward went from 0.48 to 0.27 ms
                # with this and the orientation above (results/profile/).
                dy_padded = np.zeros((self.cout, N, hp, wp), dy.dtype)
                dy_padded[:, :, :oh, :ow] = dy.transpose(1, 0, 2, 3)
                dflat = W_offset_major.T @ dy_padded.reshape(self.cout, -1)
                dxp = col2im_flat(dflat.reshape(k, k, -1), (c, n, hp, wp))
            else:
                dcols_t = (W_offset_major.T @ dy_maps).reshape(k, k, self.cin, N, oh, ow)
                dxp = col2im(dcols_t, (c, n, hp, wp), self.stride)
            dx = self._crop_pad(dxp.transpose(1, 0, 2, 3))
        return dx, grads

    # -- FFT (the numerics and why exact zeros are written: partrain.nn.fft) -------
    def _forward_fft(self, xp):
        s = fft.transform_size(*xp.shape[2:])
        Wf = self._weight_fft(s)                                  # (C_out, C_in, ...)
        y, Xf = fft.correlate(xp, Wf, self.k, s, self._links())
        y = y + self.params["b"][:, None, None] if self.bias else np.ascontiguousarray(y)
        return y, (xp.shape, s, Xf, Wf)

    def _links(self):
        """(C_in, C_out) bool: input map c reaches output map o through a kernel with a
        nonzero tap (the connection table's missing pairs are all-zero kernels)."""
        return (self.dense_weight() != 0).any(axis=(2, 3)).T

    def _backward_fft(self, dy, cache):
        (_, _, hp, wp), s, Xf, Wf = cache
        dYf = fft.spectrum(dy, s)                                 # (N, C_out, ...)
        dW = fft.kernel_gradient(dYf, Xf, self.k, s, self._connected)
        grads = self._weight_grads(np.ascontiguousarray(dW), dy)
        dx = None
        if self.need_dx:
            dx = self._crop_pad(fft.input_gradient(dYf, Wf, s, hp, wp))
        return dx, grads

    def _weight_fft(self, s):
        """The dense kernels' spectrum at size s, recomputed only when W has changed.

        Every chunk of a step uses the same weights, so a worker transforms them once
        per step instead of once per chunk. The check compares values (a few thousand
        numbers), so the memo can never serve stale weights.
        """
        W = self.params["W"]
        memo = self._weight_fft_memo
        if memo is not None and memo[0] == s and memo[1].dtype == W.dtype \
                and np.array_equal(memo[1], W):
            return memo[2]
        Wf = fft.spectrum(self.dense_weight(), s)
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
