"""A coordinator started with stdin, stdout or stderr closed (issue 20, round 3).

With fd 1 closed, the first shared-memory file took number 1, so a ``print`` in a
user's layer (in a worker, which inherits fd 1) wrote into the parameters; with fd 0 or
2 closed the workers replaced that number with their own stdin/stderr and could not map
the array ("mmap length is greater than file size"). Now /dev/null is opened onto any
closed standard descriptor first, and the results are those of a normal run.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import partrain
    from partrain.nn import Dense, Flatten, Layer

    class Chatty(Layer):
        def forward(self, x):
            print("forward of", len(x), "samples " * 200)   # much more than one page
            print("and to stderr", file=sys.stderr)
            return x, None
        def backward(self, dy, cache):
            return dy, {}

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 1, 4, 4)).astype(np.float32), np.arange(64) % 3
    model = partrain.Sequential([Chatty(), Flatten(), Dense(16, 3)],
                                partrain.SoftmaxCrossEntropy(), seed=0)
    h = partrain.fit(model, X, y, steps=4, batch_size=32, chunk_size=8, workers=2,
                     backend="process", lr=0.1, progress=False, verbose=False)
    np.save(sys.argv[1], np.concatenate([model.flat.astype(np.float64), h["loss"]]))
''')

NET = textwrap.dedent('''
    import partrain
    from partrain.nn import Dense, Flatten, Layer

    class Chatty(Layer):
        def forward(self, x):
            print("forward", "x" * 5000)
            return x, None
        def backward(self, dy, cache):
            return dy, {}

    def build(input_shape, num_classes, seed, dtype):
        return partrain.Sequential([Chatty(), Flatten(), Dense(36, num_classes)],
                                   partrain.SoftmaxCrossEntropy(), seed=seed, dtype=dtype)
''')


def run(shell_redirect, args, cwd):
    """``args`` started by bash with ``shell_redirect`` (e.g. ``>&-``) applied."""
    return subprocess.run(["bash", "-c", f'exec "$@" {shell_redirect}', "bash", *args],
                          cwd=cwd, capture_output=True, timeout=180)


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    root = tmp_path_factory.mktemp("fds")
    (root / "chatty.py").write_text(SCRIPT)
    r = run("", [sys.executable, "chatty.py", "normal.npy"], root)
    assert r.returncode == 0, r.stderr
    return root


@pytest.mark.parametrize("closed", [">&-", "<&-", "2>&-", "<&- >&- 2>&-"])
def test_fit_with_a_closed_standard_descriptor_gives_a_normal_runs_result(script, closed):
    name = f"closed{abs(hash(closed))}.npy"
    r = run(closed, [sys.executable, "chatty.py", name], script)
    assert r.returncode == 0, r.stderr
    normal, closed_run = np.load(script / "normal.npy"), np.load(script / name)
    assert closed_run.tobytes() == normal.tobytes()


def test_the_command_line_with_closed_descriptors_trains_the_same_parameters(tmp_path):
    """(A guard: this path happened to survive before, its first files took 0-2.)"""
    closed = "<&- >&- 2>&-"
    import h5py

    (tmp_path / "net.py").write_text(NET)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.random((48, 1, 6, 6)), y=np.arange(48) % 3)
    args = [sys.executable, "-m", "partrain.cli", "train", "--model", "net.py:build",
            "--data", "d.npz", "--steps", "3", "--batch-size", "24", "--workers", "2",
            "--backend", "process", "--no-progress", "--out"]
    results = {}
    for redirect in ("", closed):
        out = f"run{len(redirect)}"
        r = run(redirect, args + [out], tmp_path)
        assert r.returncode == 0, r.stderr
        with h5py.File(tmp_path / out / "model.h5") as f:
            results[redirect] = {k: f[k][()].tobytes() for k in f if k != "best"}
    assert results[closed] == results[""]
