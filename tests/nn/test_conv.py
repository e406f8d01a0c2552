"""Conv2D: both methods' backward is the derivative of their forward (float64 central
differences), the vectorized convolution equals the textbook sum, and the layer's
options (connection table, bias, method, dtype, first layer, pickling) hold."""

import numpy as np
import pytest

from partrain.nn import Conv2D

pytestmark = pytest.mark.usefixtures("one_blas_thread")

METHODS = ["im2col", "fft"]


@pytest.mark.parametrize("method,stride,pad", [
    ("im2col", 1, 0), ("im2col", 2, 1), ("im2col", 1, 2), ("im2col", 3, 0),
    ("fft", 1, 0), ("fft", 1, 2),
])
def test_conv_gradients(check_layer, method, stride, pad):
    rng = np.random.default_rng(0)
    layer = Conv2D(3, 4, 3, stride=stride, pad=pad, method=method)
    check_layer(layer, rng.standard_normal((2, 3, 7, 7)), rng)


@pytest.mark.parametrize("method", METHODS)
def test_conv_with_connection_table_gradients(check_layer, method):
    rng = np.random.default_rng(1)
    table = [[0, 1], [1, 2], [0, 2], [0, 1, 2]]
    layer = Conv2D(3, 4, 3, table=table, method=method)
    assert layer.param_shapes()["W"] == (9, 3, 3)   # 9 connected kernels, not 12
    check_layer(layer, rng.standard_normal((2, 3, 6, 6)), rng)


@pytest.mark.parametrize("method", METHODS)
def test_conv_without_bias_has_only_weights(check_layer, method):
    rng = np.random.default_rng(2)
    layer = Conv2D(2, 3, 2, bias=False, method=method)
    assert set(layer.param_shapes()) == {"W"}
    check_layer(layer, rng.standard_normal((2, 2, 5, 5)), rng)


def test_fft_conv_sees_weights_updated_in_place():
    """The optimizer updates W in place between steps; the cached kernel transform
    must follow it."""
    rng = np.random.default_rng(11)
    layer = Conv2D(2, 3, 5, method="fft")
    layer.params = {"W": rng.standard_normal((3, 2, 5, 5)), "b": np.zeros(3)}
    x = rng.standard_normal((2, 2, 9, 9))
    layer.forward(x)
    layer.params["W"][0, 1, 2, 3] += 0.5
    fresh = Conv2D(2, 3, 5, method="fft")
    fresh.params = {k: v.copy() for k, v in layer.params.items()}
    np.testing.assert_array_equal(layer.forward(x)[0], fresh.forward(x)[0])


def test_conv_method_auto_uses_fft_for_many_taps_only():
    assert Conv2D(3, 6, 9).method == "fft"              # 243 taps per output
    assert Conv2D(1, 20, 9).method == "im2col"          # 81
    assert Conv2D(3, 6, 9, stride=2).method == "im2col"
    with pytest.raises(ValueError, match="stride"):
        Conv2D(3, 6, 9, stride=2, method="fft")


@pytest.mark.parametrize("method", METHODS)
def test_connection_table_equals_masked_dense_conv(method):
    rng = np.random.default_rng(4)
    table = [[0], [0, 1], [1]]
    sparse = Conv2D(2, 3, 3, table=table, bias=False, method=method)
    sparse.params = {"W": rng.standard_normal((4, 3, 3))}
    dense = Conv2D(2, 3, 3, bias=False)
    W = np.zeros((3, 2, 3, 3))
    for k, (o, i) in enumerate([(0, 0), (1, 0), (1, 1), (2, 1)]):
        W[o, i] = sparse.params["W"][k]
    dense.params = {"W": W}
    x = rng.standard_normal((2, 2, 5, 5))
    np.testing.assert_allclose(sparse.forward(x)[0], dense.forward(x)[0], rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_float32_in_float32_out(method):
    rng = np.random.default_rng(9)
    layer = Conv2D(1, 2, 3, method=method)
    layer.params = {"W": rng.standard_normal((2, 1, 3, 3)).astype(np.float32),
                    "b": np.zeros(2, np.float32)}
    y, cache = layer.forward(rng.standard_normal((2, 1, 5, 5)).astype(np.float32))
    assert y.dtype == np.float32
    dx, grads = layer.backward(np.ones_like(y), cache)
    assert dx.dtype == grads["W"].dtype == np.float32


@pytest.mark.parametrize("method", METHODS)
def test_first_layer_skips_input_gradient(method):
    layer = Conv2D(1, 1, 2, method=method)
    layer.params = {"W": np.ones((1, 1, 2, 2)), "b": np.zeros(1)}
    layer.need_dx = False
    y, cache = layer.forward(np.ones((1, 1, 3, 3)))
    dx, grads = layer.backward(np.ones_like(y), cache)
    assert dx is None and grads["W"].shape == (1, 1, 2, 2)


def test_pickled_fft_conv_drops_its_kernel_cache_and_gives_the_same_output():
    import pickle

    rng = np.random.default_rng(12)
    layer = Conv2D(3, 4, 9, method="fft")
    layer.params = {"W": rng.standard_normal((4, 3, 9, 9)), "b": rng.standard_normal(4)}
    x = rng.standard_normal((2, 3, 16, 16))
    y, _ = layer.forward(x)          # fills the per-process kernel transform cache
    blob = pickle.dumps(layer)
    assert len(blob) < 2 * layer.params["W"].nbytes + 4096   # no cached spectra
    twin = pickle.loads(blob)
    np.testing.assert_array_equal(twin.forward(x)[0], y)
