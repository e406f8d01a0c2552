"""The seed systems as presets: LeNet-5 variants and friends, built for an image size.

Each preset is a function returning a :class:`partrain.nn.Sequential` plus the
training settings its seed used. Names are resolved here, at the edge (CLI, API);
nothing below the trainer knows a preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np

from .errors import UsageError
from .nn import (AvgPool2D, Conv2D, Dense, Flatten, HalfSumSquares, MaxPool2D, ReLU,
                 Sequential, Sigmoid, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy, Tanh,
                 constant_init, normal_init, uniform_init)


# LeNet-5's C3 connection table (LeCun et al. 1998, table I): which of the six
# S2 maps each of the sixteen C3 maps reads.
LENET_C3_TABLE = (
    [[(i + j) % 6 for j in range(3)] for i in range(6)]
    + [[(i + j) % 6 for j in range(4)] for i in range(6)]
    + [[0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5]]
    + [list(range(6))]
)


@dataclass
class Preset:
    """A seed system: how to build it and how its seed trained it."""

    name: str
    build: callable            # (input_shape, num_classes) -> (layers, loss)
    input_shape: tuple
    num_classes: int
    dataset: str
    source: str
    train: dict = field(default_factory=dict)   # default training settings
    binary: bool = False                        # one sigmoid output: needs 2 classes
    # False where the preset reproduces a seed's backward pass that is not the gradient
    # of its loss (lenet5-cat-seed): finite differences disagree with it by design.
    is_gradient: bool = True


def _after(size, stages):
    """Image side after alternating valid k x k convolutions and non-overlapping p x p pools:
    stages = [k1, p1, k2, p2, ...]."""
    for i, n in enumerate(stages):
        size = size - n + 1 if i % 2 == 0 else size // n
    return size


def _lenet5_cat(input_shape, num_classes, relu_rules=("input", "input")):
    """relu_rules: the backward rules of the ReLUs after S2 and S4 (see ReLU).
    Seed 000 writes ("none", "error_sign"): no ReLU derivative after S2, and after S4
    a mask by the error's own sign. Neither is the chain rule, so the default is the
    derivative of the ReLU, ("input", "input")."""
    u = uniform_init(0.12)
    c, h, w = input_shape
    layers = [
        ("c1", Conv2D(c, 6, 9, w_init=u)),
        ("s2", MaxPool2D(2)), ("a2", ReLU(relu_rules[0])),
        ("c3", Conv2D(6, 16, 9, table=LENET_C3_TABLE, w_init=u)),
        ("s4", MaxPool2D(2)), ("a4", ReLU(relu_rules[1])),
        ("flat", Flatten()),
        ("c5", Dense(16 * _after(h, [9, 2, 9, 2]) * _after(w, [9, 2, 9, 2]), 120, w_init=u)),
        # The seed's theta (121 x 1) includes the bias, drawn from the same uniform.
        ("f6", Dense(120, 1, w_init=u, b_init=u)),
    ]
    return layers, SigmoidBinaryCrossEntropy()


def _mnist_conv(input_shape, num_classes):
    c, h, w = input_shape
    flat = 20 * ((h - 8) // 2) * ((w - 8) // 2)
    layers = [
        ("c1", Conv2D(c, 20, 9, bias=False, w_init=normal_init(1e-2))),
        ("a1", ReLU()),
        ("s2", AvgPool2D(2)),
        ("flat", Flatten()),
        # The seed's Glorot-style scale uses 360 + 2000, kept as written.
        ("f3", Dense(flat, 100, bias=False, w_init=uniform_init(np.sqrt(6 / (360 + 2000))))),
        ("a3", ReLU()),
        ("f4", Dense(100, num_classes, bias=False,
                     w_init=uniform_init(np.sqrt(6 / (num_classes + 100))))),
    ]
    return layers, SoftmaxCrossEntropy()


def _convnet3(input_shape, num_classes, ties="first"):
    """ties: the max pool's tie rule (see MaxPool2D); seed 001's cs231n pool sends
    the error to every tied maximum ("all")."""
    c, h, w = input_shape
    n = normal_init(1e-3)   # cs231n's weight_scale
    layers = [
        ("c1", Conv2D(c, 32, 7, pad=3, w_init=n)),
        ("a1", ReLU()),
        ("s1", MaxPool2D(2, ties=ties)),
        ("flat", Flatten()),
        ("f2", Dense(32 * (h // 2) * (w // 2), 100, w_init=n)),
        ("a2", ReLU()),
        ("f3", Dense(100, num_classes, w_init=n)),
    ]
    return layers, SoftmaxCrossEntropy()


# Seed 003's hand-set starting weights, as it writes them. Its three filters and their
# biases; then per output unit j a 3 x 4 matrix: row k weighs the 2 x 2 pool map k,
# flattened row-major, and a bias.
DIGITS123_SEED_FILTERS = [
    [[-1.277, -0.454, 0.358], [1.138, -2.398, -1.664], [-0.794, 0.899, 0.675]],
    [[-1.274, 2.338, 2.301], [0.649, -0.339, -2.054], [-1.022, -1.204, -1.900]],
    [[-1.869, 2.044, -1.290], [-1.710, -2.091, -2.946], [0.201, -1.323, 0.207]],
]
DIGITS123_SEED_FILTER_BIASES = [-3.363, -3.176, -1.739]
DIGITS123_SEED_OUTPUTS = [
    [[-0.276, 0.124, -0.961, 0.718], [-3.680, -0.594, 0.280, -0.782],
     [-1.475, -2.010, -1.085, -0.188]],
    [[0.010, 0.661, -1.591, 2.189], [1.728, 0.003, -0.250, 1.898],
     [0.238, 1.589, 2.246, -0.093]],
    [[-1.322, -0.218, 3.527, 0.061], [0.613, 0.218, -2.130, -1.678],
     [1.236, -0.486, -0.144, -1.235]],
]
DIGITS123_SEED_OUTPUT_BIASES = [2.060, -2.746, -1.818]


def _digits123(input_shape, num_classes, init="random", ties="first"):
    """init: "random" draws every weight and bias from N(0, 1), the scale of the seed's
    own; "seed" starts from seed 003's hand-set values (1x6x6 inputs, 3 classes only),
    which do not depend on the model's ``seed``. ties: the max pool's tie rule; seed 003
    sends the error to every tied maximum ("all")."""
    c, h, w = input_shape
    flat = 3 * ((h - 2) // 2) * ((w - 2) // 2)
    if init == "seed":
        if (tuple(input_shape), num_classes) != ((1, 6, 6), 3):
            raise ValueError("seed 003's hand-set weights fit 1x6x6 images and 3 classes")
        # Flatten is channel-major, so input k * 4 + p is pool map k, position p.
        out_w = np.array(DIGITS123_SEED_OUTPUTS).reshape(3, 12).T    # (12 inputs, 3 units)
        inits = dict(cw=constant_init(np.array(DIGITS123_SEED_FILTERS)[:, None]),
                     cb=constant_init(DIGITS123_SEED_FILTER_BIASES),
                     fw=constant_init(out_w), fb=constant_init(DIGITS123_SEED_OUTPUT_BIASES))
    elif init == "random":
        n = normal_init(1.0)
        inits = dict(cw=n, cb=n, fw=n, fb=n)
    else:
        raise ValueError(f"init must be 'random' or 'seed', got {init!r}")
    layers = [
        ("c1", Conv2D(c, 3, 3, w_init=inits["cw"], b_init=inits["cb"])),
        ("a1", Sigmoid()),
        ("s1", MaxPool2D(2, ties=ties)),
        ("flat", Flatten()),
        ("f2", Dense(flat, num_classes, w_init=inits["fw"], b_init=inits["fb"])),
        ("a2", Sigmoid()),
    ]
    return layers, HalfSumSquares()


def _lenet5(input_shape, num_classes, squash=(1.7159, 2 / 3), init="variance"):
    """squash: (amplitude, slope) of the tanh units, the paper's 1.7159 tanh(2x/3) by
    default. init: "variance" draws U(-sqrt(3/F), sqrt(3/F)) for fan-in F, unit
    variance per input as LeCun's "Efficient BackProp" (1998) recommends; "paper" is the
    paper's appendix C, U(-2.4/F, 2.4/F), whose weights are so small that the net sits
    at loss ln 10 for its first few hundred steps (measured on mnist32)."""
    c, h, w = input_shape

    def lecun(fan_in):
        return uniform_init(2.4 / fan_in if init == "paper" else np.sqrt(3 / fan_in))

    layers = [
        ("c1", Conv2D(c, 6, 5, w_init=lecun(c * 25))),
        ("a1", Tanh(*squash)),
        ("s2", AvgPool2D(2)),
        ("c3", Conv2D(6, 16, 5, table=LENET_C3_TABLE, w_init=lecun(6 * 25))),
        ("a3", Tanh(*squash)),
        ("s4", AvgPool2D(2)),
        ("flat", Flatten()),
        ("c5", Dense(16 * _after(h, [5, 2, 5, 2]) * _after(w, [5, 2, 5, 2]), 120,
                     w_init=lecun(400))),
        ("a5", Tanh(*squash)),
        ("f6", Dense(120, 84, w_init=lecun(120))),
        ("a6", Tanh(*squash)),
        ("out", Dense(84, num_classes, w_init=lecun(84))),
    ]
    return layers, SoftmaxCrossEntropy()


PRESETS = {p.name: p for p in [
    Preset("lenet5-cat", _lenet5_cat, (3, 64, 64), 2, "catvnoncat",
           "seed 000: LeNet-5 variant, cat vs non-cat",
           dict(batch_size="full", steps=500, optimizer="sgd", lr=0.03), binary=True),
    Preset("mnist-conv", _mnist_conv, (1, 28, 28), 10, "mnist",
           "seed 004: MNIST conv, 20 9x9 filters, mean pool, 100 ReLU, no biases",
           dict(batch_size=100, epochs=3, optimizer="momentum", lr=0.01, momentum=0.95)),
    Preset("convnet3", _convnet3, (3, 32, 32), 10, "cifar10",
           "seed 001: cs231n ThreeLayerConvNet (conv7-relu-pool-affine-relu-affine)",
           dict(batch_size=2, epochs=5, optimizer="momentum", lr=5e-4, momentum=0.9,
                lr_decay=0.95, weight_decay=0.9)),
    Preset("digits123", _digits123, (1, 6, 6), 3, "digits123",
           "seed 003: tiny 6x6 digit net, sigmoid, 1/2 sum of squares",
           # The seed sums its gradient over the 96 samples with lr 0.2; partrain
           # averages, so the same step needs lr 0.2 * 96.
           dict(batch_size="full", steps=50, optimizer="sgd", lr=19.2)),
    Preset("lenet5", _lenet5, (1, 32, 32), 10, "mnist32",
           "LeCun et al. 1998: classic LeNet-5 on 32x32, 1.7159 tanh(2x/3), C3 table, 120-84-10",
           dict(batch_size=32, epochs=20, optimizer="momentum", lr=0.03, momentum=0.9)),
    # The seeds exactly as written: the same architectures with each seed's quirks
    # turned on. The presets above correct them; the docstrings of the options say why.
    Preset("lenet5-cat-seed", partial(_lenet5_cat, relu_rules=("none", "error_sign")),
           (3, 64, 64), 2, "catvnoncat",
           "seed 000 as written: no ReLU derivative after S2, error-sign mask after S4",
           dict(batch_size="full", steps=500, optimizer="sgd", lr=0.03), binary=True,
           is_gradient=False),
    Preset("mnist-conv-seed", _mnist_conv, (1, 28, 28), 10, "mnist",
           "seed 004 as written: batches in file order, momentum zeroed every epoch",
           dict(batch_size=100, epochs=3, optimizer="momentum", lr=0.01, momentum=0.95,
                batch_order="ordered", momentum_reset="epoch")),
    Preset("convnet3-seed", partial(_convnet3, ties="all"), (3, 32, 32), 10, "cifar10-seed",
           "seed 001 as written: raw pixels minus the mean, 500/50 subset, batches drawn "
           "with replacement, pool error to every tied max",
           dict(batch_size=2, epochs=5, optimizer="momentum", lr=5e-4, momentum=0.9,
                lr_decay=0.95, weight_decay=0.9, batch_order="replacement")),
    Preset("digits123-seed", partial(_digits123, init="seed", ties="all"), (1, 6, 6), 3,
           "digits123",
           "seed 003 as written: its hand-set starting weights, pool error to every tied max",
           # The seed sums over its 96 samples with lr 0.2; partrain averages: 0.2 * 96.
           dict(batch_size="full", steps=50, optimizer="sgd", lr=19.2)),
]}


def build_model(name, seed=0, dtype="float32", input_shape=None, num_classes=None):
    """Build a preset by name. ``input_shape`` (C, H, W) and ``num_classes`` default to
    the seed's; pass a dataset's to train the same architecture on other images."""
    if name not in PRESETS:
        raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    input_shape = tuple(input_shape or preset.input_shape)
    num_classes = num_classes or preset.num_classes
    if preset.binary and num_classes != 2:
        raise UsageError(f"model {name!r} has one sigmoid output and needs a 2-class "
                         f"dataset, not {num_classes} classes")
    try:
        layers, loss = preset.build(input_shape, num_classes)
    except (ValueError, ZeroDivisionError) as exc:
        raise UsageError(f"model {name!r} cannot take {input_shape} inputs: {exc}") from None
    return Sequential(layers, loss, input_shape, seed=seed, dtype=dtype, name=name)
