"""The named datasets' file formats: each reads what its seed wrote, and refuses a bad
file with one DataError naming it."""

import gzip
import math
import os
import pickle
import struct

import h5py
import numpy as np
import pytest

from partrain.data.datasets import load_dataset
from partrain.data.readers import generate_digits123, read_idx, safe_unpickle
from partrain.errors import DataError


def test_digits123_generator_is_deterministic_and_balanced():
    X, y = generate_digits123(96, seed=0)
    X2, y2 = generate_digits123(96, seed=0)
    np.testing.assert_array_equal(X, X2)
    assert X.shape == (96, 1, 6, 6) and set(np.unique(X)) <= {0.0, 1.0}
    assert np.bincount(y).tolist() == [32, 32, 32]


def test_digits123_reads_the_seed_text_format(tmp_path):
    rows = ["0,0,0,1,0,0," * 6 + "1", "1,1,1,1,1,1," * 6 + "3"]
    (tmp_path / "digits123.txt").write_text("\n".join(r.replace(",,", ",") for r in rows))
    X, y = load_dataset("digits123", data_dir=tmp_path)
    assert X.shape == (2, 1, 6, 6) and y.tolist() == [0, 2]


# -- CIFAR-10 pickles ----------------------------------------------------------------

def write_cifar(folder, n=4, labels=None):
    rng = np.random.default_rng(0)
    batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"labels": labels if labels is not None else [i % 10 for i in range(n)]}
    for name in ("data_batch_1", "test_batch"):
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return batch


def test_cifar10_batches_load(tmp_path):
    batch = write_cifar(tmp_path)
    X, y = load_dataset("cifar10", "train", tmp_path)
    assert X.shape == (4, 3, 32, 32) and y.tolist() == [0, 1, 2, 3]
    raw = batch[b"data"].reshape(4, 3, 32, 32) / 255.0
    np.testing.assert_allclose(X, raw - raw.mean(axis=0))   # minus the mean image


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_cifar_pickle_with_code_is_refused_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Exploit(), b"labels": [0]}, f)
    with pytest.raises(DataError, match="refusing to load global"):
        load_dataset("cifar10", "train", tmp_path)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(DataError):
        safe_unpickle(tmp_path / "data_batch_1")


@pytest.mark.parametrize("data, labels, problem", [
    (np.zeros((2, 3072)), [0, 1], r"'data' must be a uint8 array .*got float64"),
    ([[0] * 3072] * 2, [0, 1], "'data' must be a uint8 array .*got list"),
    (np.zeros((2, 3072), np.uint8), "01", "'labels' must be a list of integers, got str"),
    (np.zeros((2, 3072), np.uint8), [[0], [1, 2]], "labels are not a rectangular array"),
    (np.zeros((2, 3072), np.uint8), [b"a", b"b"], "labels must be real numbers"),
    (np.zeros((2, 3072), np.uint8), [0.5, 1], "labels must be whole numbers, found 0.5"),
])
def test_cifar_batch_of_the_wrong_kind(tmp_path, data, labels, problem):
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": data, b"labels": labels}, f)
    with pytest.raises(DataError, match=f"data_batch_1: {problem}"):
        load_dataset("cifar10", "train", tmp_path)


# -- HDF5 (catvnoncat) ---------------------------------------------------------------

def write_h5(path, x, y, split="train"):
    with h5py.File(path, "w") as f:
        f[f"{split}_set_x"] = x
        f[f"{split}_set_y"] = y


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found: .*train_catvnoncat.h5"):
        load_dataset("catvnoncat", data_dir=tmp_path)


