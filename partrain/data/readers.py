"""The file formats of the named datasets, each read as its seed prepared it.

Every reader is ``(split, folder) -> (X, y)``: X (N, C, H, W) float64 (the pixels
scaled as the seeds scale them: / 255, CIFAR-10 also minus the training mean image),
y (N,) int64. Each refuses a file it cannot read with :class:`DataError` naming the file;
the registry (:mod:`partrain.data.datasets`) then checks shapes and label range.

Formats: IDX, gzip-compressed (MNIST); python pickle batches, read without running
pickled code (CIFAR-10); HDF5 (catvnoncat); a text file or a generator (digits123);
scikit-learn's bundled digits.
"""

from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .checks import as_images, as_labels, check_size, declared_bytes, h5_dataset


def require_file(path: Path, hint: str) -> Path:
    """``path``, or DataError saying it is missing and ``hint`` how to supply it."""
    if not path.is_file():
        raise DataError(f"file not found: {path} ({hint})")
    return path


# ----------------------------------------------------------------------------
# catvnoncat: HDF5
# ----------------------------------------------------------------------------

def read_catvnoncat(split, folder):
    """The course's HDF5 files: 64x64 RGB (NHWC) uint8 pixels, labels (1, N) or (N,)."""
    import h5py

    path = require_file(folder / f"{split}_catvnoncat.h5",
                        "pass `data_dir` pointing at the folder with train_catvnoncat.h5 "
                        "and test_catvnoncat.h5")
    try:
        with h5py.File(path, "r") as f:
            keys = (f"{split}_set_x", f"{split}_set_y")
            missing = [k for k in keys if k not in f]
            if missing:
                raise DataError(f"{path}: missing dataset(s) {', '.join(missing)}; "
                                f"found {', '.join(sorted(f.keys())) or 'nothing'}")
            images = h5_dataset(f, keys[0], path, "pixels")
            labels = h5_dataset(f, keys[1], path, "labels")
            if len(images.shape) != 4 or images.shape[1:] != (64, 64, 3):
                raise DataError(f"{path}: expected images of shape (N, 64, 64, 3), "
                                f"got {images.shape}")
            X, y = images[()], labels[()]
    except DataError:
        raise
    except Exception as exc:   # h5py raises OSError, KeyError, RuntimeError... on bad bytes
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from None
    if y.ndim == 2 and y.shape[0] == 1:    # the course's notebooks store labels as (1, N)
        y = y[0]
    return as_images(X, path, layout="NHWC"), as_labels(y, path)


# ----------------------------------------------------------------------------
# MNIST: IDX, gzip-compressed
# ----------------------------------------------------------------------------

MNIST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
MNIST_TRAIN = 8000   # seed 004: first 8000 of t10k train, the last 2000 test


DEFLATE_MAX_RATIO = 1032   # deflate never expands more than 1032:1


def read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """Read a gzip IDX file (uint8 data) with the given magic number and number of
    dimensions. The header is read and checked first, then exactly the bytes it
    promises: a decompression bomb is refused after decompressing 4 + 4 * ndim bytes."""
    try:
        with gzip.open(path, "rb") as f:
            dims = _idx_dims(path, f.read(4 + 4 * ndim), magic, ndim)
            size = math.prod(dims)
            data = f.read(size)
            trailing = f.read(1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc})") from None
    if len(data) < size:
        raise DataError(f"{path}: file holds {len(data)} bytes of data, header promises {size}")
    if trailing:
        raise DataError(f"{path}: trailing data after the {size} bytes the header promises")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _idx_dims(path: Path, header: bytes, magic: int, ndim: int) -> tuple:
    """The dimensions an IDX header declares, refused when the data cannot be (empty,
    over MAX_ARRAY_BYTES, or more than the compressed file could decompress to)."""
    if len(header) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header ({len(header)} bytes)")
    found = struct.unpack(">I", header[:4])[0]
    if found != magic:
        raise DataError(f"{path}: wrong IDX magic number {found}, expected {magic}")
    dims = struct.unpack(f">{ndim}I", header[4:])
    shown = "x".join(map(str, dims))
    if 0 in dims:
        raise DataError(f"{path}: IDX header declares an empty array ({shown})")
    size = declared_bytes(dims, 1)
    check_size(size, path, f"the data the IDX header declares ({shown})")
    compressed = Path(path).stat().st_size
    if size > compressed * DEFLATE_MAX_RATIO:
        raise DataError(f"{path}: IDX header promises {size:,} bytes ({shown}), more than "
                        f"a {compressed:,}-byte gzip file can hold "
                        f"(deflate expands {DEFLATE_MAX_RATIO}:1 at most)")
    return dims


