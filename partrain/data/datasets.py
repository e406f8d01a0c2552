"""Dataset loaders: each returns ``X`` float (N, C, H, W) and ``y`` int64 (N,).

Every loader validates what it read (dtypes, shapes, label range, finite values, X/y
lengths) and raises :class:`DataError` naming the file and the problem. Images are
scaled as the seeds scale them (pixels / 255, CIFAR-10 also minus the training mean
image). The checks shared with :mod:`partrain.data.files` (your own files) live here:
:func:`as_images`, :func:`as_labels`, :func:`check_size` and :func:`h5_dataset`.

Nothing is read before its declared size is checked against ``MAX_ARRAY_BYTES``, so a
crafted file (a gzip or zip bomb, a header with absurd dimensions) is refused after
reading only its header.

Where files live: ``--data-dir`` (the folder holding the dataset's files), else
``$PARTRAIN_DATA/<folder>``, else ``./data/<folder>``.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from ..errors import DataError, UsageError


@dataclass
class Dataset:
    name: str
    description: str
    folder: str | None          # None: embedded or generated, needs no files
    files: tuple                # file names looked for in the folder
    input_shape: tuple
    num_classes: int
    loader: callable            # (split, Path | None) -> (X uint8/float, y)


def default_data_dir(ds: Dataset) -> Path | None:
    if ds.folder is None:
        return None
    root = os.environ.get("PARTRAIN_DATA")
    return Path(root) / ds.folder if root else Path("data") / ds.folder


def files_found(ds: Dataset, data_dir=None) -> bool:
    """True when every file the dataset needs is present (embedded ones always are)."""
    if ds.folder is None:
        return True
    folder = Path(data_dir) if data_dir else default_data_dir(ds)
    return all((folder / f).is_file() for f in ds.files)


# ----------------------------------------------------------------------------
# Shared checks: every loader (and partrain.data.files) goes through these
# ----------------------------------------------------------------------------

# The most bytes one array may declare before we read it (8 GiB, or 60% of the
# memory, whichever is smaller): bounds what a crafted header can make us allocate.
MAX_ARRAY_BYTES = min(8 * 2**30, int(0.6 * psutil.virtual_memory().total))

MAX_LABEL = 2**31 - 1          # labels index an int32-sized class axis at most
CHANNEL_COUNTS = (1, 3, 4)     # gray, RGB, RGBA: what a channel axis looks like

# dtype kinds that hold real numbers: bool, signed, unsigned, float.
_NUMERIC_KINDS = "biuf"
_KIND_NAMES = {"O": "Python objects: ragged rows or mixed types?", "U": "strings",
               "S": "bytes", "c": "complex numbers", "V": "structured records",
               "M": "datetimes", "m": "timedeltas"}


def declared_bytes(shape, itemsize) -> int:
    """Bytes an array of ``shape`` takes, in Python ints so absurd shapes cannot overflow."""
    return math.prod(int(d) for d in shape) * int(itemsize)


def check_size(nbytes: int, where, what: str):
    """Refuse, before reading it, anything that declares more than MAX_ARRAY_BYTES."""
    if nbytes > MAX_ARRAY_BYTES:
        raise DataError(f"{where}: {what} is {nbytes:,} bytes, more than the limit of "
                        f"{MAX_ARRAY_BYTES:,} (partrain.data.datasets.MAX_ARRAY_BYTES)")


def check_numeric(dtype, where, what: str):
    """Refuse object, string, bytes, complex, structured and date arrays."""
    dtype = np.dtype(dtype)
    if dtype.kind not in _NUMERIC_KINDS:
        kind = _KIND_NAMES.get(dtype.kind, "not real numbers")
        raise DataError(f"{where}: {what} must be real numbers, got dtype {dtype} ({kind})")


def check_finite(X: np.ndarray, where):
    if X.dtype.kind != "f":
        return
    with np.errstate(all="ignore"):
        # min and max propagate NaN and meet any inf: no N-sized temporary on good data.
        if np.isfinite(X.min()) and np.isfinite(X.max()):
            return
        bad = int(np.count_nonzero(~np.isfinite(X)))
    raise DataError(f"{where}: {bad} pixel values are NaN or infinite")


def _as_array(a, where, what: str) -> np.ndarray:
    """np.asarray, with ragged nested lists (which numpy refuses) reported as data errors."""
    if isinstance(a, np.ndarray):
        return a
    try:
        return np.asarray(a)
    except (ValueError, TypeError):
        raise DataError(f"{where}: {what} are not a rectangular array of numbers "
                        f"(rows of different lengths?)") from None


def guess_layout(shape) -> str:
    """'NHWC' when the last axis looks like channels (1, 3 or 4) and axis 1 does not;
    otherwise 'NCHW' (an ambiguous (N, 3, H, 3) is NCHW)."""
    nhwc = shape[-1] in CHANNEL_COUNTS and shape[1] not in CHANNEL_COUNTS
    return "NHWC" if nhwc else "NCHW"


def as_images(X, where, layout=None, dtype=np.float64) -> np.ndarray:
    """Pixels as a C-contiguous float (N, C, H, W) array, or DataError naming ``where``.

    Accepts (N, H, W) grayscale, (N, C, H, W) and (N, H, W, C); ``layout`` ('NCHW' or
    'NHWC') says which a 4-D array is, else :func:`guess_layout` decides. uint8 pixels
    are divided by 255, bool becomes 0/1, other integers and floats keep their values.
    """
    X = _as_array(X, where, "pixels")
    check_numeric(X.dtype, where, "pixels")
    if X.size == 0:
        raise DataError(f"{where}: no images (the array of shape {X.shape} is empty)")
    if X.ndim == 3:
        X = X[:, None]
    elif X.ndim != 4:
        raise DataError(f"{where}: images must be (N, H, W), (N, C, H, W) or (N, H, W, C), "
                        f"got shape {X.shape}")
    elif (layout or guess_layout(X.shape)) == "NHWC":
        X = X.transpose(0, 3, 1, 2)
    with np.errstate(all="ignore"):    # float64 beyond float32's range -> inf, caught below
        out = np.ascontiguousarray(X, dtype=dtype)
        if X.dtype == np.uint8:        # a copy was made: dividing in place is safe
            out /= 255
    check_finite(out, where)
    return out


def as_labels(y, where) -> np.ndarray:
    """Labels as an int64 (N,) array, or DataError naming ``where``.

    Accepts (N,) or (N, 1) integers, bools, or floats that are all whole numbers;
    refuses NaN, inf, negative labels and labels above MAX_LABEL.
    """
    y = _as_array(y, where, "labels")
    check_numeric(y.dtype, where, "labels")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be 1-D (N,) or (N, 1), got shape {y.shape}")
    if y.size == 0:
        return y.astype(np.int64)      # the caller says why an empty split is wrong
    if y.dtype.kind == "f":
        with np.errstate(all="ignore"):
            bad = ~np.isfinite(y)
            if bad.any():
                raise DataError(f"{where}: labels must be finite, found {y[bad][0]}")
            bad = y != np.floor(y)
            if bad.any():
                raise DataError(f"{where}: labels must be whole numbers, found {y[bad][0]}")
    lo, hi = y.min(), y.max()
    if lo < 0:
        raise DataError(f"{where}: labels must not be negative, found {lo}")
    if hi > MAX_LABEL:
        raise DataError(f"{where}: labels must be below 2**31, found {hi}")
    return y.astype(np.int64)


def validate(X, y, num_classes, where) -> np.ndarray:
    """Check a loaded dataset; raise DataError naming ``where`` and the first problem.

    Returns the labels as int64 (N,)."""
    if X.ndim != 4:
        raise DataError(f"{where}: images must be 4-D (N, C, H, W), got shape {X.shape}")
    check_numeric(X.dtype, where, "pixels")
    y = as_labels(y, where)
    if len(X) != len(y):
        raise DataError(f"{where}: {len(X)} images but {len(y)} labels")
    if len(X) == 0:
        raise DataError(f"{where}: the dataset is empty")
    if y.max() >= num_classes:
        raise DataError(f"{where}: labels must lie in 0..{num_classes - 1}, "
                        f"found {y.min()}..{y.max()}")
    check_finite(X, where)
    return y


def h5_dataset(f, key, where, what: str, out_itemsize: int = 8):
    """The dataset ``key`` of an open h5py File, checked before any of it is read: an
    array (not a group), of real numbers, whose size (also once converted to
    ``out_itemsize`` bytes per value) is within MAX_ARRAY_BYTES."""
    import h5py

    ds = f.get(key)
    if not isinstance(ds, h5py.Dataset):
        raise DataError(f"{where}: '{key}' is not an array")
    check_numeric(ds.dtype, where, what)
    if ds.shape is None:
        raise DataError(f"{where}: '{key}' holds no data")
    check_size(declared_bytes(ds.shape, max(ds.dtype.itemsize, out_itemsize)), where,
               f"'{key}' {ds.shape}")
    return ds


def _require(path: Path, hint: str) -> Path:
    if not path.is_file():
        raise DataError(f"file not found: {path} ({hint})")
    return path


# ----------------------------------------------------------------------------
# catvnoncat: HDF5
# ----------------------------------------------------------------------------

def _load_catvnoncat(split, folder):
    import h5py

    path = _require(folder / f"{split}_catvnoncat.h5",
                    "pass --data-dir pointing at the folder with train_catvnoncat.h5 "
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


def _load_mnist(split, folder, pad=0):
    hint = "pass --data-dir pointing at the folder with the MNIST t10k .gz files"
    images = read_idx(_require(folder / MNIST_FILES[0], hint), 2051, 3)
    labels = read_idx(_require(folder / MNIST_FILES[1], hint), 2049, 1)
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


def _load_cifar10(split, folder):
    hint = "pass --data-dir pointing at the cifar-10-batches-py folder"
    names = [n for n in CIFAR_TRAIN if (folder / n).is_file()]
    if not names:
        _require(folder / CIFAR_TRAIN[0], hint)
    train = [_read_cifar_batch(folder / n) for n in names]
    X_train = as_images(np.concatenate([x for x, _ in train]), folder, layout="NCHW")
    mean_image = X_train.mean(axis=0)   # cs231n: subtract the training mean image
    if split == "train":
        X, y = X_train, np.concatenate([y for _, y in train])
    else:
        path = _require(folder / CIFAR_TEST[0], hint)
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
    hint = "pass --data-dir pointing at the cifar-10-batches-py folder"
    train_path = _require(folder / CIFAR_TRAIN[0], hint)
    test_path = _require(folder / CIFAR_TEST[0], hint)
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


def _load_cifar10_seed(split, folder):
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


def _load_digits123(split, folder):
    if folder is None:
        # No file: the generator, with a disjoint seed for the test split.
        return generate_digits123(96 if split == "train" else 48, seed=0 if split == "train" else 1)
    path = next((folder / f for f in DIGITS123_FILES if (folder / f).is_file()), None)
    if path is None:
        _require(folder / DIGITS123_FILES[0], "seed 003's file of 36 pixels and a label per "
                 "line; omit --data-dir to use the built-in generator")
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


def _load_digits(split, folder, upscale=1):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = bunch.images[:, None] / 16.0      # pixel counts 0..16
    if upscale > 1:
        X = X.repeat(upscale, axis=2).repeat(upscale, axis=3)
    part = slice(0, DIGITS_TRAIN) if split == "train" else slice(DIGITS_TRAIN, None)
    return X[part], bunch.target[part].astype(np.int64)


DATASETS = {d.name: d for d in [
    Dataset("digits", "embedded: UCI 8x8 handwritten digits shipped in scikit-learn "
            "(1437 train / 360 test)", None, (), (1, 8, 8), 10, _load_digits),
    Dataset("digits32", "embedded: the same digits, each pixel a 4x4 block (32x32, "
            "LeNet-5's input size)", None, (), (1, 32, 32), 10,
            lambda split, folder: _load_digits(split, folder, upscale=4)),
    Dataset("catvnoncat", "Coursera cat vs non-cat, 64x64 RGB (209 train / 50 test)",
            "catvnoncat", ("train_catvnoncat.h5", "test_catvnoncat.h5"), (3, 64, 64), 2,
            _load_catvnoncat),
    Dataset("mnist", "MNIST t10k, 28x28 (first 8000 train / last 2000 test, as seed 004)",
            "mnist", MNIST_FILES, (1, 28, 28), 10, _load_mnist),
    Dataset("mnist32", "the same MNIST split zero-padded to 32x32 (classic LeNet-5)",
            "mnist", MNIST_FILES, (1, 32, 32), 10,
            lambda split, folder: _load_mnist(split, folder, pad=2)),
    Dataset("cifar10", "CIFAR-10 python batches, 32x32 RGB, minus the training mean image",
            "cifar10", CIFAR_TRAIN[:1] + CIFAR_TEST, (3, 32, 32), 10, _load_cifar10),
    Dataset("cifar10-seed", "seed 001's CIFAR-10: first 500 of data_batch_1 / first 50 of "
            "test_batch, raw 0-255 pixels minus the train mean image", "cifar10",
            CIFAR_TRAIN[:1] + CIFAR_TEST, (3, 32, 32), 10, _load_cifar10_seed),
    Dataset("digits123", "seed 003's 6x6 digits 1/2/3 (its text file, or generated when "
            "no --data-dir is given)", None, DIGITS123_FILES, (1, 6, 6), 3, _load_digits123),
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
        raise DataError(f"data directory not found: {folder} (pass --data-dir with the "
                        f"folder holding {', '.join(ds.files)})")
    X, y = ds.loader(split, folder)
    X = np.asarray(X)
    y = validate(X, y, ds.num_classes, f"{name} ({split}) from {folder or 'built-in data'}")
    if X.shape[1:] != ds.input_shape:
        raise DataError(f"{name} ({split}): images of shape {X.shape[1:]}, "
                        f"expected {ds.input_shape}")
    return np.ascontiguousarray(X, dtype=dtype), y
