"""The named datasets: load_dataset returns float NCHW and int64 labels for each, and
refuses an unknown name, split or folder with one clear message."""

import numpy as np
import pytest

from partrain.data.datasets import load_dataset
from partrain.errors import DataError, UsageError


def test_embedded_digits_need_no_files():
    X, y = load_dataset("digits", "train")
    Xt, yt = load_dataset("digits", "test")
    assert X.shape == (1437, 1, 8, 8) and Xt.shape == (360, 1, 8, 8)
    assert X.dtype == np.float64 and 0 <= X.min() and X.max() <= 1
    assert set(np.unique(y)) == set(range(10))
    X32, _ = load_dataset("digits32", "train", dtype="float32")
    assert X32.shape == (1437, 1, 32, 32) and X32.dtype == np.float32
    np.testing.assert_array_equal(X32[:, :, ::4, ::4], X.astype(np.float32))


def test_catvnoncat(shared_data):
    X, y = load_dataset("catvnoncat", "train", shared_data / "catvnoncat")
    assert X.shape == (209, 3, 64, 64) and y.shape == (209,)
    assert np.bincount(y).tolist() == [137, 72]
    assert 0 <= X.min() and X.max() <= 1
    Xt, yt = load_dataset("catvnoncat", "test", shared_data / "catvnoncat")
    assert Xt.shape == (50, 3, 64, 64) and np.bincount(yt).tolist() == [17, 33]


def test_mnist_split_as_seed_004(shared_data):
    X, y = load_dataset("mnist", "train", shared_data / "mnist")
    Xt, yt = load_dataset("mnist", "test", shared_data / "mnist")
    assert X.shape == (8000, 1, 28, 28) and Xt.shape == (2000, 1, 28, 28)
    assert np.bincount(np.concatenate([y, yt])).tolist() == \
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert abs(np.concatenate([X, Xt]).mean() - 0.1325) < 1e-3
    X32, _ = load_dataset("mnist32", "test", shared_data / "mnist")
    assert X32.shape == (2000, 1, 32, 32)
    np.testing.assert_array_equal(X32[:, :, 2:30, 2:30], Xt)


def test_missing_directory():
    with pytest.raises(DataError, match="data directory not found"):
        load_dataset("catvnoncat", data_dir="/nonexistent/place")


def test_unknown_dataset_and_split():
    with pytest.raises(UsageError, match="unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(UsageError, match="unknown split"):
        load_dataset("digits", "validation")
