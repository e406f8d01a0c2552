"""Activations: backward is the derivative of forward (float64 central differences),
and the logistic function does not overflow."""

from functools import partial

import numpy as np
import pytest

from partrain.nn import ReLU, Sigmoid, Tanh
from partrain.nn.activations import sigmoid

pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.mark.parametrize("cls", [ReLU, Sigmoid, Tanh,
                                 pytest.param(partial(Tanh, 1.7159, 2 / 3), id="ScaledTanh")])
def test_elementwise_gradients(check_layer, cls):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2, 4, 4))
    x[np.abs(x) < 1e-3] = 0.5   # keep away from ReLU's kink
    check_layer(cls(), x, rng)


def test_sigmoid_is_stable_for_large_inputs():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(y, [0.0, 0.5, 1.0])
