"""load_data_file: your own .npz / .h5 / image folders, and one clear DataError for
every kind of bad input."""


import h5py
import numpy as np
import pytest
from PIL import Image

import partrain.data.checks
from partrain.data.files import load_data_file
from partrain.errors import DataError, UsageError

RNG = np.random.default_rng(0)


def images_u8(n=6, shape=(2, 3, 5)):
    return RNG.integers(0, 256, (n,) + shape, dtype=np.uint8)


def labels(n=6, k=3):
    return np.arange(n) % k


# -- good arrays ----------------------------------------------------------------------

def test_npz_nchw_uint8_round_trip(tmp_path):
    X, y = images_u8(shape=(3, 4, 5)), labels()
    np.savez(tmp_path / "d.npz", X=X, y=y)
    d = load_data_file(tmp_path / "d.npz")
    Xd, yd = d.train
    assert Xd.shape == (6, 3, 4, 5) and Xd.dtype == np.float32 and Xd.flags.c_contiguous
    np.testing.assert_allclose(Xd, X / 255, rtol=1e-6)
    assert yd.dtype == np.int64 and yd.tolist() == y.tolist()
    assert d.num_classes == 3 and d.input_shape == (3, 4, 5)
    assert d.val is None and d.test is None and d.class_names is None
    assert d.name == str(tmp_path / "d.npz")


def test_npz_nhwc_float_kept_as_is(tmp_path):
    X = RNG.random((5, 5, 6, 3))              # NHWC: last axis 3, axis 1 not 1/3/4
    np.savez_compressed(tmp_path / "d.npz", x_train=X, y_train=np.array([0, 1, 0, 1, 1.0]))
    d = load_data_file(tmp_path / "d.npz", dtype="float64")
    assert d.train[0].shape == (5, 3, 5, 6) and d.train[0].dtype == np.float64
    np.testing.assert_array_equal(d.train[0], X.transpose(0, 3, 1, 2))
    assert d.train[1].tolist() == [0, 1, 0, 1, 1] and d.num_classes == 2


def test_ambiguous_layout_is_nchw(tmp_path):
    np.savez(tmp_path / "d.npz", X=images_u8(shape=(3, 5, 3)), y=labels())
    assert load_data_file(tmp_path / "d.npz").input_shape == (3, 5, 3)
    np.savez(tmp_path / "d.npz", X=images_u8(shape=(4, 5, 3)), y=labels())   # 4: RGBA?
    assert load_data_file(tmp_path / "d.npz").input_shape == (4, 5, 3)


def test_grayscale_bool_and_int16(tmp_path):
    np.savez(tmp_path / "g.npz", X=images_u8(shape=(4, 5)), y=labels())
    assert load_data_file(tmp_path / "g.npz").input_shape == (1, 4, 5)
    np.savez(tmp_path / "b.npz", X=np.ones((6, 4, 5), bool), y=labels())
    assert load_data_file(tmp_path / "b.npz").train[0].max() == 1.0
    np.savez(tmp_path / "i.npz", X=np.full((6, 4, 5), 300, np.int16), y=labels())
    assert load_data_file(tmp_path / "i.npz").train[0].max() == 300.0   # kept as values


def test_optional_val_and_test_splits(tmp_path):
    np.savez(tmp_path / "d.npz", X=images_u8(), y=labels(6, 2),
             x_val=images_u8(2), y_val=[0, 1], X_test=images_u8(3), y_test=[[0], [4], [1]],
             notes=np.arange(3))              # unknown keys are ignored
    d = load_data_file(tmp_path / "d.npz")
    assert d.val[0].shape == (2, 2, 3, 5) and d.test[1].tolist() == [0, 4, 1]
    assert d.num_classes == 5                 # the largest label over all splits + 1


def test_h5_file(tmp_path):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["X"] = images_u8(shape=(5, 5, 1))   # NHWC gray
        f["y"] = labels(6, 2)
        f["X_test"] = images_u8(2, shape=(5, 5, 1))
        f["y_test"] = [1, 0]
        f.create_group("meta")
    d = load_data_file(tmp_path / "d.h5")
    assert d.input_shape == (1, 5, 5) and d.test[0].shape == (2, 1, 5, 5)
    assert d.num_classes == 2


# -- image folders --------------------------------------------------------------------

