"""Every layer's backward is the derivative of its forward (float64 central differences),
and the vectorized convolution equals the textbook sum."""

import numpy as np
import pytest

from gradcheck import numeric_grad, rel_error
from partrain.nn import layers as L

TOL = 1e-6


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Tiny matrices: threaded BLAS only spins, and on a shared machine 10x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def check_layer(layer, x, rng):
    """Compare backward's dx and parameter grads with finite differences of sum(y * w)."""
    for name, shape in layer.param_shapes().items():
        layer.params[name] = rng.standard_normal(shape)
    y, _ = layer.forward(x)
    weights = rng.standard_normal(y.shape)   # a random linear read-out of y

    def f():
        return float(np.sum(layer.forward(x)[0] * weights))

    y, cache = layer.forward(x)
    dx, grads = layer.backward(weights, cache)
    assert rel_error(dx, numeric_grad(f, x)) < TOL
    assert set(grads) == set(layer.params)
    for name, p in layer.params.items():
        assert grads[name].shape == p.shape
        assert rel_error(grads[name], numeric_grad(f, p)) < TOL, name


METHODS = ["im2col", "fft"]


@pytest.mark.parametrize("method,stride,pad", [
    ("im2col", 1, 0), ("im2col", 2, 1), ("im2col", 1, 2), ("im2col", 3, 0),
    ("fft", 1, 0), ("fft", 1, 2),
])
def test_conv_gradients(method, stride, pad):
    rng = np.random.default_rng(0)
    layer = L.Conv2D(3, 4, 3, stride=stride, pad=pad, method=method)
    check_layer(layer, rng.standard_normal((2, 3, 7, 7)), rng)


@pytest.mark.parametrize("method", METHODS)
def test_conv_with_connection_table_gradients(method):
    rng = np.random.default_rng(1)
    table = [[0, 1], [1, 2], [0, 2], [0, 1, 2]]
    layer = L.Conv2D(3, 4, 3, table=table, method=method)
    assert layer.param_shapes()["W"] == (9, 3, 3)   # 9 connected kernels, not 12
    check_layer(layer, rng.standard_normal((2, 3, 6, 6)), rng)


@pytest.mark.parametrize("method", METHODS)
def test_conv_without_bias_has_only_weights(method):
    rng = np.random.default_rng(2)
    layer = L.Conv2D(2, 3, 2, bias=False, method=method)
    assert set(layer.param_shapes()) == {"W"}
    check_layer(layer, rng.standard_normal((2, 2, 5, 5)), rng)


@pytest.mark.parametrize("method,stride", [("im2col", 2), ("im2col", 1), ("fft", 1)])
def test_conv_matches_direct_sum(method, stride):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 7))
    layer = L.Conv2D(3, 2, 3, stride=stride, pad=1, method=method)
    layer.params = {"W": rng.standard_normal((2, 3, 3, 3)), "b": rng.standard_normal(2)}
    y, _ = layer.forward(x)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    expect = np.zeros_like(y)
    s = stride
    for n in range(2):
        for f in range(2):
            for i in range(y.shape[2]):
                for j in range(y.shape[3]):
                    patch = xp[n, :, s * i : s * i + 3, s * j : s * j + 3]
                    expect[n, f, i, j] = np.sum(patch * layer.params["W"][f]) + layer.params["b"][f]
    np.testing.assert_allclose(y, expect, rtol=1e-12, atol=1e-12)


def test_fft_and_im2col_agree_on_lenet5_cat_shapes():
    """C1 and C3 of LeNet-5-cat (9x9 kernels, C3's table): same outputs and gradients."""
    rng = np.random.default_rng(10)
    for cin, cout, size, table in [(3, 6, 64, None), (6, 16, 28, [[0, 1, 2]] * 8 + [[3, 4, 5]] * 8)]:
        x = rng.random((3, cin, size, size))
        a = L.Conv2D(cin, cout, 9, table=table, method="im2col")
        b = L.Conv2D(cin, cout, 9, table=table, method="fft")
        params = {k: rng.standard_normal(s) for k, s in a.param_shapes().items()}
        a.params, b.params = params, params
        (ya, ca), (yb, cb) = a.forward(x), b.forward(x)
        np.testing.assert_allclose(yb, ya, rtol=1e-9, atol=1e-9)
        dy = rng.standard_normal(ya.shape)
        (dxa, ga), (dxb, gb) = a.backward(dy, ca), b.backward(dy, cb)
        np.testing.assert_allclose(dxb, dxa, rtol=1e-9, atol=1e-9)
        for key in ga:
            np.testing.assert_allclose(gb[key], ga[key], rtol=1e-9, atol=1e-8)


