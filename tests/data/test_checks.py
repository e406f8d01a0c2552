"""The checks every reader shares, seen through a named dataset's file: one DataError
naming the file and the problem."""

import h5py
import numpy as np
import pytest

import partrain.data.checks
from partrain.data.datasets import load_dataset
from partrain.errors import DataError


def write_h5(path, x, y, split="train"):
    with h5py.File(path, "w") as f:
        f[f"{split}_set_x"] = x
        f[f"{split}_set_y"] = y


def good_cat_arrays(n=3):
    return np.zeros((n, 64, 64, 3), np.uint8), np.arange(n) % 2


def test_nan_pixels(tmp_path):
    x = np.zeros((2, 64, 64, 3))
    x[1, 5, 5, 0] = np.nan
    write_h5(tmp_path / "train_catvnoncat.h5", x, [0, 1])
    with pytest.raises(DataError, match="1 pixel values are NaN or infinite"):
        load_dataset("catvnoncat", data_dir=tmp_path)


def test_labels_out_of_range(tmp_path):
    x, _ = good_cat_arrays(3)
    write_h5(tmp_path / "train_catvnoncat.h5", x, [0, 1, 2])
    with pytest.raises(DataError, match=r"labels must lie in 0..1, found 0..2"):
        load_dataset("catvnoncat", data_dir=tmp_path)


def test_images_and_labels_of_different_lengths(tmp_path):
    x, _ = good_cat_arrays(3)
    write_h5(tmp_path / "train_catvnoncat.h5", x, [0, 1])
    with pytest.raises(DataError, match="3 images but 2 labels"):
        load_dataset("catvnoncat", data_dir=tmp_path)


def test_empty_dataset(tmp_path):
    write_h5(tmp_path / "train_catvnoncat.h5", np.zeros((0, 64, 64, 3), np.uint8),
             np.zeros(0, np.int64))
    with pytest.raises(DataError, match="empty"):
        load_dataset("catvnoncat", data_dir=tmp_path)


# -- labels and pixels of the wrong kind, in the named datasets ----------------------

@pytest.mark.parametrize("labels, problem", [
    (["cat", "dog", "cat"], "labels must be real numbers"),
    ([0.0, 1.5, 1.0], "labels must be whole numbers, found 1.5"),
    ([0.0, np.nan, 1.0], "labels must be finite, found nan"),
    ([0, 2**40, 1], r"labels must be below 2\*\*31, found 1099511627776"),
    ([0, -1, 1], "labels must not be negative, found -1"),
])
def test_catvnoncat_bad_labels(tmp_path, labels, problem):
    write_h5(tmp_path / "train_catvnoncat.h5", good_cat_arrays(3)[0], labels)
    with pytest.raises(DataError, match=f"train_catvnoncat.h5: {problem}"):
        load_dataset("catvnoncat", data_dir=tmp_path)


def test_catvnoncat_string_pixels_refused_before_reading(tmp_path):
    write_h5(tmp_path / "train_catvnoncat.h5", np.full((2, 64, 64, 3), b"x"), [0, 1])
    with pytest.raises(DataError, match=r"pixels must be real numbers, got dtype \|S1"):
        load_dataset("catvnoncat", data_dir=tmp_path)


def test_catvnoncat_size_checked_before_reading(tmp_path, monkeypatch):
    write_h5(tmp_path / "train_catvnoncat.h5", *good_cat_arrays(3))
    monkeypatch.setattr(partrain.data.checks, "MAX_ARRAY_BYTES", 1000)
    with pytest.raises(DataError, match=r"'train_set_x' \(3, 64, 64, 3\) is [\d,]+ bytes, "
                                        r"more than the limit of 1,000"):
        load_dataset("catvnoncat", data_dir=tmp_path)
