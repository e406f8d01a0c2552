"""Data from any source, the one way in for the command line, the API, resume and the
benchmarks: a named dataset or your own file (:func:`open_data`), or what
:func:`partrain.fit` is given (:func:`as_data`: arrays, a file path or a Data).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import UsageError
from .checks import as_images, as_labels
from .container import Data, hold_out_validation
from .datasets import DATASETS, load_dataset


def open_data(*, dataset=None, data_file=None, data_dir=None, dtype="float32",
              validation_split=0.0, seed=0) -> Data:
    """Data from ``data_file`` (.npz, .h5 or an image folder, see
    :mod:`partrain.data.files`), else from the named ``dataset`` (its files in
    ``data_dir``); pixels in ``dtype``. ``validation_split``: the fraction of the
    training set held out as the validation split, chosen by ``seed``."""
    if data_file is not None:
        from .files import load_data_file   # imports Pillow: only when a file is read

        data = load_data_file(data_file, dtype=dtype)
    else:
        if dataset not in DATASETS:
            raise UsageError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
        data = Data(train=load_dataset(dataset, "train", data_dir, dtype),
                    test=load_dataset(dataset, "test", data_dir, dtype),
                    num_classes=DATASETS[dataset].num_classes, name=dataset)
    if validation_split:
        data = hold_out_validation(data, validation_split, seed)
    return data


def as_data(X, y=None, validation_data=None, test_data=None, dtype="float32") -> Data:
    """A Data from what :func:`partrain.fit` takes: a Data (kept as it is), the path of
    your file or image folder (``y`` None), or images ``X`` with labels ``y``.

    Images: (N, H, W), (N, C, H, W) or (N, H, W, C), uint8 (divided by 255) or any real
    numbers, converted to ``dtype``; labels: (N,) whole numbers. ``validation_data`` and
    ``test_data``, (X, y) pairs of the same kinds, become those splits.
    """
    if isinstance(X, Data):
        data = X
    elif isinstance(X, (str, bytes)) or hasattr(X, "__fspath__"):
        data = open_data(data_file=X, dtype=dtype)
    else:
        if y is None:
            raise UsageError("fit(model, X, y): labels y are missing")
        data = Data(train=_split(X, y, "training", dtype), name="arrays")
    if validation_data is not None:
        data = dataclasses.replace(data, val=_split(*validation_data, "validation", dtype))
    if test_data is not None:
        data = dataclasses.replace(data, test=_split(*test_data, "test", dtype))
    return data


def _split(X, y, what, dtype):
    """(X C-contiguous (N, C, H, W) in ``dtype``, y int64 (N,)), checked; ``what`` names
    the split in messages."""
    X = as_images(X, f"{what} images")
    y = as_labels(y, f"{what} labels")
    if len(X) != len(y):
        raise UsageError(f"{what} data: {len(X)} images but {len(y)} labels")
    return np.ascontiguousarray(X, dtype=dtype), y