def test_fft_conv_sees_weights_updated_in_place():
    """The optimizer updates W in place between steps; the cached kernel transform
    must follow it."""
    rng = np.random.default_rng(11)
    layer = L.Conv2D(2, 3, 5, method="fft")
    layer.params = {"W": rng.standard_normal((3, 2, 5, 5)), "b": np.zeros(3)}
    x = rng.standard_normal((2, 2, 9, 9))
    layer.forward(x)
    layer.params["W"][0, 1, 2, 3] += 0.5
    fresh = L.Conv2D(2, 3, 5, method="fft")
    fresh.params = {k: v.copy() for k, v in layer.params.items()}
    np.testing.assert_array_equal(layer.forward(x)[0], fresh.forward(x)[0])


def test_conv_method_auto_uses_fft_for_many_taps_only():
    assert L.Conv2D(3, 6, 9).method == "fft"              # 243 taps per output
    assert L.Conv2D(1, 20, 9).method == "im2col"          # 81
    assert L.Conv2D(3, 6, 9, stride=2).method == "im2col"
    with pytest.raises(ValueError, match="stride"):
        L.Conv2D(3, 6, 9, stride=2, method="fft")


@pytest.mark.parametrize("method", METHODS)
def test_connection_table_equals_masked_dense_conv(method):
    rng = np.random.default_rng(4)
    table = [[0], [0, 1], [1]]
    sparse = L.Conv2D(2, 3, 3, table=table, bias=False, method=method)
    sparse.params = {"W": rng.standard_normal((4, 3, 3))}
    dense = L.Conv2D(2, 3, 3, bias=False)
    W = np.zeros((3, 2, 3, 3))
    for k, (o, i) in enumerate([(0, 0), (1, 0), (1, 1), (2, 1)]):
        W[o, i] = sparse.params["W"][k]
    dense.params = {"W": W}
    x = rng.standard_normal((2, 2, 5, 5))
    np.testing.assert_allclose(sparse.forward(x)[0], dense.forward(x)[0], rtol=1e-12)


@pytest.mark.parametrize("window,stride", [(2, 2), (3, 2), (2, 1), (3, 3)])
def test_maxpool_gradients(window, stride):
    rng = np.random.default_rng(5)
    # A permutation: distinct values, so no finite-difference step crosses a tie.
    x = rng.permutation(2 * 3 * 7 * 7).reshape(2, 3, 7, 7) / 10.0
    check_layer(L.MaxPool2D(window, stride), x, rng)


def test_maxpool_routes_gradient_to_the_maximum():
    x = np.array([[[[1.0, 5.0], [3.0, 2.0]]]])
    layer = L.MaxPool2D(2)
    y, cache = layer.forward(x)
    assert y.item() == 5.0
    dx, _ = layer.backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(dx, [[[[0, 1], [0, 0]]]])


def test_maxpool_sends_a_tied_gradient_to_the_first_maximum_only():
    # All zeros, as after a ReLU: the window's gradient must not be counted four times.
    layer = L.MaxPool2D(2)
    y, cache = layer.forward(np.zeros((1, 1, 2, 2)))
    dx, _ = layer.backward(np.full_like(y, 3.0), cache)
    np.testing.assert_array_equal(dx, [[[[3, 0], [0, 0]]]])


@pytest.mark.parametrize("window,stride", [(2, 2), (3, 1), (2, 3)])
def test_avgpool_gradients(window, stride):
    rng = np.random.default_rng(6)
    check_layer(L.AvgPool2D(window, stride), rng.standard_normal((2, 2, 6, 7)), rng)