def write_png(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


def test_image_folder_rgb(tmp_path):
    red = np.zeros((5, 4, 3), np.uint8)
    red[..., 0] = 255
    for i in range(2):
        write_png(tmp_path / "cat" / f"{i}.png", red)
        write_png(tmp_path / "dog" / f"{i}.PNG", np.full((5, 4), 51, np.uint8))   # gray
    (tmp_path / "dog" / "notes.txt").write_text("skipped")
    d = load_data_file(tmp_path)
    X, y = d.train
    assert d.class_names == ["cat", "dog"] and y.tolist() == [0, 0, 1, 1]
    assert X.shape == (4, 3, 5, 4) and d.num_classes == 2        # any colour -> all RGB
    assert X[0, 0].min() == 1.0 and X[0, 1].max() == 0.0
    np.testing.assert_allclose(X[2], 0.2, rtol=1e-6)


def test_image_folder_train_test_grayscale(tmp_path):
    for split, n in (("train", 3), ("test", 1)):
        for k, name in enumerate(["one", "two"]):
            for i in range(n):
                write_png(tmp_path / split / name / f"{i}.png",
                          np.full((6, 6), 255 * k, np.uint8))
    write_png(tmp_path / "val" / "two" / "0.png", np.full((6, 6), 255, np.uint8))
    d = load_data_file(tmp_path)
    assert d.input_shape == (1, 6, 6) and d.train[1].tolist() == [0, 0, 0, 1, 1, 1]
    assert d.test[1].tolist() == [0, 1] and d.val[1].tolist() == [1]
    assert d.val[0].max() == 1.0 and d.class_names == ["one", "two"]


# -- bad input: one DataError naming the file and the problem --------------------------

def npz(**arrays):
    def make(tmp_path):
        np.savez(tmp_path / "d.npz", **arrays)
        return tmp_path / "d.npz"
    return make


def good(**changes):
    return npz(**{"X": images_u8(), "y": labels(), **changes})


def nan_pixels():
    X = np.zeros((6, 2, 3, 5))
    X[2, 1, 1, 1] = np.nan
    return X


def corrupt_npz(tmp_path):
    good()(tmp_path)
    raw = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "d.npz").write_bytes(raw[:40] + b"\xff" * 64 + raw[104:])
    return tmp_path / "d.npz"


