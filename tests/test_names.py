"""make_model: a network from your own file or module. Whatever the file does while it
is loaded or built, the outcome is a model or one line naming what went wrong."""

import pytest

from partrain.cli import main
from partrain.errors import UsageError
from partrain.names import make_model

SHAPE = dict(input_shape=(1, 6, 6), num_classes=3)


def test_sys_exit_inside_build_is_one_line_naming_the_function(tmp_path):
    (tmp_path / "net.py").write_text("import sys\n\ndef build():\n    sys.exit(3)\n")
    with pytest.raises(UsageError, match=r"^`model` .*net\.py:build: build\(\) called "
                                         r"sys\.exit\(3\) instead of returning a model$"):
        make_model(f"{tmp_path}/net.py:build", **SHAPE)


def test_sys_exit_while_the_file_loads_is_one_line(tmp_path):
    (tmp_path / "script.py").write_text(
        "import argparse\nargparse.ArgumentParser().parse_args(['--nope'])\n"
        "def build():\n    pass\n")
    with pytest.raises(UsageError, match=r"script\.py called sys\.exit\(2\) while it was "
                                         r"loaded"):
        make_model(f"{tmp_path}/script.py:build", **SHAPE)


def test_the_command_line_says_one_line_for_a_build_that_exits(tmp_path, capsys):
    (tmp_path / "net.py").write_text("def build():\n    exit()\n")
    code = main(["train", "--model", f"{tmp_path}/net.py:build", "--dataset", "digits123",
                 "--steps", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [f"partrain: error: --model {tmp_path}/net.py:build: "
                                        "build() called sys.exit() instead of returning a "
                                        "model"], err
