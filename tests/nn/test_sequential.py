"""Sequential: parameters are named views of one flat buffer, the loss and its gradient
(float64 central differences) and weight decay, and any layers, your own included."""

import pickle

import cloudpickle
import numpy as np
import pytest

from partrain.errors import UsageError
from partrain.nn import Conv2D, Dense, Flatten, SoftmaxCrossEntropy, Sequential, Tanh
from partrain.presets import build_model
from partrain.testing import Scale

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def test_params_are_views_of_one_flat_buffer():
    m = build_model("lenet5")
    m.flat[:] = 0
    assert all(not p.any() for p in m.params.values())
    m.params["c1.W"][...] = 1
    assert m.flat.sum() == m.params["c1.W"].size
    assert all(m.layers[s.layer].params[s.name] is m.params[s.key] for s in m.layout)


def test_layout_names_each_parameter_and_its_slice_of_the_flat_buffer():
    m = build_model("digits123")
    first, last = m.layout[0], m.layout[-1]
    assert (first.key, first.layer, first.name, first.shape, first.offset) == \
        ("c1.W", 0, "W", (3, 1, 3, 3), 0)
    assert [s.offset for s in m.layout[1:]] == [s.offset + s.size for s in m.layout[:-1]]
    assert last.offset + last.size == m.num_params


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


def test_predict_in_batches_equals_one_pass():
    m = build_model("digits123", seed=0, dtype="float64")
    X = np.random.default_rng(0).random((10, 1, 6, 6))
    np.testing.assert_allclose(m.predict(X, batch_size=3), m.forward(X)[0], rtol=1e-13)




# ----------------------------------------------------------------------------
# Your own layers and models
# ----------------------------------------------------------------------------

def _net(dtype="float64", seed=0):
    return Sequential([Conv2D(1, 3, 3), Scale(3), Tanh(), Flatten(), Dense(3 * 4 * 4, 4)],
                      SoftmaxCrossEntropy(), input_shape=(1, 6, 6), seed=seed, dtype=dtype)


def test_own_layer_is_named_initialised_and_differentiated(check_model_gradient):
    m = _net()
    assert m.layer_names == ["conv2d0", "scale0", "tanh0", "flatten0", "dense0"]
    np.testing.assert_array_equal(m.params["scale0.s"], [0.5, 1.0, 1.5])
    assert m.output_shape == (4,) and m.num_classes == 4
    assert m.decay_mask.sum() == 3 * 9 + 3 + 48 * 4   # conv W, the scale, dense W
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 1, 6, 6))
    check_model_gradient(m, X, np.array([0, 3, 1]), rng, weight_decay=0.1)


def test_layers_may_be_named_pairs_or_a_dict():
    pairs = Sequential([("flat", Flatten()), ("out", Dense(36, 3))], SoftmaxCrossEntropy(),
                       input_shape=(1, 6, 6))
    as_dict = Sequential({"flat": Flatten(), "out": Dense(36, 3)}, SoftmaxCrossEntropy(),
                         input_shape=(1, 6, 6))
    assert pairs.layer_names == as_dict.layer_names == ["flat", "out"]
    assert pairs.flat.tobytes() == as_dict.flat.tobytes()


@pytest.mark.parametrize("layers,message", [
    ([("a", Flatten()), ("a", Dense(36, 3))], "unique"),
    ([("a.b", Flatten()), ("c", Dense(36, 3))], "no '.'"),
    ([Flatten(), object()], "no forward/backward"),
])
def test_bad_layer_lists_are_usage_errors(layers, message):
    with pytest.raises(UsageError, match=message):
        Sequential(layers, SoftmaxCrossEntropy())


def test_check_input_names_the_failing_layer_and_wants_flat_scores():
    with pytest.raises(UsageError, match=r"cannot take \(1, 6, 6\) inputs: layer dense0 "
                                         r"\(Dense\) failed"):
        Sequential([Flatten(), Dense(10, 3)], SoftmaxCrossEntropy(), input_shape=(1, 6, 6))
    with pytest.raises(UsageError, match="add a Flatten and a Dense"):
        Sequential([Conv2D(1, 2, 3)], SoftmaxCrossEntropy(), input_shape=(1, 6, 6))


def test_a_duck_typed_layer_without_the_base_class_works():
    class Double:
        def forward(self, x):
            return 2 * x, None

        def backward(self, dy, cache):
            return 2 * dy, {}

    m = Sequential([Flatten(), Double(), Dense(36, 3)], SoftmaxCrossEntropy(),
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