def truncated_h5(tmp_path):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["X"], f["y"] = images_u8(60), labels(60)
    raw = (tmp_path / "d.h5").read_bytes()
    (tmp_path / "d.h5").write_bytes(raw[: len(raw) // 2])
    return tmp_path / "d.h5"


def string_labels_h5(tmp_path):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["X"], f["y"] = images_u8(2), ["cat", "dog"]
    return tmp_path / "d.h5"


def folder(images):
    """An image folder from {relative path: array}; a bytes value is written as is."""
    def make(tmp_path):
        for name, content in images.items():
            path = tmp_path / "imgs" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                write_png(path, content)
        return tmp_path / "imgs"
    return make


def truncated_png():
    import io
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (40, 40), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()[:800]             # a good header, the pixel data cut short


def empty_class_folder(tmp_path):
    root = folder({"a/0.png": np.zeros((4, 4), np.uint8)})(tmp_path)
    (root / "b").mkdir()
    return root


def other(name, content=b"whatever"):
    def make(tmp_path):
        (tmp_path / name).write_bytes(content)
        return tmp_path / name
    return make


G = np.zeros((4, 4), np.uint8)
BAD = {
    "string pixels": (npz(X=np.full((2, 3, 3), "a"), y=[0, 1]), "strings"),
    "object pixels": (npz(X=np.array([[1, 2], [3]], dtype=object), y=[0, 1]), "objects"),
    "complex pixels": (good(X=np.ones((6, 2, 3, 5), complex)), "complex"),
    "NaN pixels": (good(X=nan_pixels()), "1 pixel values are NaN"),
    "inf after float32 cast": (good(X=np.full((6, 2, 3, 5), 1e300)), "NaN or infinite"),
    "empty pixels": (good(X=np.zeros((0, 2, 3, 5)), y=np.zeros(0)), "empty"),
    "5-D pixels": (good(X=np.zeros((6, 1, 2, 3, 5))), r"must be \(N, H, W\)"),
    "float labels 3.7": (good(y=[0, 1, 3.7, 1, 0, 2]), "whole numbers, found 3.7"),
    "NaN labels": (good(y=[0, 1, np.nan, 1, 0, 2]), "finite, found nan"),
    "string labels": (good(y=np.array(list("abcabc"))), "labels must be real numbers"),
    "huge labels 1e20": (good(y=[0, 1, 1e20, 1, 0, 2]), r"below 2\*\*31, found 1e\+20"),
    "negative labels": (good(y=[0, 1, -1, 1, 0, 2]), "negative, found -1"),
    "2-D labels": (good(y=np.zeros((6, 2))), "1-D"),
    "ragged labels": (good(y=np.array([[0, 1], [1]], dtype=object)), "labels must be real"),
    "label count mismatch": (good(y=[0, 1, 0]), "6 images in X but 3 labels in y"),
    "single class": (good(y=np.zeros(6, int)), "only one class"),
    "val shape mismatch": (good(X_val=images_u8(2, (2, 3, 6)), y_val=[0, 1]),
                           r"val images have shape \(2, 3, 6\) but train"),
    "test without labels": (good(X_test=images_u8(2)),
                            r"expected X_test \(or x_test\) and y_test; .*holds X, X_test, y$"),
    "no y": (npz(X=images_u8(), labels=labels()), "expected X .* and y .*holds X, labels"),
    "X and X_train": (good(X_train=images_u8()), "both X and X_train"),
    "corrupt npz": (corrupt_npz, "not a readable .npz"),
    "truncated h5": (truncated_h5, "not a readable HDF5"),
    "string labels h5": (string_labels_h5, "labels must be real numbers"),
    "images of different sizes": (folder({"a/0.png": G, "b/1.png": np.zeros((4, 5), np.uint8)}),
                                  r"b/1.png: image is 5x4 but .*a/0.png is 4x4"),
    "corrupt png": (folder({"a/0.png": G, "b/bad.png": b"\x89PNG garbage"}),
                    "bad.png: not a readable image"),
    "truncated png": (folder({"a/0.png": np.zeros((40, 40), np.uint8),
                               "b/cut.png": truncated_png()}),
                      "cut.png: not a readable image"),
    "empty class folder": (empty_class_folder, "b: empty class folder"),
    "single class folder": (folder({"a/0.png": G}), "only one class"),
    "folder without classes": (folder({"0.png": G}), "no class sub-folders"),
    "unknown extension": (other("d.csv"), "unknown kind of data file '.csv'"),
    "folder named .npz": (lambda p: (p / "d.npz").mkdir() or p / "d.npz", "is a folder"),
    "missing path": (lambda p: p / "nothing.npz", "no such file"),
}


@pytest.mark.parametrize("make, problem", BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_data_error(tmp_path, make, problem):
    path = make(tmp_path)
    with pytest.raises(DataError, match=problem) as err:
        load_data_file(path)
    assert str(err.value).startswith(str(path))


def test_zip_bomb_is_refused_before_decompressing(tmp_path, monkeypatch):
    good()(tmp_path)                          # X member: 144 bytes of data plus header
    monkeypatch.setattr(partrain.data.checks, "MAX_ARRAY_BYTES", 100)
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load was called"))
    with pytest.raises(DataError, match=r"d.npz: X: the uncompressed zip member is \d+ "
                                        r"bytes, more than the limit of 100"):
        load_data_file(tmp_path / "d.npz")


def test_npy_header_declaring_more_than_the_member_holds(tmp_path):
    import zipfile
    header = np.lib.format.header_data_from_array_1_0(np.zeros((10**6, 28, 28), np.uint8))
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as zf:
        with zf.open("X.npy", "w") as fp:
            np.lib.format.write_array_header_1_0(fp, header)
            fp.write(b"\0" * 100)
        with zf.open("y.npy", "w") as fp:
            np.lib.format.write_array(fp, labels())
    with pytest.raises(DataError, match="header declares 784,000,000 bytes, the member"):
        load_data_file(tmp_path / "d.npz")


def test_images_too_large_for_memory_are_refused_before_decoding(tmp_path, monkeypatch):
    root = folder({"a/0.png": G, "b/0.png": G})(tmp_path)
    monkeypatch.setattr(partrain.data.checks, "MAX_ARRAY_BYTES", 100)
    with pytest.raises(DataError, match="2 images of shape .* more than the limit"):
        load_data_file(root)


def test_decompression_bomb_image(tmp_path, monkeypatch):
    root = folder({"a/0.png": np.zeros((20, 20), np.uint8), "b/0.png": G})(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)   # a warning past 300, an error past 600
    with pytest.raises(DataError, match="0.png: not a readable image .*decompression bomb"):
        load_data_file(root)


def test_dtype_must_be_float(tmp_path):
    good()(tmp_path)
    with pytest.raises(UsageError, match="float"):
        load_data_file(tmp_path / "d.npz", dtype="int32")


def test_a_stop_while_reading_is_a_stop_not_a_bad_file(tmp_path, monkeypatch):
    """The readers turn any exception from zipfile/numpy/h5py into a DataError; a Ctrl-C
    arriving mid-read must pass through them untouched and end the run as a stop."""
    import signal

    from partrain.errors import Interrupted

    np.savez(tmp_path / "d.npz", X=images_u8(), y=labels())

    def stopped(*args, **kwargs):
        raise Interrupted(signal.SIGINT)

    monkeypatch.setattr(np, "load", stopped)
    with pytest.raises(Interrupted):
        load_data_file(tmp_path / "d.npz")
