"""partrain: hand-written numpy CNNs, trained data-parallel on every CPU core.

    import partrain
    from partrain.nn import Conv2D, ReLU, MaxPool2D, Flatten, Dense
    model = partrain.Sequential([Conv2D(1, 8, 3), ReLU(), MaxPool2D(2), Flatten(),
                                 Dense(8 * 13 * 13, 10)], partrain.SoftmaxCrossEntropy())
    history = partrain.fit(model, X, y, epochs=3, validation_split=0.1, out="runs/mine")

Names are imported on first use (PEP 562), so `import partrain` and the `partrain`
command start fast and a Ctrl-C at start-up meets partrain's own handler, not an import.
"""

import importlib

__version__ = "0.2.0"

_EXPORTS = {
    "fit": "api", "load_run": "api", "predict": "api", "predict_proba": "api",
    "predict_scores": "api", "sweep": "api", "gradcheck": "nn.gradcheck", "Sequential": "nn.sequential", "Layer": "nn.layer",
    "SoftmaxCrossEntropy": "nn.losses", "SigmoidBinaryCrossEntropy": "nn.losses",
    "HalfSumSquares": "nn.losses", "SGD": "nn.optim", "Momentum": "nn.optim",
    "Nesterov": "nn.optim", "RMSProp": "nn.optim", "Adam": "nn.optim", "Data": "data.container",
    "Trainer": "train.trainer", "TrainSettings": "train.settings", "History": "train.history", "build_model": "presets",
    "PRESETS": "presets", "load_dataset": "data.datasets", "DATASETS": "data.datasets",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'partrain' has no attribute {name!r}")


def __dir__():
    return __all__
