"""Dropout and the keyed random stream it draws from (partrain/nn/dropout.py,
partrain/nn/randomness.py)."""

import numpy as np
import pytest

from partrain.errors import UsageError
from partrain.nn import Dropout, training_rng, training_stream
from partrain.testing import numeric_grad, rel_error


def test_outside_training_it_passes_its_input_through():
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32)
    y, cache = Dropout(0.5).forward(x)
    assert y is x and cache is None
    assert training_rng() is None


def test_in_a_training_chunk_it_zeroes_about_rate_and_rescales_the_rest():
    x = np.ones((200, 50), np.float32)
    with training_stream((7, 3), 2):
        y, mask = Dropout(0.25).forward(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert set(np.unique(y)) == {np.float32(0), np.float32(1 / 0.75)}
    assert abs(np.mean(y == 0) - 0.25) < 0.02
    dx, grads = Dropout(0.25).backward(np.full_like(x, 2), mask)
    assert grads == {} and np.array_equal(dx, 2 * mask)


def test_the_stream_is_keyed_on_seed_step_chunk_and_call_order():
    x = np.ones((64, 64))
    layer = Dropout(0.5)

    def masks(key, chunk):
        with training_stream(key, chunk):
            return layer.forward(x)[0], layer.forward(x)[0]

    first, second = masks((0, 1), 0)
    assert np.array_equal(masks((0, 1), 0)[0], first)     # same key: same draws
    assert not np.array_equal(first, second)               # each call its own stream
    for other in [((0, 1), 1), ((0, 2), 0), ((1, 1), 0)]:
        assert not np.array_equal(masks(*other)[0], first), other


def test_gradient_matches_central_differences_in_float64():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 4, 4))
    readout = rng.standard_normal(x.shape)
    layer = Dropout(0.4)

    def objective():
        with training_stream((5, 9), 1):   # the same mask at every evaluation
            return float(np.sum(layer.forward(x)[0] * readout))

    with training_stream((5, 9), 1):
        _, mask = layer.forward(x)
    assert 0 < np.count_nonzero(mask) < mask.size
    dx, _ = layer.backward(readout, mask)
    assert rel_error(dx, numeric_grad(objective, x)) < 1e-8


@pytest.mark.parametrize("rate", [-0.1, 1.0, "half", True])
def test_a_rate_outside_0_1_is_one_clear_error(rate):
    with pytest.raises(UsageError, match="Dropout rate"):
        Dropout(rate)
