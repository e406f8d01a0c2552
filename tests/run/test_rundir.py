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


def test_a_run_directory_is_held_by_one_process_at_a_time(tmp_path):
    import os

    first = RunDir(tmp_path / "r").lock()
    with pytest.raises(UsageError, match=f"in use by process {os.getpid()}; wait for it"):
        RunDir(tmp_path / "r").lock()
    with pytest.raises(UsageError, match="in use by process"):
        RunDir(tmp_path / "r").lock()
    first.unlock()
    RunDir(tmp_path / "r").lock().unlock()
    RunDir(tmp_path / "r").create()   # the lock file alone is no previous run


def test_default_run_directories_never_collide(tmp_path):
    from partrain.cli.train import new_run_directory

    base = str(tmp_path / "runs" / "lenet5-digits32-20261130-180333")
    made = [new_run_directory(base) for _ in range(3)]
    assert made == [base, base + "-2", base + "-3"]


def test_a_second_command_on_a_run_in_progress_is_refused_naming_the_first(tmp_path):
    import subprocess
    import sys
    import time

    out = tmp_path / "r"
    cli = [sys.executable, "-m", "partrain", "train", "--steps", "3000", "--workers", "1",
           "--quiet", "--no-progress", "--out", str(out)]
    first = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (out / "config.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run([*cli[:-2], "--out", str(out), "--overwrite"],
                                capture_output=True, text=True)
        assert second.returncode == 2
        assert second.stderr.strip().splitlines()[-1] == (
            f"partrain: error: run directory {out} is in use by process {first.pid}; "
            "wait for it to end or choose another --out")
        assert first.poll() is None   # the first run goes on, its files untouched
    finally:
        first.kill()
        first.wait()