def test_truncated_hdf5(tmp_path, shared_data):
    src = (shared_data / "catvnoncat" / "train_catvnoncat.h5").read_bytes()
    (tmp_path / "train_catvnoncat.h5").write_bytes(src[: len(src) // 3])
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        load_dataset("catvnoncat", data_dir=tmp_path)


def test_corrupt_hdf5(tmp_path):
    (tmp_path / "train_catvnoncat.h5").write_bytes(b"this is not hdf5" * 100)
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        load_dataset("catvnoncat", data_dir=tmp_path)


def test_hdf5_wrong_keys(tmp_path):
    with h5py.File(tmp_path / "train_catvnoncat.h5", "w") as f:
        f["images"] = np.zeros((2, 64, 64, 3), np.uint8)
    with pytest.raises(DataError, match="missing dataset.*train_set_x.*found images"):
        load_dataset("catvnoncat", data_dir=tmp_path)


def test_hdf5_wrong_shape(tmp_path):
    write_h5(tmp_path / "train_catvnoncat.h5", np.zeros((2, 32, 32, 3), np.uint8), [0, 1])
    with pytest.raises(DataError, match=r"expected images of shape \(N, 64, 64, 3\)"):
        load_dataset("catvnoncat", data_dir=tmp_path)


# -- IDX (MNIST) ---------------------------------------------------------------------

def write_idx(folder, images_magic=2051, n=10, truncate=0):
    body = np.zeros((n, 28, 28), np.uint8).tobytes()
    images = struct.pack(">4I", images_magic, n, 28, 28) + body
    labels = struct.pack(">2I", 2049, n) + bytes(range(n))
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
    data = gzip.compress(labels)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(data)
    if truncate:
        whole = (folder / "t10k-images-idx3-ubyte.gz").read_bytes()
        (folder / "t10k-images-idx3-ubyte.gz").write_bytes(whole[:truncate])


def test_idx_round_trip(tmp_path):
    write_idx(tmp_path)
    X, y = load_dataset("mnist", "train", tmp_path)
    assert X.shape == (10, 1, 28, 28) and y.tolist() == list(range(10))


def test_truncated_idx_gzip(tmp_path):
    write_idx(tmp_path, truncate=40)
    with pytest.raises(DataError, match="t10k-images.*not a readable gzip file"):
        load_dataset("mnist", "train", tmp_path)


def test_wrong_idx_magic(tmp_path):
    write_idx(tmp_path, images_magic=2049)
    with pytest.raises(DataError, match="wrong IDX magic number 2049, expected 2051"):
        load_dataset("mnist", "train", tmp_path)


# -- IDX hardening: the header is checked before the data is read --------------------

def write_labels_idx(path, dims, body=b"", magic=2049):
    header = struct.pack(f">{len(dims) + 1}I", magic, *dims)
    path.write_bytes(gzip.compress(header + body))
    return path


@pytest.mark.parametrize("dims", [(2**16, 2**16, 1),          # 2**32: overflows 32 bits
                                  (2**22, 2**22, 2**20),      # 2**64: int64 wraps to 0
                                  (2**32 - 1,) * 3])          # ~2**96
def test_idx_dims_whose_product_overflows(tmp_path, dims):
    path = write_labels_idx(tmp_path / "x.gz", dims, magic=2051)
    # Refused (over the size limit, or more than 31 bytes of gzip can hold), with the
    # product computed exactly: no wrap-around to a small or zero size.
    with pytest.raises(DataError, match=f"x.gz: .* {math.prod(dims):,} bytes.* more than"):
        read_idx(path, 2051, 3)


def test_idx_bomb_is_refused_after_reading_its_header(tmp_path):
    path = write_labels_idx(tmp_path / "l.gz", (10**9,), bytes(60))
    assert path.stat().st_size < 100
    # The message is the one raised from the header alone, before any data is read.
    with pytest.raises(DataError, match=r"l.gz: IDX header promises 1,000,000,000 bytes "
                                        r".*more than a \d+-byte gzip file can hold"):
        read_idx(path, 2049, 1)


def test_idx_truncated_data(tmp_path):
    path = write_labels_idx(tmp_path / "l.gz", (10,), bytes(5))
    with pytest.raises(DataError, match="l.gz: file holds 5 bytes of data, header promises 10"):
        read_idx(path, 2049, 1)


def test_idx_trailing_data(tmp_path):
    path = write_labels_idx(tmp_path / "l.gz", (10,), bytes(12))
    with pytest.raises(DataError, match="l.gz: trailing data after the 10 bytes"):
        read_idx(path, 2049, 1)


def test_idx_zero_dimension(tmp_path):
    path = write_labels_idx(tmp_path / "x.gz", (0, 28, 28), magic=2051)
    with pytest.raises(DataError, match=r"declares an empty array \(0x28x28\)"):
        read_idx(path, 2051, 3)
