"""A user's layer that is wrong is named, with its own line, and its gradients are
checked before they reach the parameter slots."""

import numpy as np
import pytest

from partrain.engine import make_engine
from partrain.errors import LayerError, WorkerError
from partrain.nn import Dense, Flatten, Layer, Sequential, SoftmaxCrossEntropy


class Scaled(Layer):
    """y = a * x with one parameter a; ``give`` says what backward returns for it."""

    def __init__(self, give="right"):
        super().__init__()
        self.params = {"a": np.ones(1)}
        self.give = give

    def forward(self, x):
        return self.params["a"][0] * x, x

    def backward(self, dy, x):
        if self.give == "raises":
            raise RuntimeError("boom")
        right = np.array([np.sum(dy * x)], dtype=dy.dtype)
        grads = {"right": {"a": right}, "scalar": {"a": right[0]}, "missing": {},
                 "none": None, "complex": {"a": right.astype(np.complex128)},
                 "extra": {"a": right, "b": right}}[self.give]
        return self.params["a"][0] * dy, grads


def model_with(layer):
    return Sequential([("mine", layer), Flatten(), Dense(16, 3)], SoftmaxCrossEntropy(),
                      input_shape=(1, 4, 4), dtype="float64")


X, Y = np.random.default_rng(0).standard_normal((8, 1, 4, 4)), np.arange(8) % 3


def test_a_right_layer_trains():
    loss, grad = model_with(Scaled()).loss_sum_and_grads(X, Y)
    assert np.isfinite(grad).all()


@pytest.mark.parametrize("give, message", [
    ("scalar", r"returned a gradient for a of shape \(\) and dtype float64; a is \(1,\)"),
    ("complex", r"returned a gradient for a of shape \(1,\) and dtype complex128"),
    ("missing", r"returned gradients for \[\]; its parameters are \['a'\]"),
    ("none", r"returned gradients for \[\]; its parameters are \['a'\]"),
    ("extra", r"returned gradients for \['a', 'b'\]"),
])
def test_wrong_gradients_are_refused_naming_the_layer_and_parameter(give, message):
    with pytest.raises(LayerError, match=r"^layer mine \(Scaled\)\.backward " + message):
        model_with(Scaled(give)).loss_sum_and_grads(X, Y)


def test_an_exception_in_a_users_backward_names_the_layer_and_its_line():
    with pytest.raises(LayerError, match=r"^layer mine \(Scaled\)\.backward raised "
                                         r"RuntimeError: boom \(.*test_layer_errors\.py:\d+\)$"):
        model_with(Scaled("raises")).loss_sum_and_grads(X, Y)


@pytest.mark.parametrize("backend, workers", [("serial", 1), ("process", 2)])
def test_in_a_worker_the_error_keeps_the_original_traceback_as_its_cause(backend, workers):
    model = model_with(Scaled("raises"))
    with make_engine(model, {"train": (X, Y)}, 4, backend=backend, workers=workers) as e:
        with pytest.raises(WorkerError, match="layer mine \\(Scaled\\)\\.backward raised "
                                              "RuntimeError: boom") as caught:
            e.gradient(np.arange(8))
    cause = str(caught.value.__cause__)
    assert "in backward" in cause and "RuntimeError: boom" in cause
