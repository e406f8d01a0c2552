"""Presets match their seeds, every preset's gradient is right (float64 central
differences), and a preset adapts to other images or says why it cannot."""

import numpy as np
import pytest

from partrain.errors import UsageError
from partrain.presets import LENET_C3_TABLE, PRESETS, build_model

pytestmark = pytest.mark.usefixtures("one_blas_thread")


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


@pytest.mark.parametrize("name", [n for n, p in PRESETS.items() if p.is_gradient])
def test_preset_gradients(check_model_gradient, name):
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
    check_model_gradient(model, X, y, rng, weight_decay=0.01)


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