def read_mnist(split, folder, pad=0):
    """MNIST t10k: the first MNIST_TRAIN images train, the rest test; ``pad`` zero
    pixels on every side (2: LeNet-5's 32x32)."""
    hint = "pass `data_dir` pointing at the folder with the MNIST t10k .gz files"
    images = read_idx(require_file(folder / MNIST_FILES[0], hint), 2051, 3)
    labels = read_idx(require_file(folder / MNIST_FILES[1], hint), 2049, 1)
    if len(images) != len(labels):
        raise DataError(f"{folder}: {len(images)} MNIST images but {len(labels)} labels")
    part = slice(0, MNIST_TRAIN) if split == "train" else slice(MNIST_TRAIN, None)
    X = as_images(images[part], folder / MNIST_FILES[0])
    if pad:
        X = np.pad(X, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    return X, as_labels(labels[part], folder / MNIST_FILES[1])


# ----------------------------------------------------------------------------
# CIFAR-10: python pickle batches, read without running pickled code
# ----------------------------------------------------------------------------

CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = ("test_batch",)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; refuses every other
    global, so a pickle that names os.system (or anything else) is never called."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def safe_unpickle(path: Path):
    try:
        with open(path, "rb") as f:
            return _ArrayOnlyUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except Exception as exc:
        raise DataError(f"{path}: not a CIFAR-10 batch this loader accepts ({exc})") from None


def _read_cifar_batch(path: Path):
    batch = safe_unpickle(path)
    if not isinstance(batch, dict):
        raise DataError(f"{path}: expected a dict, got {type(batch).__name__}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise DataError(f"{path}: missing 'data' or 'labels'")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8
            and data.ndim == 2 and data.shape[1] == 3072):
        found = (f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray)
                 else type(data).__name__)
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), "
                        f"got {found}")
    if not isinstance(labels, (list, np.ndarray)):
        raise DataError(f"{path}: 'labels' must be a list of integers, "
                        f"got {type(labels).__name__}")
    return data.reshape(-1, 3, 32, 32), as_labels(labels, path)


def read_cifar10(split, folder):
    """Every data batch found trains; test_batch tests; both minus the training mean image."""
    hint = "pass `data_dir` pointing at the cifar-10-batches-py folder"
    names = [n for n in CIFAR_TRAIN if (folder / n).is_file()]
    if not names:
        require_file(folder / CIFAR_TRAIN[0], hint)
    train = [_read_cifar_batch(folder / n) for n in names]
    X_train = as_images(np.concatenate([x for x, _ in train]), folder, layout="NCHW")
    mean_image = X_train.mean(axis=0)   # cs231n: subtract the training mean image
    if split == "train":
        X, y = X_train, np.concatenate([y for _, y in train])
    else:
        path = require_file(folder / CIFAR_TEST[0], hint)
        X, y = _read_cifar_batch(path)
        X = as_images(X, path, layout="NCHW")
    return X - mean_image, y


# Seed 001's subset (cs231n's get_CIFAR10_data(num_training=500, num_validation=50,
# num_test=50)): train and validation from data_batch_1 alone, test from test_batch.
CIFAR_SEED_SUBSET = dict(num_training=500, num_validation=50, num_test=50)


def load_cifar10_seed(folder, num_training=500, num_validation=50, num_test=50):
    """CIFAR-10 as seed 001 prepares it: {"train", "val", "test"} -> (X float64, y).

    Only data_batch_1 and test_batch are read. Train is the first ``num_training``
    images of data_batch_1, val the next ``num_validation``, test the first
    ``num_test`` of test_batch. Pixels stay raw, 0..255 (not divided by 255), and the
    mean image of the training subset is subtracted from all three.

    partrain's ``cifar10`` differs on purpose: it trains on all five batches, and
    scales pixels to 0..1 so that learning rates and inits mean the same on every
    dataset. Without the division the inputs are 255 times partrain's, and the seed's
    lr and weight scale were tuned for these raw values.
    """
    folder = Path(folder)
    hint = "pass `data_dir` pointing at the cifar-10-batches-py folder"
    train_path = require_file(folder / CIFAR_TRAIN[0], hint)
    test_path = require_file(folder / CIFAR_TEST[0], hint)
    X, y = _read_cifar_batch(train_path)
    Xt, yt = _read_cifar_batch(test_path)
    if len(X) < num_training + num_validation or len(Xt) < num_test:
        raise DataError(f"{folder}: seed 001's subset needs {num_training + num_validation} "
                        f"images in {CIFAR_TRAIN[0]} and {num_test} in {CIFAR_TEST[0]}, "
                        f"found {len(X)} and {len(Xt)}")
    X = X.astype(np.float64)    # float first: as_images would divide uint8 pixels by 255
    Xt = Xt.astype(np.float64)
    train = slice(0, num_training)
    val = slice(num_training, num_training + num_validation)
    mean_image = X[train].mean(axis=0)
    return {"train": (X[train] - mean_image, y[train]),
            "val": (X[val] - mean_image, y[val]),
            "test": (Xt[:num_test] - mean_image, yt[:num_test])}


