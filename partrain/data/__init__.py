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

import importlib

# Imported on first use (PEP 562): a worker process needs only augment.py, not the
# readers and their dependencies.
_EXPORTS = {"Data": "container", "hold_out_validation": "container", "as_data": "sources",
            "open_data": "sources"}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
