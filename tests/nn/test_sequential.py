"""Presets match their seeds, every preset's gradient is right (float64), and
Sequential takes your own layers."""

import pickle

import cloudpickle
import numpy as np
import pytest

from gradcheck import numeric_grad, rel_error, sample_coords
from partrain.nn import layers as L
from partrain.errors import UsageError
from partrain.nn.losses import SoftmaxCrossEntropy
from partrain.nn.sequential import Sequential
from partrain.presets import LENET_C3_TABLE, PRESETS, build_model


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Tiny matrices: threaded BLAS only spins, and on a shared machine 10x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def test_parameter_counts_match_the_seeds():
    assert build_model("lenet5-cat").num_params == 198_581   # C3 table: 60 kernels
    assert build_model("mnist-conv").num_params == 202_620   # no biases
    assert build_model("lenet5").num_params == 60_806
    assert build_model("digits123").num_params == 3 * 9 + 3 + 12 * 3 + 3


def test_lenet_c3_table_has_60_connections():
    assert sum(len(maps) for maps in LENET_C3_TABLE) == 60
    assert LENET_C3_TABLE[0] == [0, 1, 2] and LENET_C3_TABLE[5] == [5, 0, 1]
    assert LENET_C3_TABLE[6] == [0, 1, 2, 3] and LENET_C3_TABLE[15] == [0, 1, 2, 3, 4, 5]


def test_lenet5_cat_init_follows_seed_000():
    m = build_model("lenet5-cat", seed=3)
    for key in ("c1.W", "c3.W", "c5.W", "f6.W"):   # U(-0.12, 0.12): std 0.069
        assert np.abs(m.params[key]).max() <= 0.12 and m.params[key].std() > 0.05
    assert 0 < abs(m.params["f6.b"].item()) <= 0.12   # theta's bias row is drawn too
    for key in ("c1.b", "c3.b", "c5.b"):
        assert not m.params[key].any()


def test_params_are_views_of_one_flat_buffer():
    m = build_model("lenet5")
    m.flat[:] = 0
    assert all(not p.any() for p in m.params.values())
    m.params["c1.W"][...] = 1
    assert m.flat.sum() == m.params["c1.W"].size
    assert all(m.layers[i].params[pname] is m.params[key] for key, i, pname, _, _ in m.layout)


def test_bind_moves_every_view_to_the_new_buffer():
    m = build_model("digits123", dtype="float64")
    new = np.arange(m.num_params, dtype=np.float64)
    m.bind(new)
    assert m.flat is new and m.params["f2.b"][0] == new[-3]
    new[:] = 0
    assert not m.layers[0].params["W"].any()
    with pytest.raises(ValueError, match="flat buffer"):
        m.bind(np.zeros(m.num_params, np.float32))   # wrong dtype
    with pytest.raises(ValueError, match="flat buffer"):
        m.bind(np.zeros(m.num_params + 1))


def test_default_dtype_is_float32_and_both_dtypes_start_equal():
    assert build_model("lenet5").dtype == np.float32
    a = build_model("mnist-conv", seed=7, dtype="float64")
    b = build_model("mnist-conv", seed=7, dtype="float32")
    c = build_model("mnist-conv", seed=8, dtype="float64")
    np.testing.assert_array_equal(a.flat.astype(np.float32), b.flat)
    assert b.flat.dtype == np.float32 and a.flat.dtype == np.float64
    assert not np.array_equal(a.flat, c.flat)
    with pytest.raises(UsageError, match="unknown dtype"):
        build_model("lenet5", dtype="float16")


def _objective(model, X, y, weight_decay):
    """Mean loss plus 1/2 wd |W|^2 over the decayed weights, by forward passes only."""
    loss_sum, _ = model.loss(model.forward(X)[0], y)
    w = model.flat[model.decay_mask]
    return loss_sum / len(X) + 0.5 * weight_decay * float(w @ w)


def _check_model_gradient(model, X, y, rng, per_param=12, weight_decay=0.0):
    loss, grads = model.loss_and_grads(X, y, weight_decay=weight_decay)
    assert np.isfinite(loss)
    assert loss == pytest.approx(_objective(model, X, y, weight_decay), rel=1e-12)
    assert set(grads) == set(model.params)
    for key, p in model.params.items():
        coords = sample_coords(p.size, per_param, rng)
        num = numeric_grad(lambda: _objective(model, X, y, weight_decay), p, h=1e-5,
                           coords=coords)
        assert rel_error(grads[key].reshape(-1)[coords], num) < 1e-6, key


