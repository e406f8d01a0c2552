"""The same architecture in PyTorch, for the side-by-side baseline of `partrain scale`.

Only imported when torch is installed (``pip install "partrain[bench]"``). Weights are
copied from the numpy model, so both compute the same function; a connection table
becomes a dense convolution whose unconnected kernels are zero (PyTorch has no
partial connection tables), which is also how partrain computes it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..nn import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid, Tanh


class ScaledTanh(nn.Module):
    """amplitude * tanh(slope * x), any shape: partrain's :class:`partrain.nn.Tanh`
    (LeNet-5's 1.7159 tanh(2x/3)), which ``nn.Tanh`` is only for amplitude = slope = 1."""

    def __init__(self, amplitude, slope):
        super().__init__()
        self.amplitude, self.slope = amplitude, slope

    def forward(self, x):
        return self.amplitude * torch.tanh(self.slope * x)


def to_torch(model):
    """(torch.nn.Sequential, loss function(scores, y)) equivalent to ``model``."""
    dtype = torch.float32 if model.dtype == np.float32 else torch.float64
    mods = []
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            conv = nn.Conv2d(layer.cin, layer.cout, layer.k, stride=layer.stride,
                             padding=layer.pad, bias=layer.bias)
            conv.weight.data = torch.from_numpy(np.array(layer.dense_weight()))
            if layer.bias:
                conv.bias.data = torch.from_numpy(np.array(layer.params["b"]))
            mods.append(conv)
        elif isinstance(layer, Dense):
            lin = nn.Linear(layer.din, layer.dout, bias=layer.bias)
            lin.weight.data = torch.from_numpy(np.array(layer.params["W"]).T.copy())
            if layer.bias:
                lin.bias.data = torch.from_numpy(np.array(layer.params["b"]))
            mods.append(lin)
        elif isinstance(layer, MaxPool2D):
            mods.append(nn.MaxPool2d(layer.window, layer.stride))
        elif isinstance(layer, AvgPool2D):
            mods.append(nn.AvgPool2d(layer.window, layer.stride))
        elif isinstance(layer, Tanh):
            plain = layer.amplitude == layer.slope == 1
            mods.append(nn.Tanh() if plain else ScaledTanh(layer.amplitude, layer.slope))
        else:
            mods.append({ReLU: nn.ReLU, Sigmoid: nn.Sigmoid, Flatten: nn.Flatten}[type(layer)]())
    net = nn.Sequential(*mods).to(dtype)
    name = model.loss.name
    if name == "softmax_cross_entropy":
        return net, nn.CrossEntropyLoss()
    if name == "sigmoid_binary_cross_entropy":
        bce = nn.BCEWithLogitsLoss()
        return net, lambda scores, y: bce(scores[:, 0], y.to(scores.dtype))
    mse = nn.MSELoss(reduction="sum")
    return net, lambda scores, y: 0.5 * mse(
        scores, nn.functional.one_hot(y, scores.shape[1]).to(scores.dtype)) / len(y)
