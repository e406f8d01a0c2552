"""partrain.gradcheck: a user's check of their own layer."""

import numpy as np

import partrain
from partrain.nn import Dense, Layer


class Square(Layer):
    def forward(self, x):
        return x * x, x

    def backward(self, dy, x):
        return 2 * x * dy, {}


class WrongSquare(Square):
    def backward(self, dy, x):
        return x * dy, {}   # forgot the 2


def test_a_right_layer_passes_and_a_wrong_one_is_caught():
    x = np.random.default_rng(0).standard_normal((4, 3))
    assert partrain.gradcheck(Square(), x)["x"] < 1e-8
    assert partrain.gradcheck(WrongSquare(), x)["x"] > 0.1


def test_parameters_are_checked_in_float64_and_the_layer_is_not_changed():
    layer = Dense(5, 3)
    layer.params = {k: np.full(s, 0.5, np.float32) for k, s in layer.param_shapes().items()}
    errors = partrain.gradcheck(layer, np.ones((2, 5), np.float32))
    assert set(errors) == {"x", "W", "b"} and max(errors.values()) < 1e-7
    assert layer.params["W"].dtype == np.float32 and (layer.params["W"] == 0.5).all()
