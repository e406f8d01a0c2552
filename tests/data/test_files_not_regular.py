"""A data path that is not a regular file (a FIFO, a device) is refused with one line
before it is opened: opening a FIFO would wait forever for a writer."""

import contextlib
import os
import threading
import time

import pytest

from partrain.cli import main
from partrain.data.files import load_data_file, load_unlabelled
from partrain.errors import DataError


@contextlib.contextmanager
def fifo_with_a_late_writer(path):
    """A FIFO at ``path``; should anything open it for reading, a writer comes after a
    few seconds and closes at once, so that a test of the unfixed code fails instead
    of hanging."""
    os.mkfifo(path)
    done = threading.Event()

    def late_writer():
        deadline = time.monotonic() + 3
        while not done.is_set():
            if time.monotonic() > deadline:
                try:
                    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:   # no reader yet
                    pass
            time.sleep(0.05)

    thread = threading.Thread(target=late_writer, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        done.set()
        thread.join(5)


def test_a_fifo_as_data_file_is_refused_before_opening(tmp_path):
    # (.npz only: HDF5 reading a FIFO would not give up even with the late writer; the
    # refusal comes before the suffix is looked at, the same for every kind of file.)
    with fifo_with_a_late_writer(tmp_path / "data.npz") as path:
        with pytest.raises(DataError, match=f"^{path}: not a regular file"):
            load_data_file(path)


@pytest.mark.parametrize("name", ["inputs.npz", "photo.png"])
def test_a_fifo_to_predict_on_is_refused_before_opening(tmp_path, name):
    with fifo_with_a_late_writer(tmp_path / name) as path:
        with pytest.raises(DataError, match=f"^{path}: not a regular file"):
            load_unlabelled([path])


def test_a_device_as_data_file_is_refused(tmp_path):
    os.symlink("/dev/null", tmp_path / "empty.npz")
    with pytest.raises(DataError, match="not a regular file"):
        load_data_file(tmp_path / "empty.npz")


def test_the_command_line_says_one_line_for_a_fifo(tmp_path, capsys):
    with fifo_with_a_late_writer(tmp_path / "pipe.npz") as path:
        code = main(["train", "--data", str(path), "--steps", "1",
                     "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines() == [f"partrain: error: {path}: not a regular file (a "
                                        "FIFO, device or socket); give a file or a folder of "
                                        "images"], err
