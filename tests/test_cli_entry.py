"""How ``partrain.cli.main`` may be entered and what it refuses before any run: called
from a thread other than the main one, and an empty run directory."""

import threading

import numpy as np
import pytest

import partrain
from partrain.cli import main
from partrain.errors import UsageError


def test_main_called_from_a_thread_trains_with_its_workers(tmp_path, capsys):
    out = tmp_path / "run"
    codes = []
    thread = threading.Thread(target=lambda: codes.append(main(
        ["train", "--model", "digits123", "--steps", "2", "--workers", "2",
         "--backend", "process", "--no-progress", "--out", str(out)])))
    thread.start()
    thread.join(timeout=240)
    err = capsys.readouterr().err
    assert codes == [0], err
    assert "Traceback" not in err and (out / "model.h5").is_file()


def test_an_empty_out_is_one_line_not_the_default_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--model", "digits123", "--steps", "1", "--workers", "1",
                 "--no-progress", "--out", ""])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == ["partrain: error: --out must not be empty"], err
    assert list(tmp_path.iterdir()) == []   # no runs/ folder, nothing written


def test_fit_with_an_empty_out_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = partrain.build_model("digits123", seed=0)
    X, y = np.zeros((8, 1, 6, 6), np.float32), np.arange(8) % 3
    with pytest.raises(UsageError, match="^`out` must not be empty$"):
        partrain.fit(model, X, y, steps=1, workers=1, out="", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_main_from_python_gives_the_callers_warning_filters_back():
    import warnings

    from partrain.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        before = list(warnings.filters)
        assert main(["models"]) == 0
        assert warnings.filters == before
