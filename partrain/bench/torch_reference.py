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

from ..nn import layers as L


def to_torch(model):
    """(torch.nn.Sequential, loss function(scores, y)) equivalent to ``model``."""
    dtype = torch.float32 if model.dtype == np.float32 else torch.float64
    mods = []
    for layer in model.layers:
        if isinstance(layer, L.Conv2D):
            conv = nn.Conv2d(layer.cin, layer.cout, layer.k, stride=layer.stride,
                             padding=layer.pad, bias=layer.bias)
            conv.weight.data = torch.from_numpy(np.array(layer._dense_weight()))
            if layer.bias:
                conv.bias.data = torch.from_numpy(np.array(layer.params["b"]))
            mods.append(conv)
        elif isinstance(layer, L.Dense):
            lin = nn.Linear(layer.din, layer.dout, bias=layer.bias)
            lin.weight.data = torch.from_numpy(np.array(layer.params["W"]).T.copy())
            if layer.bias:
                lin.bias.data = torch.from_numpy(np.array(layer.params["b"]))
            mods.append(lin)
        elif isinstance(layer, L.MaxPool2D):
            mods.append(nn.MaxPool2d(layer.window, layer.stride))
        elif isinstance(layer, L.AvgPool2D):
            mods.append(nn.AvgPool2d(layer.window, layer.stride))
        else:
            mods.append({L.ReLU: nn.ReLU, L.Sigmoid: nn.Sigmoid, L.Tanh: nn.Tanh,
                         L.Flatten: nn.Flatten}[type(layer)]())
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
