"""Resuming after the model's own code was edited is refused (issue 20, round 3): the
checkpoint's fingerprints cover the code of the user's classes, not only shapes and
class names. Comments do not count; checkpoints written before stay resumable."""

import json

import h5py
import numpy as np

from partrain.cli import main
from partrain.nn import Dense, Flatten, Sequential, SoftmaxCrossEntropy

NET = """
import partrain
from partrain.nn import Dense, Flatten, Layer


class Scale(Layer):
    def forward(self, x):
        return x * 2.0, None   # FACTOR

    def backward(self, dy, cache):
        return dy * 2.0, {}


def build(input_shape, num_classes, seed, dtype):
    return partrain.Sequential([Scale(), Flatten(), Dense(36, num_classes)],
                               partrain.SoftmaxCrossEntropy(), seed=seed, dtype=dtype,
                               name="scaled")
"""


def train(tmp_path):
    (tmp_path / "net.py").write_text(NET)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.random((24, 1, 6, 6)), y=np.arange(24) % 3)
    run = tmp_path / "run"
    assert main(["train", "--model", f"{tmp_path / 'net.py'}:build", "--data",
                 str(tmp_path / "d.npz"), "--steps", "2", "--checkpoint-every", "1",
                 "--workers", "1", "--no-progress", "--quiet", "--out", str(run)]) == 0
    return run


def resume(tmp_path, run, steps):
    return main(["train", "--resume", str(run), "--steps", str(steps), "--no-progress",
                 "--quiet", "--model", f"{tmp_path / 'net.py'}:build"])


def test_resume_after_editing_a_layers_forward_is_refused(tmp_path, capsys):
    run = train(tmp_path)
    (tmp_path / "net.py").write_text(NET.replace("# FACTOR", "# only a comment changed"))
    assert resume(tmp_path, run, 3) == 0
    (tmp_path / "net.py").write_text(NET.replace("return x * 2.0", "return x * 3.0"))
    capsys.readouterr()
    assert resume(tmp_path, run, 4) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the code of model 'scaled' changed" in err[0] \
        and "(class Scale)" in err[0], err


def test_a_checkpoint_from_before_the_code_fingerprint_still_resumes(tmp_path):
    run = train(tmp_path)
    with h5py.File(run / "checkpoint.h5", "r+") as f:
        prints = json.loads(f.attrs["fingerprints"])
        del prints["model_code"]
        f.attrs["fingerprints"] = json.dumps(prints)
    assert resume(tmp_path, run, 3) == 0


def _exec_layer(factor):
    """A layer class with no source file (as in ``python -c``): its bytecode counts."""
    namespace = {"__name__": "__main__"}
    exec(f"from partrain.nn import Layer\n"
         f"class Scale(Layer):\n"
         f"    def forward(self, x):\n"
         f"        return x * {factor}, None\n"
         f"    def backward(self, dy, cache):\n"
         f"        return dy, {{}}\n", namespace)
    return Sequential([namespace["Scale"](), Flatten(), Dense(4, 2)], SoftmaxCrossEntropy())


def test_classes_without_source_are_fingerprinted_by_their_bytecode():
    assert _exec_layer(2.0).code_fingerprint() == _exec_layer(2.0).code_fingerprint()
    assert _exec_layer(2.0).code_fingerprint() != _exec_layer(3.0).code_fingerprint()
    assert set(_exec_layer(2.0).code_fingerprint()) == {"Scale"}
    assert Sequential([Flatten(), Dense(4, 2)], SoftmaxCrossEntropy()).code_fingerprint() == {}