def read_cifar10_seed(split, folder):
    """One split of seed 001's subset (CIFAR_SEED_SUBSET)."""
    return load_cifar10_seed(folder, **CIFAR_SEED_SUBSET)[split]


# ----------------------------------------------------------------------------
# digits123 (seed 003): a text file, or a documented generator
# ----------------------------------------------------------------------------

DIGITS123_FILES = ("digits123.txt", "数字123.txt")

# Stroke templates of the digits 1, 2 and 3 on a 6x6 grid.
_TEMPLATES = {
    0: ["...#..", "..##..", "...#..", "...#..", "...#..", "..###."],
    1: [".###..", "#...#.", "...#..", "..#...", ".#....", "#####."],
    2: ["####..", "....#.", "..##..", "....#.", "....#.", "####.."],
}


def generate_digits123(n=96, seed=0):
    """Make seed 003's kind of data when its file is absent: n binary 6x6 images of the
    digits 1, 2, 3 (labels 0, 1, 2), in equal numbers. Each is a stroke template shifted
    by at most one pixel left or right, with one pixel in 18 flipped at random.

    Returns X: (n, 1, 6, 6) float64 in {0, 1}, y: (n,) int64.
    """
    rng = np.random.default_rng(seed)
    base = np.array([[[c == "#" for c in row] for row in _TEMPLATES[k]] for k in range(3)],
                    dtype=np.float64)
    y = np.arange(n) % 3
    shift = rng.integers(-1, 2, size=n)
    X = np.stack([np.roll(base[k], s, axis=1) for k, s in zip(y, shift)])
    flips = rng.random(X.shape) < 1 / 18
    X = np.abs(X - flips)
    return X[:, None], y.astype(np.int64)


def read_digits123(split, folder):
    """Seed 003's text file in ``folder``, or (``folder`` None) the generator."""
    if folder is None:
        # No file: the generator, with a disjoint seed for the test split.
        return generate_digits123(96 if split == "train" else 48, seed=0 if split == "train" else 1)
    path = next((folder / f for f in DIGITS123_FILES if (folder / f).is_file()), None)
    if path is None:
        require_file(folder / DIGITS123_FILES[0], "seed 003's file of 36 pixels and a label "
                     "per line; omit `data_dir` to use the built-in generator")
    try:
        rows = np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as exc:
        raise DataError(f"{path}: not 37 comma-separated numbers per line ({exc})") from None
    if rows.shape[1] != 37:
        raise DataError(f"{path}: expected 37 values per line (36 pixels, label), got {rows.shape[1]}")
    # The seed reports training accuracy only, so both splits are the whole file.
    return (as_images(rows[:, :36].reshape(-1, 1, 6, 6), path, layout="NCHW"),
            as_labels(rows[:, 36], path) - 1)


# ----------------------------------------------------------------------------
# digits: the embedded default (scikit-learn's bundled UCI 8x8 handwritten digits)
# ----------------------------------------------------------------------------

DIGITS_TRAIN = 1437   # of 1797: the first 80% train, the rest test


def read_digits(split, folder, upscale=1):
    """scikit-learn's bundled digits (``folder`` unused); ``upscale``: each pixel an
    upscale x upscale block."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = bunch.images[:, None] / 16.0      # pixel counts 0..16
    if upscale > 1:
        X = X.repeat(upscale, axis=2).repeat(upscale, axis=3)
    part = slice(0, DIGITS_TRAIN) if split == "train" else slice(DIGITS_TRAIN, None)
    return X[part], bunch.target[part].astype(np.int64)
