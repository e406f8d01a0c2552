"""Flatten and Dense: backward is the derivative of forward (float64 central differences)."""

import numpy as np
import pytest

from partrain.nn import Dense, Flatten

pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.mark.parametrize("bias", [True, False])
def test_dense_gradients(check_layer, bias):
    rng = np.random.default_rng(8)
    check_layer(Dense(5, 4, bias=bias), rng.standard_normal((3, 5)), rng)


def test_flatten_gradient(check_layer):
    rng = np.random.default_rng(7)
    check_layer(Flatten(), rng.standard_normal((3, 2, 4, 4)), rng)
