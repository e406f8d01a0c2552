"""The model layer: layers, losses, the Sequential container and the optimizers.

    from partrain.nn import Conv2D, ReLU, MaxPool2D, Flatten, Dense, Sequential
    from partrain.nn import SoftmaxCrossEntropy, Momentum
"""

from .layers import (AvgPool2D, Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU, Sigmoid,
                     Tanh, constant_init, normal_init, uniform_init, zeros_init)
from .losses import HalfSumSquares, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from .optim import OPTIMIZERS, SGD, Adam, Momentum, Nesterov, Optimizer, RMSProp, make_optimizer
from .sequential import Sequential

__all__ = ["AvgPool2D", "Conv2D", "Dense", "Flatten", "Layer", "MaxPool2D", "ReLU", "Sigmoid",
           "Tanh", "constant_init", "normal_init", "uniform_init", "zeros_init",
           "HalfSumSquares", "SigmoidBinaryCrossEntropy", "SoftmaxCrossEntropy", "OPTIMIZERS",
           "SGD", "Adam", "Momentum", "Nesterov", "Optimizer", "RMSProp", "make_optimizer",
           "Sequential"]
