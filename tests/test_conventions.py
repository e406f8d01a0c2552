"""The command line keeps the habits of ordinary Unix tools."""

import subprocess
import sys

import partrain

CLI = [sys.executable, "-m", "partrain"]


def run(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True)


def test_version_and_python_dash_m():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"partrain {partrain.__version__}"


def test_no_arguments_prints_help_not_an_error():
    r = run()
    assert r.returncode == 0 and "usage: partrain" in r.stdout and "train" in r.stdout
    assert r.stderr == ""


def test_a_closed_pipe_ends_quietly_as_sigpipe_does():
    proc = subprocess.Popen([*CLI, "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()   # the reader is gone before the first line (`| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and err == ""
