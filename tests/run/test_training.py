"""TrainingRun: a trainer whose run is written to its run directory, and rebuilt from
it."""

import json

import pytest

from partrain.errors import UsageError
from partrain.run.resume import rebuild
from partrain.run.rundir import LOCK, RUN_FILES, RunDir
from partrain.testing import make_trainer

QUICK = dict(model="digits123", dataset="digits123", workers=1, steps=4, eval_every=2)


def test_a_run_with_out_writes_every_file_and_without_writes_none(tmp_path, monkeypatch):
    history = make_trainer(tmp_path / "r", checkpoint_every=2, **QUICK).run()
    assert history.out == str(tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == sorted([*RUN_FILES, LOCK])
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["derived"]["total_steps"] == 4 and set(config["fingerprints"]) == {
        "settings", "model", "data"}

    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    history = make_trainer(None, **QUICK).run()
    assert history.out is None and list((tmp_path / "empty").iterdir()) == []


def test_resume_needs_a_run_directory():
    with pytest.raises(UsageError, match="`resume` needs the run directory `out`"):
        make_trainer(None, **QUICK).resume()


def test_a_run_started_from_python_cannot_be_rebuilt_from_its_directory(tmp_path):
    make_trainer(tmp_path / "r", **QUICK).run()
    with pytest.raises(UsageError, match="started from Python.*resume=True"):
        rebuild(RunDir(tmp_path / "r"))


def test_a_command_line_run_is_rebuilt_as_it_was_recorded(tmp_path):
    from partrain.cli import main

    out = tmp_path / "cli"
    assert main(["train", "--model", "digits123", "--steps", "3", "--workers", "1",
                 "--lr", "0.3", "--no-progress", "--out", str(out)]) == 0
    model, data, optimizer, settings, spec = rebuild(RunDir(out))
    assert (spec["model"], model.name, data.name) == ("digits123", "digits123", "digits123")
    assert (optimizer.lr, settings.steps, settings.out) == (0.3, 3, str(out))
