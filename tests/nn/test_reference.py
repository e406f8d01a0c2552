"""Every fast kernel equals the plain reference kernel (partrain.nn.reference) on random
inputs, forward and backward, in float64."""

import numpy as np
import pytest

from partrain.nn import AvgPool2D, Conv2D, MaxPool2D
from partrain.nn import reference as ref


@pytest.mark.parametrize("method,stride,pad", [("im2col", 1, 0), ("im2col", 2, 1),
                                               ("im2col", 1, 2), ("fft", 1, 0), ("fft", 1, 1)])
@pytest.mark.parametrize("table", [None, [[0, 1], [1, 2], [0, 2], [0, 1, 2]]])
def test_conv_equals_the_reference(method, stride, pad, table):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 3, 9, 8))
    layer = Conv2D(3, 4, 3, stride=stride, pad=pad, table=table, method=method)
    layer.params = {k: rng.standard_normal(v) for k, v in layer.param_shapes().items()}
    W = layer.dense_weight()
    y, cache = layer.forward(x)
    np.testing.assert_allclose(y, ref.conv2d_forward(x, W, layer.params["b"], stride, pad),
                               rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    dx, grads = layer.backward(dy, cache)
    dx_ref, dW_ref, db_ref = ref.conv2d_backward(dy, x, W, stride, pad)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grads["W"], layer._connected(dW_ref), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grads["b"], db_ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("window,stride", [(2, 2), (3, 2), (2, 1)])
def test_pools_equal_the_reference(window, stride):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 7, 6))
    for layer, reduce, backward in ((MaxPool2D(window, stride), np.max, ref.max_pool_backward),
                                    (AvgPool2D(window, stride), np.mean, ref.avg_pool_backward)):
        y, cache = layer.forward(x)
        np.testing.assert_allclose(y, ref.pool_forward(x, window, stride, reduce), rtol=1e-12)
        dy = rng.standard_normal(y.shape)
        dx, _ = layer.backward(dy, cache)
        np.testing.assert_allclose(dx, backward(dy, x, window, stride), rtol=1e-12, atol=1e-12)
