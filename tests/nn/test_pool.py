"""Pools: backward is the derivative of forward (float64 central differences), and a
max pool's gradient goes to one maximum."""

import numpy as np
import pytest

from partrain.nn import AvgPool2D, MaxPool2D

pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.mark.parametrize("window,stride", [(2, 2), (3, 2), (2, 1), (3, 3)])
def test_maxpool_gradients(check_layer, window, stride):
    rng = np.random.default_rng(5)
    # A permutation: distinct values, so no finite-difference step crosses a tie.
    x = rng.permutation(2 * 3 * 7 * 7).reshape(2, 3, 7, 7) / 10.0
    check_layer(MaxPool2D(window, stride), x, rng)


def test_maxpool_routes_gradient_to_the_maximum():
    x = np.array([[[[1.0, 5.0], [3.0, 2.0]]]])
    layer = MaxPool2D(2)
    y, cache = layer.forward(x)
    assert y.item() == 5.0
    dx, _ = layer.backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(dx, [[[[0, 1], [0, 0]]]])


def test_maxpool_sends_a_tied_gradient_to_the_first_maximum_only():
    # All zeros, as after a ReLU: the window's gradient must not be counted four times.
    layer = MaxPool2D(2)
    y, cache = layer.forward(np.zeros((1, 1, 2, 2)))
    dx, _ = layer.backward(np.full_like(y, 3.0), cache)
    np.testing.assert_array_equal(dx, [[[[3, 0], [0, 0]]]])


@pytest.mark.parametrize("window,stride", [(2, 2), (3, 1), (2, 3)])
def test_avgpool_gradients(check_layer, window, stride):
    rng = np.random.default_rng(6)
    check_layer(AvgPool2D(window, stride), rng.standard_normal((2, 2, 6, 7)), rng)
