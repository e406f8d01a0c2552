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
