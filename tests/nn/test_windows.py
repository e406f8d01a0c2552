"""The window arithmetic: every layer's output_shape is what its forward returns."""

import numpy as np
import pytest

from partrain.nn import AvgPool2D, Conv2D, MaxPool2D

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def test_output_shape_agrees_with_forward():
    x = np.zeros((1, 3, 11, 9))
    for layer in [Conv2D(3, 5, 3, stride=2, pad=1), MaxPool2D(3, 2), AvgPool2D(2)]:
        if layer.param_shapes():
            layer.params = {k: np.zeros(s) for k, s in layer.param_shapes().items()}
        assert layer.forward(x)[0].shape[1:] == layer.output_shape(x.shape[1:])
