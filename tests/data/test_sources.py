"""open_data and as_data: every source becomes the same Data, bit for bit, as the
reader underneath returns."""

import numpy as np
import pytest

from partrain.data import Data, as_data, open_data
from partrain.data.datasets import load_dataset
from partrain.errors import DataError, UsageError


def test_a_named_dataset_is_its_train_and_test_splits():
    data = open_data(dataset="digits123", dtype="float64")
    for split in ("train", "test"):
        X, y = load_dataset("digits123", split, dtype="float64")
        np.testing.assert_array_equal(getattr(data, split)[0], X)
        np.testing.assert_array_equal(getattr(data, split)[1], y)
    assert data.val is None and data.num_classes == 3 and data.name == "digits123"


def test_validation_split_is_held_out_of_a_named_dataset():
    data = open_data(dataset="digits123", validation_split=0.25, seed=4)
    assert len(data.val[0]) == 24 and len(data.train[0]) == 72 and len(data.test[0]) == 48


def test_your_file_keeps_its_path_as_name(tmp_path):
    X, y = np.zeros((4, 2, 2), np.uint8), np.array([0, 1, 0, 1])
    np.savez(tmp_path / "d.npz", X=X, y=y)
    data = open_data(data_file=str(tmp_path / "d.npz"))
    assert data.name == str(tmp_path / "d.npz") and data.input_shape == (1, 2, 2)
    assert as_data(tmp_path / "d.npz").fingerprint() == data.fingerprint()


def test_unknown_sources_are_refused():
    with pytest.raises(UsageError, match="unknown dataset 'imagenet'"):
        open_data(dataset="imagenet")
    with pytest.raises(DataError, match="no such file"):
        open_data(data_file="/no/such/file.npz")


def test_arrays_become_float_nchw_in_the_dtype_asked():
    X = np.full((3, 5, 6, 3), 255, np.uint8)               # NHWC, scaled by 1/255
    data = as_data(X, [0, 1, 1], test_data=(X[:2], [1.0, 0.0]), dtype="float64")
    assert data.train[0].shape == (3, 3, 5, 6) and data.train[0].dtype == np.float64
    assert data.train[0].max() == 1.0 and data.test[1].dtype == np.int64
    assert data.name == "arrays" and data.val is None


def test_a_data_is_kept_and_bad_arrays_are_refused():
    data = Data(train=(np.zeros((2, 1, 2, 2)), np.array([0, 1])))
    assert as_data(data) is data
    with pytest.raises(UsageError, match="labels y are missing"):
        as_data(np.zeros((2, 2, 2)))
    with pytest.raises(UsageError, match="validation data: 3 images but 2 labels"):
        as_data(np.zeros((2, 2, 2)), [0, 1], validation_data=(np.zeros((3, 2, 2)), [0, 1]))
