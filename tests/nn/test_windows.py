"""The window arithmetic: every layer's output_shape is what its forward returns."""

import numpy as np
import pytest

from partrain.nn import AvgPool2D, Conv2D, MaxPool2D

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def test_output_shape_agrees_with_forward():
    x = np.zeros((1, 3, 11, 9))
    for layer in [Conv2D(3, 5, 3, stride=2, pad=1), MaxPool2D(3, 2), AvgPool2D(2)]:
        if layer.param_shapes():
            layer.params = {k: np.zeros(s) for k, s in layer.param_shapes().items()}
        assert layer.forward(x)[0].shape[1:] == layer.output_shape(x.shape[1:])


@pytest.mark.parametrize("k,h,w", [(3, 7, 9), (5, 14, 14), (1, 4, 5), (4, 4, 6)])
def test_col2im_flat_adds_what_col2im_adds(k, h, w):
    """The stride-1 col2im on maps laid out at the input's size gives the strided
    col2im's values (the padding positions add exact zeros)."""
    from partrain.nn.windows import col2im, col2im_flat

    rng = np.random.default_rng(k)
    A, B, oh, ow = 2, 3, h - k + 1, w - k + 1
    dwin = rng.standard_normal((k, k, A, B, oh, ow))
    at_input_size = np.zeros((k, k, A, B, h, w))
    at_input_size[..., :oh, :ow] = dwin
    flat = col2im_flat(at_input_size.reshape(k, k, -1), (A, B, h, w))
    np.testing.assert_array_equal(flat, col2im(dwin, (A, B, h, w), 1))


@pytest.mark.parametrize("shape,k,stride", [((2, 3, 9, 8), 3, 1), ((2, 3, 9, 8), 3, 2),
                                            ((1, 1, 5, 5), 5, 1), ((2, 2, 7, 6), 2, 3)])
def test_windows_is_sliding_window_view(shape, k, stride):
    """The directly built view of a contiguous input, and the fallback for any other,
    equal numpy's sliding_window_view, and cannot be written through."""
    from numpy.lib.stride_tricks import sliding_window_view

    from partrain.nn.windows import windows

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    read_only = x.copy()
    read_only.flags.writeable = False
    for a in (x, x[1:], x[:, 1:], x.transpose(1, 0, 2, 3), read_only):
        view = windows(a, k, k, stride)
        expected = sliding_window_view(a, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
        np.testing.assert_array_equal(view, expected)
        assert view.shape == expected.shape and not view.flags.writeable
