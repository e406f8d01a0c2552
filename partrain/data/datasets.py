"""The named datasets: what each is (:class:`DatasetInfo`), where its files live, and
:func:`load_dataset`, which reads one split and checks it.

Where files live: ``data_dir`` (the folder holding the dataset's files), else
``$PARTRAIN_DATA/<folder>``, else ``./data/<folder>``. The formats themselves are read by
:mod:`partrain.data.readers`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from .checks import validate
from .readers import (CIFAR_TEST, CIFAR_TRAIN, DIGITS123_FILES, MNIST_FILES, read_catvnoncat,
                      read_cifar10, read_cifar10_seed, read_digits, read_digits123, read_mnist)


@dataclass
class DatasetInfo:
    """The description of a named dataset, not its data: where its files are and what
    :func:`load_dataset` returns for it. The arrays themselves travel in a
    :class:`partrain.data.container.Data`."""

    name: str
    description: str
    folder: str | None          # None: embedded or generated, needs no files
    files: tuple                # file names looked for in the folder
    input_shape: tuple
    num_classes: int
    loader: callable            # (split, Path | None) -> (X float (N, C, H, W), y int64 (N,))


def default_data_dir(ds: DatasetInfo) -> Path | None:
    """$PARTRAIN_DATA/<folder> or ./data/<folder>; None for a dataset that needs no files."""
    if ds.folder is None:
        return None
    root = os.environ.get("PARTRAIN_DATA")
    return Path(root) / ds.folder if root else Path("data") / ds.folder


def files_found(ds: DatasetInfo, data_dir=None) -> bool:
    """True when every file the dataset needs is present (embedded ones always are)."""
    if ds.folder is None:
        return True
    folder = Path(data_dir) if data_dir else default_data_dir(ds)
    return all((folder / f).is_file() for f in ds.files)


DATASETS = {d.name: d for d in [
    DatasetInfo("digits", "embedded: UCI 8x8 handwritten digits shipped in scikit-learn "
                "(1437 train / 360 test)", None, (), (1, 8, 8), 10, read_digits),
    DatasetInfo("digits32", "embedded: the same digits, each pixel a 4x4 block (32x32, "
                "LeNet-5's input size)", None, (), (1, 32, 32), 10,
                lambda split, folder: read_digits(split, folder, upscale=4)),
    DatasetInfo("catvnoncat", "Coursera cat vs non-cat, 64x64 RGB (209 train / 50 test)",
                "catvnoncat", ("train_catvnoncat.h5", "test_catvnoncat.h5"), (3, 64, 64), 2,
                read_catvnoncat),
    DatasetInfo("mnist", "MNIST t10k, 28x28 (first 8000 train / last 2000 test, as seed 004)",
                "mnist", MNIST_FILES, (1, 28, 28), 10, read_mnist),
    DatasetInfo("mnist32", "the same MNIST split zero-padded to 32x32 (classic LeNet-5)",
                "mnist", MNIST_FILES, (1, 32, 32), 10,
                lambda split, folder: read_mnist(split, folder, pad=2)),
    DatasetInfo("cifar10", "CIFAR-10 python batches, 32x32 RGB, minus the training mean image",
                "cifar10", CIFAR_TRAIN[:1] + CIFAR_TEST, (3, 32, 32), 10, read_cifar10),
    DatasetInfo("cifar10-seed", "seed 001's CIFAR-10: first 500 of data_batch_1 / first 50 of "
                "test_batch, raw 0-255 pixels minus the train mean image", "cifar10",
                CIFAR_TRAIN[:1] + CIFAR_TEST, (3, 32, 32), 10, read_cifar10_seed),
    DatasetInfo("digits123", "seed 003's 6x6 digits 1/2/3 (its text file, or generated when "
                "no data folder is given)", None, DIGITS123_FILES, (1, 6, 6), 3, read_digits123),
]}


def load_dataset(name, split="train", data_dir=None, dtype="float64"):
    """Load a dataset split: X (N, C, H, W) in ``dtype``, y (N,) int64.

    ``data_dir`` is the folder holding the dataset's files; file datasets fall back to
    ``$PARTRAIN_DATA/<folder>`` or ``./data/<folder>``.
    """
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise UsageError(f"unknown split {split!r}; choose train or test")
    ds = DATASETS[name]
    folder = Path(data_dir) if data_dir else default_data_dir(ds)
    if folder is not None and not folder.is_dir():
        raise DataError(f"data directory not found: {folder} (pass `data_dir` with the "
                        f"folder holding {', '.join(ds.files)})")
    X, y = ds.loader(split, folder)
    X = np.asarray(X)
    y = validate(X, y, ds.num_classes, f"{name} ({split}) from {folder or 'built-in data'}")
    if X.shape[1:] != ds.input_shape:
        raise DataError(f"{name} ({split}): images of shape {X.shape[1:]}, "
                        f"expected {ds.input_shape}")
    return np.ascontiguousarray(X, dtype=dtype), y
