"""The Layer base class: a layer of your own declares its parameters by their values."""

import numpy as np

from partrain.nn import Layer, ReLU


def test_base_layer_declares_parameters_from_its_initial_values():
    class Affine(Layer):
        decay = ("a",)

        def __init__(self):
            super().__init__()
            self.params = {"a": [[1.0, 2.0]], "c": np.zeros(2, np.float32)}

    layer = Affine()
    assert layer.param_shapes() == {"a": (1, 2), "c": (2,)}
    init = layer.init_params(np.random.default_rng(0))
    assert init["a"].dtype == np.float64 and init["a"].tolist() == [[1.0, 2.0]]
    assert init["a"] is not layer.params["a"]
    assert ReLU().param_shapes() == {} and ReLU().init_params(None) == {}
