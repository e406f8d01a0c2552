"""partrain: hand-written numpy CNNs, trained data-parallel on every CPU core."""

__version__ = "0.1.0"

from .models import PRESETS, build_model  # noqa: E402
from .data import DATASETS, load_dataset  # noqa: E402

__all__ = ["build_model", "load_dataset", "PRESETS", "DATASETS", "__version__"]
