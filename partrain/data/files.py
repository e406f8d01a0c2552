"""Your own data: ``load_data_file(path, dtype="float32")`` reads one file or folder
into a :class:`partrain.data.container.Data` named after ``path``.

Accepted inputs:

* ``.npz`` (NumPy, read without pickle) or ``.h5``/``.hdf5`` (HDF5, top-level datasets)
  holding ``X`` and ``y`` (also spelled ``x``, ``X_train``, ``x_train`` and ``y_train``),
  optionally ``X_val``/``y_val`` (``x_val``) and ``X_test``/``y_test`` (``x_test``).
  Other keys are ignored.
* A folder of images, one sub-folder per class: ``root/<class>/*.png|jpg|jpeg|bmp|gif``;
  classes are numbered in sorted folder-name order. Or, when ``root`` holds a ``train``
  folder, ``root/train/<class>/...`` with optional ``root/val/<class>/...`` and
  ``root/test/<class>/...`` (val/test may lack classes, not add them). Hidden folders
  and files with other extensions are skipped.

Images in arrays: (N, H, W) grayscale, (N, C, H, W) or (N, H, W, C). A 4-D array is
taken as NHWC when its last axis is 1, 3 or 4 and axis 1 is not; otherwise as NCHW
(so an ambiguous (N, 3, H, 3) is NCHW). uint8 pixels are divided by 255, bool becomes
0/1, other integers and floats keep their values. Refused: object, string, bytes,
complex and structured arrays, NaN or infinite pixels, empty arrays.

Images in folders: all the same size; 1 channel when every image is grayscale, else
every image is converted to RGB (alpha dropped); pixels / 255 (16-bit grayscale
/ 65535).

Labels: shape (N,) or (N, 1); integers, bools, or floats that are all whole numbers;
0 <= label < 2**31. The number of classes is the largest label over all splits plus
one, and must be at least 2. Each split has as many labels as images; val and test
images have train's shape.

Size limit: an array whose declared size (in the zip directory, the .npy or HDF5
header, or once converted to ``dtype``) exceeds ``partrain.data.checks.MAX_ARRAY_BYTES``
(8 GiB, or 60% of the memory if smaller) is refused before it is read, so a zip bomb
is never decompressed.

Every problem raises ``DataError("<path>: <what is wrong>")``; no warning is printed.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError, UsageError
from .checks import as_images, as_labels, check_numeric, check_size, declared_bytes, h5_dataset
from .container import Data


# split -> (names for its images, names for its labels), first the preferred one
ARRAY_KEYS = {
    "train": (("X", "x", "X_train", "x_train"), ("y", "y_train")),
    "val": (("X_val", "x_val"), ("y_val",)),
    "test": (("X_test", "x_test"), ("y_test",)),
}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N"}


def load_data_file(path, dtype="float32") -> Data:
    """Read a .npz, .h5/.hdf5 file or an image folder (see the module docstring) into a
    Data named ``str(path)``, its pixels in ``dtype``; class_names for image folders only."""
    name, path, dtype = str(path), Path(path), _float_dtype(dtype)
    with warnings.catch_warnings():
        # Problems surface as DataError, never as printed warnings (Pillow warns about
        # palette transparency, for one); a decompression bomb becomes an error.
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        splits, class_names = _read(path, dtype)
    return _assemble(path, name, splits, class_names)


def _float_dtype(dtype) -> np.dtype:
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind != "f":
        raise UsageError(f"dtype must be a float type such as float32, got {dtype!r}")
    return dtype


def _read(path: Path, dtype):
    """{split: (X, y)} and the class names (None for arrays) of whatever ``path`` is."""
    readers = {".npz": _read_npz, ".h5": _read_h5, ".hdf5": _read_h5}
    suffix = path.suffix.lower()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        if suffix in readers:
            raise DataError(f"{path}: is a folder, expected a {suffix} file")
        return _read_image_folder(path, dtype)
    _refuse_special(path)
    if suffix not in readers:
        raise DataError(f"{path}: unknown kind of data file '{suffix}'; expected .npz, .h5, "
                        f".hdf5 or a folder of images in class sub-folders")
    return readers[suffix](path, dtype), None


def _assemble(path: Path, name: str, splits: dict, class_names) -> Data:
    shape = splits["train"][0].shape[1:]
    for split, (X, _) in splits.items():
        if X.shape[1:] != shape:
            raise DataError(f"{path}: {split} images have shape {X.shape[1:]} but train "
                            f"images {shape}; they must match")
    # Every split holds at least one image (as_images refuses empty arrays).
    num_classes = 1 + max(int(y.max()) for _, y in splits.values())
    if num_classes < 2:
        raise DataError(f"{path}: only one class (every label is 0); training needs at "
                        f"least 2")
    return Data(train=splits["train"], val=splits.get("val"), test=splits.get("test"),
                num_classes=num_classes, name=name, class_names=class_names)


# ----------------------------------------------------------------------------
# Arrays: .npz and .h5
# ----------------------------------------------------------------------------

def _choose_keys(path: Path, keys) -> dict:
    """{split: (images key, labels key)} for the splits present among ``keys``."""
    keys = set(keys)
    chosen = {}
    for split, (x_names, y_names) in ARRAY_KEYS.items():
        xkey, ykey = _one_of(path, keys, x_names), _one_of(path, keys, y_names)
        if split != "train" and xkey is None and ykey is None:
            continue                    # val and test are optional
        if xkey is None or ykey is None:
            raise DataError(f"{path}: expected {_spell(x_names)} and {_spell(y_names)}; "
                            f"the file holds {', '.join(sorted(keys)) or 'no arrays'}")
        chosen[split] = (xkey, ykey)
    return chosen


def _one_of(path: Path, keys: set, names: tuple):
    present = [n for n in names if n in keys]
    if len(present) > 1:
        raise DataError(f"{path}: holds both {present[0]} and {present[1]}; keep one")
    return present[0] if present else None


def _spell(names: tuple) -> str:
    return names[0] + (f" (or {', '.join(names[1:])})" if len(names) > 1 else "")


def _roles(chosen: dict, dtype):
    """(key, what, bytes per value once converted) for each array to read."""
    for xkey, ykey in chosen.values():
        yield xkey, "pixels", dtype.itemsize
        yield ykey, "labels", 8


def _splits(path: Path, chosen: dict, arrays: dict, dtype) -> dict:
    splits = {}
    for split, (xkey, ykey) in chosen.items():
        X = as_images(arrays[xkey], f"{path}: {xkey}", dtype=dtype)
        y = as_labels(arrays[ykey], f"{path}: {ykey}")
        if len(X) != len(y):
            raise DataError(f"{path}: {len(X)} images in {xkey} but {len(y)} labels in {ykey}")
        splits[split] = (X, y)
    return splits


def _read_npz(path: Path, dtype) -> dict:
    try:
        with zipfile.ZipFile(path) as zf:
            # np.load names each member after its file name less ".npy".
            members = {i.filename.removesuffix(".npy"): i for i in zf.infolist()}
            chosen = _choose_keys(path, members)
            for key, what, itemsize in _roles(chosen, dtype):
                _check_npz_member(path, zf, members[key], what, itemsize)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key, _, _ in _roles(chosen, dtype)}
    except DataError:
        raise
    except Exception as exc:    # zipfile, zlib and numpy raise many kinds on bad bytes
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    return _splits(path, chosen, arrays, dtype)


def _check_npz_member(path: Path, zf, info, what: str, itemsize: int):
    """Check a member from the zip directory and its .npy header only, before any of
    its data is decompressed."""
    where = f"{path}: {info.filename.removesuffix('.npy')}"
    check_size(info.file_size, where, "the uncompressed zip member")
    with zf.open(info) as fp:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, _, stored = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, stored = np.lib.format.read_array_header_2_0(fp)
        else:
            raise DataError(f"{where}: unsupported .npy format version {version}")
    check_numeric(stored, where, what)
    nbytes = declared_bytes(shape, stored.itemsize)
    if nbytes > info.file_size:
        raise DataError(f"{where}: header declares {nbytes:,} bytes, the member holds "
                        f"{info.file_size:,}")
    check_size(declared_bytes(shape, max(stored.itemsize, itemsize)), where,
               f"the array {shape} once converted")


def _read_h5(path: Path, dtype) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            chosen = _choose_keys(path, [k for k in f if isinstance(f.get(k), h5py.Dataset)])
            arrays = {key: h5_dataset(f, key, f"{path}: {key}", what, itemsize)[()]
                      for key, what, itemsize in _roles(chosen, dtype)}
    except DataError:
        raise
    except Exception as exc:    # h5py raises OSError, KeyError, RuntimeError... on bad bytes
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from None
    return _splits(path, chosen, arrays, dtype)


# ----------------------------------------------------------------------------
# Image folders
# ----------------------------------------------------------------------------

def _read_image_folder(root: Path, dtype):
    split_dirs = {"train": root}
    if (root / "train").is_dir():
        split_dirs = {s: root / s for s in ("train", "val", "test") if (root / s).is_dir()}
    class_names = _subfolders(split_dirs["train"])
    if not class_names:
        raise DataError(f"{root}: no class sub-folders; expected {root}/<class>/*.png "
                        f"(or .jpg, .jpeg, .bmp, .gif), or {root}/train/<class>/...")
    files = {split: _image_files(folder, class_names) for split, folder in split_dirs.items()}
    shape, gray = _common_shape([file for found in files.values() for file, _ in found],
                                root, dtype)
    splits = {split: _decode(found, shape, gray, dtype) for split, found in files.items()}
    return splits, class_names


def _common_shape(images, where, dtype):
    """((C, H, W), gray) of every image in ``images``, from their headers only: nothing
    is decoded before the sizes agree and the whole fits in MAX_ARRAY_BYTES. Gray when
    every image is; otherwise all become RGB."""
    headers = {file: _header(file) for file in images}
    first, (size, _) = next(iter(headers.items()))
    for file, (other, _) in headers.items():
        if other != size:
            raise DataError(f"{file}: image is {other[0]}x{other[1]} but {first} is "
                            f"{size[0]}x{size[1]}; all images must be the same size")
    gray = all(mode in GRAY_MODES for _, mode in headers.values())
    shape = (1 if gray else 3, size[1], size[0])
    check_size(declared_bytes((len(headers),) + shape, dtype.itemsize), where,
               f"{len(headers)} images of shape {shape} as {dtype}")
    return shape, gray


def _subfolders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(split_dir: Path, class_names: list[str]) -> list[tuple[Path, int]]:
    """(file, label) for every image of a split, in class then file-name order."""
    unknown = sorted(set(_subfolders(split_dir)) - set(class_names))
    if unknown:
        raise DataError(f"{split_dir}: class folder '{unknown[0]}' is not among the "
                        f"training classes ({', '.join(class_names)})")
    found = []
    for label, name in enumerate(class_names):
        folder = split_dir / name
        if not folder.is_dir():
            continue                    # a val/test split may lack a class
        images = sorted(p for p in folder.iterdir()
                        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not images:
            raise DataError(f"{folder}: empty class folder (no {', '.join(IMAGE_EXTENSIONS)} "
                            f"images)")
        found += [(p, label) for p in images]
    if not found:
        raise DataError(f"{split_dir}: no images in any class folder")
    return found


def _open(file: Path):
    """Pillow, with its many exception types on bad bytes (and the decompression-bomb
    warning, an error here) reported as one DataError naming the file."""
    try:
        return Image.open(file)
    except Exception as exc:
        raise DataError(f"{file}: not a readable image ({exc})") from None


def _header(file: Path) -> tuple:
    with _open(file) as im:             # reads the header only
        return im.size, im.mode


def _decode(found: list, shape: tuple, gray: bool, dtype) -> tuple:
    X = np.empty((len(found),) + shape, dtype=dtype)
    for i, (file, _) in enumerate(found):
        try:
            with _open(file) as im:
                if gray and im.mode.startswith("I"):    # 16-bit grayscale: convert("L") clips
                    X[i, 0] = np.asarray(im, dtype=np.float64) / 65535
                else:
                    pixels = np.asarray(im.convert("L" if gray else "RGB"))
                    X[i] = (pixels[None] if gray else pixels.transpose(2, 0, 1)) / 255
        except DataError:
            raise
        except Exception as exc:        # truncated or corrupt data past a good header
            raise DataError(f"{file}: not a readable image ({exc})") from None
    return X, np.array([label for _, label in found], dtype=np.int64)


def load_unlabelled(inputs, dtype="float32"):
    """Images to predict on, without labels: (X (N, C, H, W) in ``dtype``, names), in
    the order of ``inputs``.

    inputs: paths of image files, of folders (every image below them, in path order),
    and of .npz files holding an array ``X`` (its rows are named FILE[i]). Every image
    must have the size of the first; gray images stay one channel, others become RGB.
    """
    dtype = _float_dtype(dtype)
    pieces = []   # per input: a list of image files, or (X, source) from a .npz
    for item in map(Path, [inputs] if isinstance(inputs, (str, Path)) else inputs):
        if not item.exists():
            raise DataError(f"{item}: no such file or folder")
        if item.is_dir():
            found = sorted(p for p in item.rglob("*")
                           if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if not found:
                raise DataError(f"{item}: no {', '.join(IMAGE_EXTENSIONS)} images in it")
            pieces.append(found)
        elif item.suffix.lower() in IMAGE_EXTENSIONS:
            _refuse_special(item)
            pieces.append([item])
        elif item.suffix.lower() == ".npz":
            pieces.append(_read_unlabelled_npz(item, dtype))
        else:
            raise DataError(f"{item}: expected images ({', '.join(IMAGE_EXTENSIONS)}), a "
                            "folder of them, or a .npz file with an array X")
    images = [file for piece in pieces if isinstance(piece, list) for file in piece]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        if images:
            shape, gray = _common_shape(images, images[0].parent, dtype)
        arrays, names = [], []
        for piece in pieces:
            if isinstance(piece, list):
                arrays.append(_decode([(file, 0) for file in piece], shape, gray, dtype)[0])
                names += [str(file) for file in piece]
            else:
                X, source = piece
                arrays.append(X)
                names += [f"{source}[{i}]" for i in range(len(X))]
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) > 1:
        raise DataError(f"the inputs hold images of shapes {sorted(shapes)}; give one size")
    return np.concatenate(arrays), names


def _refuse_special(path: Path):
    """Refuse what is not a regular file before opening it: opening a FIFO blocks until
    something writes to it, and a device or socket is never a dataset."""
    if not path.is_file():
        raise DataError(f"{path}: not a regular file (a FIFO, device or socket); give a "
                        "file or a folder of images")


def _read_unlabelled_npz(path: Path, dtype):
    _refuse_special(path)
    try:
        with zipfile.ZipFile(path) as zf:
            members = {i.filename.removesuffix(".npy"): i for i in zf.infolist()}
            if "X" not in members:
                raise DataError(f"{path}: no array X (it has {', '.join(members) or 'none'})")
            _check_npz_member(path, zf, members["X"], "images", dtype.itemsize)
        with np.load(path, allow_pickle=False) as npz:
            X = npz["X"]
    except DataError:
        raise
    except Exception as exc:    # zipfile, zlib and numpy raise many kinds on bad bytes
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    check_numeric(X.dtype, path, "X")
    return np.ascontiguousarray(as_images(X, f"{path} X"), dtype=dtype), str(path)
