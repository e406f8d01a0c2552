"""The process backend's start-up: every worker starts at once, and each imports only
what computing needs."""

import os
import subprocess
import sys
import time

import numpy as np

from partrain.engine import make_engine
from partrain.nn import Dense, Flatten, Layer, Sequential, SoftmaxCrossEntropy


class SlowToRebuild(Layer):
    """Identity layer whose unpickling, in each worker, records when it began and ended
    and takes a second in between: a stand-in for a worker's slow start."""

    def __init__(self, log):
        super().__init__()
        self.log, self.coordinator = log, os.getpid()

    def forward(self, x):
        return x, None

    def backward(self, dy, cache):
        return dy, {}

    def __setstate__(self, state):
        self.__dict__.update(state)
        if os.getpid() == self.coordinator:
            return   # a copy made while pickling, not a worker starting
        with open(self.log, "a") as f:
            f.write(f"begin {time.time()}\n")
        time.sleep(1.0)
        with open(self.log, "a") as f:
            f.write(f"end {time.time()}\n")


def test_workers_start_concurrently(tmp_path):
    log = tmp_path / "starts.txt"
    model = Sequential([SlowToRebuild(str(log)), Flatten(), Dense(16, 3)],
                       SoftmaxCrossEntropy(), input_shape=(1, 4, 4))
    X, y = np.zeros((24, 1, 4, 4), np.float32), np.arange(24) % 3
    with make_engine(model, {"train": (X, y)}, 8, backend="process", workers=3) as engine:
        engine.gradient(np.arange(24))
    events = [line.split() for line in log.read_text().splitlines()]
    begins = [float(t) for kind, t in events if kind == "begin"]
    ends = [float(t) for kind, t in events if kind == "end"]
    assert len(begins) == len(ends) == 3
    # Started one after another, the second worker would begin after the first ended.
    assert max(begins) < min(ends)


def test_a_worker_imports_neither_scipy_nor_psutil_for_a_small_kernel_model():
    worker_only = ("import sys\n"
                   "from partrain.engine.worker_process import worker_main\n"
                   "import partrain.nn\n"
                   "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'psutil'}))\n")
    out = subprocess.run([sys.executable, "-c", worker_only], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_local_and_distributed_reductions_give_the_same_bits():
    from partrain.presets import build_model
    from partrain.testing import data_for

    X, y = data_for("digits32").train
    grads = []
    for local in (10**9, 0):
        model = build_model("lenet5", input_shape=X.shape[1:], num_classes=10)
        with make_engine(model, {"train": (X, y)}, 8, backend="process", workers=3,
                         max_batch=64) as engine:
            engine.local_reduce_elements = local
            loss, grad = engine.gradient(np.arange(64))
            grads.append((loss, grad.tobytes()))
    assert grads[0] == grads[1]