@pytest.mark.parametrize("name", [n for n, p in PRESETS.items() if p.is_gradient])
def test_preset_gradients(name):
    rng = np.random.default_rng(0)
    model = build_model(name, seed=1, dtype="float64")
    # Weights scaled by 1/sqrt(fan-in): every unit carries gradient and no sigmoid
    # saturates (with a flat scale, lenet5-cat's output saturates and its data
    # gradient is exactly zero, which would check nothing).
    for key, p in model.params.items():
        # Dense W is (in, out); Conv2D W is (out, in, k, k) or (connections, k, k).
        fan_in = p.shape[0] if p.ndim == 2 else int(np.prod(p.shape[1:])) if p.ndim > 2 else 10
        p[...] = rng.standard_normal(p.shape) / np.sqrt(fan_in)
    X = rng.standard_normal((2,) + model.input_shape)
    y = rng.integers(0, model.num_classes, size=2)
    _, data_grads = model.loss_and_grads(X, y)
    for key, g in data_grads.items():
        assert np.abs(g).max() > 1e-8, f"{key}: zero data gradient checks nothing"
    _check_model_gradient(model, X, y, rng, weight_decay=0.01)


def test_weight_decay_applies_to_weights_not_biases():
    rng = np.random.default_rng(0)
    m = build_model("digits123", seed=0, dtype="float64")
    X = rng.random((4, 1, 6, 6))
    y = np.array([0, 1, 2, 0])
    l0, g0 = m.loss_and_grads(X, y)
    l1, g1 = m.loss_and_grads(X, y, weight_decay=0.5)
    np.testing.assert_allclose(g1["c1.W"], g0["c1.W"] + 0.5 * m.params["c1.W"])
    np.testing.assert_allclose(g1["f2.W"], g0["f2.W"] + 0.5 * m.params["f2.W"])
    np.testing.assert_array_equal(g1["c1.b"], g0["c1.b"])
    np.testing.assert_array_equal(g1["f2.b"], g0["f2.b"])
    W = [m.params[k] for k in ("c1.W", "f2.W")]
    assert l1 == pytest.approx(l0 + 0.25 * sum(float((w * w).sum()) for w in W))


def test_add_weight_decay_on_a_flat_gradient():
    m = build_model("digits123", seed=0, dtype="float64")
    grad = np.zeros(m.num_params)
    assert m.add_weight_decay(1.5, grad, 0.0) == 1.5 and not grad.any()
    loss = m.add_weight_decay(1.5, grad, 0.1)
    np.testing.assert_array_equal(grad[m.decay_mask], 0.1 * m.flat[m.decay_mask])
    assert not grad[~m.decay_mask].any()
    assert loss == pytest.approx(1.5 + 0.05 * float(np.sum(m.flat[m.decay_mask] ** 2)))


def test_loss_sum_is_the_mean_times_the_batch_and_fills_a_given_buffer():
    rng = np.random.default_rng(1)
    m = build_model("digits123", seed=0, dtype="float64")
    X, y = rng.random((5, 1, 6, 6)), np.array([0, 1, 2, 1, 0])
    out = np.full(m.num_params, np.nan)
    loss_sum, g = m.loss_sum_and_grads(X, y, grad_out=out)
    assert g is out and np.isfinite(out).all()
    loss, grads = m.loss_and_grads(X, y)
    assert loss == pytest.approx(loss_sum / 5, rel=1e-14)
    np.testing.assert_allclose(np.concatenate([v.ravel() for v in grads.values()]), out / 5,
                               rtol=1e-14)


def test_presets_adapt_to_other_image_sizes():
    m = build_model("convnet3", input_shape=(1, 8, 8), num_classes=10)
    assert m.predict(np.zeros((3, 1, 8, 8))).shape == (3, 10)
    assert m.input_shape == (1, 8, 8) and m.num_classes == 10


def test_impossible_geometry_is_a_usage_error():
    with pytest.raises(UsageError, match="cannot take"):
        build_model("lenet5-cat", input_shape=(3, 16, 16))
    with pytest.raises(UsageError, match="2-class"):
        build_model("lenet5-cat", num_classes=10)
    with pytest.raises(UsageError, match="unknown model"):
        build_model("alexnet")


def test_predict_in_batches_equals_one_pass():
    m = build_model("digits123", seed=0, dtype="float64")
    X = np.random.default_rng(0).random((10, 1, 6, 6))
    np.testing.assert_allclose(m.predict(X, batch_size=3), m.forward(X)[0], rtol=1e-13)


