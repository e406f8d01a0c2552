"""The model layer: layers, initializers, losses, the Sequential container and the
optimizers.

    from partrain.nn import Conv2D, ReLU, MaxPool2D, Flatten, Dense, Sequential
    from partrain.nn import SoftmaxCrossEntropy, Momentum
"""

from .activations import ReLU, Sigmoid, Tanh
from .conv import Conv2D
from .dense import Dense, Flatten
from .dropout import Dropout
from .init import constant_init, normal_init, uniform_init, zeros_init
from .layer import Layer
from .losses import HalfSumSquares, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from .optim import OPTIMIZERS, SGD, Adam, Momentum, Nesterov, Optimizer, RMSProp, make_optimizer
from .pool import AvgPool2D, MaxPool2D
from .randomness import training_rng, training_stream
from .sequential import ParamSlot, Sequential

__all__ = ["AvgPool2D", "Conv2D", "Dense", "Dropout", "Flatten", "Layer", "MaxPool2D", "ReLU", "Sigmoid",
           "Tanh", "constant_init", "normal_init", "uniform_init", "zeros_init",
           "HalfSumSquares", "SigmoidBinaryCrossEntropy", "SoftmaxCrossEntropy", "OPTIMIZERS",
           "SGD", "Adam", "Momentum", "Nesterov", "Optimizer", "RMSProp", "make_optimizer",
           "ParamSlot", "Sequential", "training_rng", "training_stream"]
