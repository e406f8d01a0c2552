"""The PyTorch baseline computes partrain's function: same forward on the same weights."""

import numpy as np
import pytest

from partrain.presets import build_model

torch = pytest.importorskip("torch")
from partrain.bench.torch_reference import ScaledTanh, to_torch  # noqa: E402  (needs torch)

pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.mark.parametrize("name", ["lenet5", "lenet5-cat"])
def test_torch_model_forward_equals_partrains(name):
    model = build_model(name, seed=0)                  # float32
    X = np.random.default_rng(0).random((4,) + model.input_shape).astype(np.float32)
    net, _ = to_torch(model)
    with torch.no_grad():
        scores = net(torch.from_numpy(X)).numpy()
    expect = model.predict(X)
    assert scores.dtype == expect.dtype == np.float32
    np.testing.assert_allclose(scores, expect, rtol=1e-4, atol=1e-5)


def test_lenet5_tanh_is_the_scaled_one():
    net, _ = to_torch(build_model("lenet5"))
    squash = [m for m in net if isinstance(m, ScaledTanh)]
    assert len(squash) == 4 and (squash[0].amplitude, squash[0].slope) == (1.7159, 2 / 3)