# ----------------------------------------------------------------------------
# Your own layers and models
# ----------------------------------------------------------------------------

class Scale(L.Layer):
    """A user's layer declared the simple way: initial values in self.params."""

    decay = ("s",)

    def __init__(self, channels):
        super().__init__()
        self.params = {"s": np.linspace(0.5, 1.5, channels)}

    def forward(self, x):
        return x * self.params["s"][None, :, None, None], x

    def backward(self, dy, x):
        return dy * self.params["s"][None, :, None, None], {"s": (dy * x).sum(axis=(0, 2, 3))}


def _net(dtype="float64", seed=0):
    return Sequential([L.Conv2D(1, 3, 3), Scale(3), L.Tanh(), L.Flatten(), L.Dense(3 * 4 * 4, 4)],
                      SoftmaxCrossEntropy(), input_shape=(1, 6, 6), seed=seed, dtype=dtype)


def test_own_layer_is_named_initialised_and_differentiated():
    m = _net()
    assert m.layer_names == ["conv2d0", "scale0", "tanh0", "flatten0", "dense0"]
    np.testing.assert_array_equal(m.params["scale0.s"], [0.5, 1.0, 1.5])
    assert m.output_shape == (4,) and m.num_classes == 4
    assert m.decay_mask.sum() == 3 * 9 + 3 + 48 * 4   # conv W, the scale, dense W
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 1, 6, 6))
    _check_model_gradient(m, X, np.array([0, 3, 1]), rng, weight_decay=0.1)


def test_layers_may_be_named_pairs_or_a_dict():
    pairs = Sequential([("flat", L.Flatten()), ("out", L.Dense(36, 3))], SoftmaxCrossEntropy(),
                       input_shape=(1, 6, 6))
    as_dict = Sequential({"flat": L.Flatten(), "out": L.Dense(36, 3)}, SoftmaxCrossEntropy(),
                         input_shape=(1, 6, 6))
    assert pairs.layer_names == as_dict.layer_names == ["flat", "out"]
    assert pairs.flat.tobytes() == as_dict.flat.tobytes()


@pytest.mark.parametrize("layers,message", [
    ([("a", L.Flatten()), ("a", L.Dense(36, 3))], "unique"),
    ([("a.b", L.Flatten()), ("c", L.Dense(36, 3))], "no '.'"),
    ([L.Flatten(), object()], "no forward/backward"),
])
def test_bad_layer_lists_are_usage_errors(layers, message):
    with pytest.raises(UsageError, match=message):
        Sequential(layers, SoftmaxCrossEntropy())


def test_check_input_names_the_failing_layer_and_wants_flat_scores():
    with pytest.raises(UsageError, match=r"cannot take \(1, 6, 6\) inputs: layer dense0 "
                                         r"\(Dense\) failed"):
        Sequential([L.Flatten(), L.Dense(10, 3)], SoftmaxCrossEntropy(), input_shape=(1, 6, 6))
    with pytest.raises(UsageError, match="add a Flatten and a Dense"):
        Sequential([L.Conv2D(1, 2, 3)], SoftmaxCrossEntropy(), input_shape=(1, 6, 6))


def test_a_duck_typed_layer_without_the_base_class_works():
    class Double:
        def forward(self, x):
            return 2 * x, None

        def backward(self, dy, cache):
            return 2 * dy, {}

    m = Sequential([L.Flatten(), Double(), L.Dense(36, 3)], SoftmaxCrossEntropy(),
                   input_shape=(1, 6, 6))
    assert m.num_params == 36 * 3 + 3


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_pickled_model_keeps_its_values_and_one_flat_buffer(dumps):
    m = build_model("lenet5-cat", seed=2)
    X = np.random.default_rng(0).random((2, 3, 64, 64)).astype(np.float32)
    expect = m.predict(X)
    blob = dumps(m)
    assert len(blob) < 1.2 * m.flat.nbytes + 200_000   # the values once, not once per view
    twin = pickle.loads(blob)
    assert twin.flat.tobytes() == m.flat.tobytes()
    twin.flat[:] = 0                       # still views of one buffer after unpickling
    assert not twin.params["c1.W"].any() and m.params["c1.W"].any()
    twin.flat[...] = m.flat
    np.testing.assert_array_equal(twin.predict(X), expect)


def test_summary_lists_layers_shapes_and_counts():
    text = build_model("lenet5").summary()
    assert "60,806 parameters" in text and "c3" in text and "(16, 10, 10)" in text
