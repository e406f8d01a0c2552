"""The data a run trains on: train, validation and test arrays, whatever their source
(named datasets, your own files, arrays passed from Python).

The validation split chooses the ``best/`` parameters; the test split is only
reported, never used to choose anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError


@dataclass
class Data:
    """The arrays of a run: each split an (X, y) pair, X (N, C, H, W) in the model
    dtype, y (N,) int64; val and test may be absent. ``name``: the dataset's name, the
    file's path or "arrays"; ``class_names``: the class folders' names (image folders
    only)."""

    train: tuple
    val: tuple | None = None
    test: tuple | None = None
    num_classes: int | None = None
    name: str = "arrays"
    class_names: list | None = field(default=None)

    def splits(self):
        """{"train": (X, y), "val": ..., "test": ...} for the splits present."""
        return {k: v for k, v in (("train", self.train), ("val", self.val),
                                  ("test", self.test)) if v is not None}

    @property
    def input_shape(self):
        return tuple(self.train[0].shape[1:])

    def fingerprint(self):
        """sha256 of every array's shape, dtype and bytes: a checkpoint is only resumed
        on the very data it was trained on."""
        h = hashlib.sha256()
        for split, (X, y) in self.splits().items():
            for a in (X, y):
                h.update(f"{split}{a.shape}{a.dtype.str}".encode())
                h.update(np.ascontiguousarray(a).data)
        return h.hexdigest()


def hold_out_validation(data: Data, fraction, seed):
    """Move a random ``fraction`` of the training set into a validation split.

    Which samples move depends on (seed, N, fraction) only, never on the worker count.
    """
    if data.val is not None:
        raise UsageError("this data already has a validation split; drop `validation_split`")
    if not 0 < fraction < 1:
        raise UsageError(f"`validation_split` must lie in (0, 1), got {fraction}")
    X, y = data.train
    n_val = int(round(fraction * len(X)))
    if not 1 <= n_val < len(X):
        raise UsageError(f"`validation_split` {fraction} of {len(X)} training samples leaves "
                         "an empty split")
    order = np.random.default_rng([seed, 7]).permutation(len(X))   # 7: not the sampler's stream
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return Data(train=(X[train], y[train]), val=(X[val], y[val]), test=data.test,
                num_classes=data.num_classes, name=data.name, class_names=data.class_names)
