"""partrain: hand-written numpy CNNs, trained data-parallel on every CPU core.

    import partrain
    from partrain.layers import Conv2D, ReLU, MaxPool2D, Flatten, Dense
    model = partrain.Sequential([Conv2D(1, 8, 3), ReLU(), MaxPool2D(2), Flatten(),
                                 Dense(8 * 13 * 13, 10)], partrain.SoftmaxCrossEntropy())
    history = partrain.fit(model, X, y, epochs=3, validation_split=0.1, out="runs/mine")
"""

__version__ = "0.2.0"

from .api import fit, load_run, predict, predict_proba, predict_scores  # noqa: E402
from .data import DATASETS, load_dataset  # noqa: E402
from .layers import Layer  # noqa: E402
from .losses import HalfSumSquares, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy  # noqa: E402
from .models import Sequential  # noqa: E402
from .optim import SGD, Adam, Momentum, Nesterov, RMSProp  # noqa: E402
from .presets import PRESETS, build_model  # noqa: E402
from .splits import Data  # noqa: E402
from .trainer import History, Trainer  # noqa: E402
from .settings import TrainSettings  # noqa: E402

__all__ = ["fit", "load_run", "predict", "predict_proba", "predict_scores", "Sequential",
           "Layer", "SoftmaxCrossEntropy", "SigmoidBinaryCrossEntropy", "HalfSumSquares",
           "SGD", "Momentum", "Nesterov", "RMSProp", "Adam", "Data", "Trainer",
           "TrainSettings", "History", "build_model", "PRESETS", "load_dataset", "DATASETS",
           "__version__"]
