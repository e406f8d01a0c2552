"""The data layer: every source of data becomes one :class:`Data` (train, validation and
test arrays).

    container.py  Data, and hold_out_validation
    sources.py    open_data (a named dataset or your file), as_data (what fit is given)
    datasets.py   the named datasets: their descriptions and load_dataset
    readers.py    the named datasets' file formats (IDX, CIFAR pickles, HDF5, text)
    files.py      your own files: .npz, .h5, image folders
    checks.py     the checks and size limits every reader goes through
    augment.py    random transforms of training images, the same on any worker count
"""

from .container import Data, hold_out_validation
from .sources import as_data, open_data

__all__ = ["Data", "hold_out_validation", "as_data", "open_data"]
