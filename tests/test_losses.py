"""Losses return the batch **sum** and its exact gradient, without overflow."""

import numpy as np
import pytest

from gradcheck import numeric_grad, rel_error
from partrain.losses import HalfSumSquares, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy


@pytest.mark.parametrize("loss,shape,classes", [
    (SoftmaxCrossEntropy(), (5, 4), 4),
    (SigmoidBinaryCrossEntropy(), (5, 1), 2),
    (HalfSumSquares(), (5, 3), 3),
])
def test_loss_gradients(loss, shape, classes):
    rng = np.random.default_rng(0)
    scores = rng.standard_normal(shape)
    y = rng.integers(0, classes, size=shape[0])
    _, d = loss(scores, y)
    num = numeric_grad(lambda: loss(scores, y)[0], scores)
    assert rel_error(d, num) < 1e-6


def test_softmax_cross_entropy_values():
    loss, _ = SoftmaxCrossEntropy()(np.zeros((2, 10)), np.array([3, 7]))
    assert loss == pytest.approx(2 * np.log(10))


def test_binary_cross_entropy_is_finite_for_extreme_logits():
    bce = SigmoidBinaryCrossEntropy()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, d = bce(np.array([[800.0], [-800.0]]), np.array([0, 1]))
    assert loss == pytest.approx(1600.0)
    np.testing.assert_allclose(d[:, 0], [1.0, -1.0])


def test_half_sum_squares_value():
    loss, _ = HalfSumSquares()(np.array([[0.5, 0.5, 0.0]]), np.array([0]))
    assert loss == pytest.approx(0.5 * (0.25 + 0.25))


def test_binary_labels_from_logits():
    labels = SigmoidBinaryCrossEntropy().predict_labels(np.array([[-0.1], [0.2]]))
    np.testing.assert_array_equal(labels, [0, 1])
