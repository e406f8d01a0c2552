"""Writing a run's files: a full disk is one line naming the file; matplotlib's own
complaints (a bad matplotlibrc, an unwritable home) are at most one partrain warning."""

import os
import pathlib
import subprocess
import sys

import h5py
import numpy as np
import pytest

from partrain.cli import main
from partrain.errors import PartrainError
from partrain.run import files
from partrain.testing import CLI, final_lines, output_problems


def h5_onto_a_full_disk(monkeypatch, names=None):
    """h5py files whose name starts with one of ``names`` (all when None) are written
    to /dev/full: every write fails with ENOSPC, as on a full disk."""
    real = h5py.File

    def File(name, mode="r", *args, **kwargs):
        if mode == "w" and (names is None or any(pathlib.Path(name).name.startswith(n)
                                                  for n in names)):
            return real("/dev/full", mode, *args, **kwargs)
        return real(name, mode, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", File)


def test_a_full_disk_under_hdf5_is_one_line_naming_the_file(monkeypatch, tmp_path):
    h5_onto_a_full_disk(monkeypatch)
    target = tmp_path / "model.h5"
    with pytest.raises(PartrainError) as caught:
        files.write_params_h5(target, {"W": np.zeros(100_000, np.float32)})
    assert str(caught.value) == f"cannot write {target}: no space left on device"
    assert list(tmp_path.iterdir()) == []   # no temporary left behind


def test_a_full_disk_under_a_plain_write_is_one_line_naming_the_file(monkeypatch, tmp_path):
    def write_to_full_disk(self, data, *args, **kwargs):
        with open("/dev/full", "w") as f:
            f.write(data)

    monkeypatch.setattr(pathlib.Path, "write_text", write_to_full_disk)
    target = tmp_path / "metrics.json"
    with pytest.raises(PartrainError, match=f"^cannot write {target}: no space left on "
                                            "device$"):
        files.write_json(target, {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_says_one_line_when_model_h5_meets_a_full_disk(
        monkeypatch, tmp_path, capsys):
    h5_onto_a_full_disk(monkeypatch, names=[".model.h5."])
    out = tmp_path / "run"
    code = main(["train", "--model", "digits123", "--steps", "2", "--workers", "1",
                 "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert final_lines(err) == [f"partrain: error: cannot write {out / 'model.h5'}: "
                                "no space left on device"], err
    assert "errno" not in err and "Traceback" not in err


def test_matplotlib_with_no_writable_home_and_a_bad_matplotlibrc_says_one_warning(tmp_path):
    """A fresh process (matplotlib reads its configuration once, at import)."""
    (tmp_path / "matplotlibrc").write_text("no.such.key: 1\nlines.linewidth: wide\n")
    home = tmp_path / "home-is-a-file"
    home.write_text("")   # not a folder: nothing can be made under it, even by root
    env = {k: v for k, v in os.environ.items()
           if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "MATPLOTLIBRC")}
    env.update(HOME=str(home), PYTHONPATH=str(pathlib.Path(__file__).resolve().parents[2]))
    proc = subprocess.run([*CLI, "train", "--model", "digits123", "--steps", "1",
                           "--workers", "1", "--no-progress", "--quiet", "--out", "run"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert output_problems(proc.stdout, proc.stderr, finals=0) == [], proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if "matplotlib" in ln.lower()]
    assert warnings == ["partrain: warning: matplotlib: Bad key no.such.key in file "
                        "matplotlibrc, line 1 ('no.such.key: 1') (and 1 more)"], proc.stderr
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0
