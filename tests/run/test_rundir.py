"""The run directory: created once, replaced only when asked, read back with checks."""

import json

import pytest

from partrain.errors import PartrainError, UsageError
from partrain.run.rundir import CONFIG, RUN_FILES, RunDir


def test_create_refuses_a_used_directory_unless_overwrite_and_then_clears_it(tmp_path):
    run = RunDir(tmp_path / "r").create()
    for name in RUN_FILES:
        run.file(name).write_text("old")
    (tmp_path / "r" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="already exists; pass `overwrite=True`"):
        RunDir(tmp_path / "r").create()
    RunDir(tmp_path / "r").create(overwrite=True)
    assert not any(run.file(name).exists() for name in RUN_FILES)
    assert (tmp_path / "r" / "notes.txt").read_text() == "mine"   # not ours: kept


def test_a_file_where_the_directory_should_be_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError, match="`out`.*is not a directory"):
        RunDir(tmp_path / "f").create()


def test_stale_temporaries_of_our_own_writes_are_removed(tmp_path):
    run = RunDir(tmp_path).create()
    stale = tmp_path / f".{CONFIG}.abc123.tmp"
    stale.write_text("half")
    run.remove_stale_temporaries()
    assert not stale.exists()


@pytest.mark.parametrize("text, error, message", [
    (None, UsageError, "is not a run directory"),
    ("{not json", PartrainError, "is corrupt"),
    (json.dumps({"settings": 1}), PartrainError, "no 'settings' and 'model' objects"),
])
def test_read_config_says_what_is_wrong(tmp_path, text, error, message):
    if text is not None:
        (tmp_path / CONFIG).write_text(text)
    with pytest.raises(error, match=message):
        RunDir(tmp_path).read_config()
