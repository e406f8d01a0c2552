"""Presets match their seeds and every preset's gradient is right (float64)."""

import numpy as np
import pytest

import partrain
from gradcheck import numeric_grad, rel_error, sample_coords
from partrain.errors import UsageError
from partrain.models import LENET_C3_TABLE, PRESETS


def test_parameter_counts_match_the_seeds():
    assert partrain.build_model("lenet5-cat").num_params == 198_581   # C3 table: 60 kernels
    assert partrain.build_model("mnist-conv").num_params == 202_620   # no biases
    assert partrain.build_model("lenet5").num_params == 60_806
    assert partrain.build_model("digits123").num_params == 3 * 9 + 3 + 12 * 3 + 3


def test_lenet_c3_table_has_60_connections():
    assert sum(len(maps) for maps in LENET_C3_TABLE) == 60
    assert LENET_C3_TABLE[0] == [0, 1, 2] and LENET_C3_TABLE[5] == [5, 0, 1]
    assert LENET_C3_TABLE[6] == [0, 1, 2, 3] and LENET_C3_TABLE[15] == [0, 1, 2, 3, 4, 5]


def test_lenet5_cat_init_follows_seed_000():
    m = partrain.build_model("lenet5-cat", seed=3)
    for key in ("c1.W", "c3.W", "c5.W", "f6.W"):   # U(-0.12, 0.12): std 0.069
        assert np.abs(m.params[key]).max() <= 0.12 and m.params[key].std() > 0.05
    assert 0 < abs(m.params["f6.b"].item()) <= 0.12   # theta's bias row is drawn too
    for key in ("c1.b", "c3.b", "c5.b"):
        assert not m.params[key].any()


def test_params_are_views_of_one_flat_buffer():
    m = partrain.build_model("lenet5")
    m.flat[:] = 0
    assert all(not p.any() for p in m.params.values())
    m.params["c1.W"][...] = 1
    assert m.flat.sum() == m.params["c1.W"].size


def test_same_seed_same_params_in_both_dtypes():
    a = partrain.build_model("mnist-conv", seed=7, dtype="float64")
    b = partrain.build_model("mnist-conv", seed=7, dtype="float32")
    c = partrain.build_model("mnist-conv", seed=8, dtype="float64")
    np.testing.assert_array_equal(a.flat.astype(np.float32), b.flat)
    assert b.flat.dtype == np.float32
    assert not np.array_equal(a.flat, c.flat)


def _check_model_gradient(model, X, y, rng, per_param=12):
    loss, grads = model.loss_and_grads(X, y)
    assert np.isfinite(loss)
    assert set(grads) == set(model.params)
    for key, p in model.params.items():
        coords = sample_coords(p.size, per_param, rng)
        num = numeric_grad(lambda: model.loss_and_grads(X, y)[0], p, h=1e-5, coords=coords)
        assert rel_error(grads[key].reshape(-1)[coords], num) < 1e-6, key


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_gradients(name):
    rng = np.random.default_rng(0)
    model = partrain.build_model(name, seed=1, dtype="float64", weight_decay=0.01)
    # Larger weights than the inits so every unit carries gradient.
    model.flat[:] = rng.standard_normal(model.num_params) * 0.2
    X = rng.standard_normal((2,) + model.input_shape)
    y = rng.integers(0, model.num_classes, size=2)
    _check_model_gradient(model, X, y, rng)


def test_weight_decay_applies_to_weights_not_biases():
    rng = np.random.default_rng(0)
    m0 = partrain.build_model("digits123", seed=0, weight_decay=0.0)
    m1 = partrain.build_model("digits123", seed=0, weight_decay=0.5)
    X = rng.random((4, 1, 6, 6))
    y = np.array([0, 1, 2, 0])
    l0, g0 = m0.loss_and_grads(X, y)
    l1, g1 = m1.loss_and_grads(X, y)
    np.testing.assert_allclose(g1["c1.W"], g0["c1.W"] + 0.5 * m0.params["c1.W"])
    np.testing.assert_array_equal(g1["c1.b"], g0["c1.b"])
    W = [m0.params[k] for k in ("c1.W", "f2.W")]
    assert l1 == pytest.approx(l0 + 0.25 * sum(float((w * w).sum()) for w in W))


def test_presets_adapt_to_other_image_sizes():
    m = partrain.build_model("convnet3", input_shape=(1, 8, 8), num_classes=10)
    assert m.predict(np.zeros((3, 1, 8, 8))).shape == (3, 10)


def test_impossible_geometry_is_a_usage_error():
    with pytest.raises(UsageError, match="cannot take"):
        partrain.build_model("lenet5-cat", input_shape=(3, 16, 16))
    with pytest.raises(UsageError, match="2-class"):
        partrain.build_model("lenet5-cat", num_classes=10)
    with pytest.raises(UsageError, match="unknown model"):
        partrain.build_model("alexnet")


def test_predict_in_batches_equals_one_pass():
    m = partrain.build_model("digits123", seed=0)
    X = np.random.default_rng(0).random((10, 1, 6, 6))
    np.testing.assert_allclose(m.predict(X, batch_size=3), m.forward(X)[0], rtol=1e-13)
