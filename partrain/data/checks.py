"""The checks every reader of data goes through, named datasets and your own files alike:
numbers only, sizes within a limit before anything is read, finite pixels, labels that
are whole, non-negative and in range.

:func:`as_images` and :func:`as_labels` turn what was read into the arrays every split
holds (pixels C-contiguous float (N, C, H, W), labels int64 (N,)); every problem raises
:class:`DataError` naming where the data came from and what is wrong.

Nothing is read before its declared size is checked against ``MAX_ARRAY_BYTES``, so a
crafted file (a gzip or zip bomb, a header with absurd dimensions) is refused after
reading only its header.
"""

from __future__ import annotations

import math

import numpy as np
import psutil

from ..errors import DataError

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
                        f"{MAX_ARRAY_BYTES:,} (partrain.data.checks.MAX_ARRAY_BYTES)")


def check_numeric(dtype, where, what: str):
    """Refuse object, string, bytes, complex, structured and date arrays."""
    dtype = np.dtype(dtype)
    if dtype.kind not in _NUMERIC_KINDS:
        kind = _KIND_NAMES.get(dtype.kind, "not real numbers")
        raise DataError(f"{where}: {what} must be real numbers, got dtype {dtype} ({kind})")


def check_finite(X: np.ndarray, where):
    """Refuse NaN and infinite pixels (float arrays; other kinds cannot hold them)."""
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
