"""Fixtures of the model-layer tests: float64 central-difference checks of a layer's
and of a whole model's gradient, shared by the test modules of tests/nn."""

import numpy as np
import pytest

from partrain.testing import numeric_grad, rel_error, sample_coords

TOL = 1e-6


@pytest.fixture
def check_layer():
    """check_layer(layer, x, rng): the layer's backward against central differences."""
    return _check_layer


@pytest.fixture
def check_model_gradient():
    """check_model_gradient(model, X, y, rng, per_param=12, weight_decay=0.0): the
    model's loss and gradient against forward passes and central differences."""
    return _check_model_gradient


def _check_layer(layer, x, rng):
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