@pytest.mark.parametrize("cls", [L.ReLU, L.Sigmoid, L.Tanh, L.Flatten])
def test_elementwise_gradients(cls):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2, 4, 4))
    x[np.abs(x) < 1e-3] = 0.5   # keep away from ReLU's kink
    check_layer(cls(), x, rng)


@pytest.mark.parametrize("bias", [True, False])
def test_dense_gradients(bias):
    rng = np.random.default_rng(8)
    check_layer(L.Dense(5, 4, bias=bias), rng.standard_normal((3, 5)), rng)


def test_sigmoid_is_stable_for_large_inputs():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = L.sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(y, [0.0, 0.5, 1.0])


@pytest.mark.parametrize("method", METHODS)
def test_float32_in_float32_out(method):
    rng = np.random.default_rng(9)
    layer = L.Conv2D(1, 2, 3, method=method)
    layer.params = {"W": rng.standard_normal((2, 1, 3, 3)).astype(np.float32),
                    "b": np.zeros(2, np.float32)}
    y, cache = layer.forward(rng.standard_normal((2, 1, 5, 5)).astype(np.float32))
    assert y.dtype == np.float32
    dx, grads = layer.backward(np.ones_like(y), cache)
    assert dx.dtype == grads["W"].dtype == np.float32


@pytest.mark.parametrize("method", METHODS)
def test_first_layer_skips_input_gradient(method):
    layer = L.Conv2D(1, 1, 2, method=method)
    layer.params = {"W": np.ones((1, 1, 2, 2)), "b": np.zeros(1)}
    layer.need_dx = False
    y, cache = layer.forward(np.ones((1, 1, 3, 3)))
    dx, grads = layer.backward(np.ones_like(y), cache)
    assert dx is None and grads["W"].shape == (1, 1, 2, 2)


def test_output_shape_agrees_with_forward():
    x = np.zeros((1, 3, 11, 9))
    for layer in [L.Conv2D(3, 5, 3, stride=2, pad=1), L.MaxPool2D(3, 2), L.AvgPool2D(2)]:
        if layer.param_shapes():
            layer.params = {k: np.zeros(s) for k, s in layer.param_shapes().items()}
        assert layer.forward(x)[0].shape[1:] == layer.output_shape(x.shape[1:])


def test_base_layer_declares_parameters_from_its_initial_values():
    class Affine(L.Layer):
        decay = ("a",)

        def __init__(self):
            super().__init__()
            self.params = {"a": [[1.0, 2.0]], "c": np.zeros(2, np.float32)}

    layer = Affine()
    assert layer.param_shapes() == {"a": (1, 2), "c": (2,)}
    init = layer.init_params(np.random.default_rng(0))
    assert init["a"].dtype == np.float64 and init["a"].tolist() == [[1.0, 2.0]]
    assert init["a"] is not layer.params["a"]
    assert L.ReLU().param_shapes() == {} and L.ReLU().init_params(None) == {}


def test_initializers_draw_their_distribution_and_pickle():
    import pickle

    rng = np.random.default_rng(0)
    u = pickle.loads(pickle.dumps(L.uniform_init(0.12)))(rng, (4000,))
    assert np.abs(u).max() <= 0.12 and u.std() == pytest.approx(0.12 / np.sqrt(3), rel=0.05)
    n = pickle.loads(pickle.dumps(L.normal_init(0.01)))(rng, (4000,))
    assert n.std() == pytest.approx(0.01, rel=0.05)
    assert not L.zeros_init(rng, (3, 2)).any()


def test_pickled_fft_conv_drops_its_kernel_cache_and_gives_the_same_output():
    import pickle

    rng = np.random.default_rng(12)
    layer = L.Conv2D(3, 4, 9, method="fft")
    layer.params = {"W": rng.standard_normal((4, 3, 9, 9)), "b": rng.standard_normal(4)}
    x = rng.standard_normal((2, 3, 16, 16))
    y, _ = layer.forward(x)          # fills the per-process kernel transform cache
    blob = pickle.dumps(layer)
    assert len(blob) < 2 * layer.params["W"].nbytes + 4096   # no cached spectra
    twin = pickle.loads(blob)
    np.testing.assert_array_equal(twin.forward(x)[0], y)
