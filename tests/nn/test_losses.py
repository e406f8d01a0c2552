"""Losses return the batch **sum** and its exact gradient, without overflow."""

import numpy as np
import pytest

from partrain.nn.losses import HalfSumSquares, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from partrain.testing import numeric_grad, rel_error


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


def test_num_classes_follows_the_loss():
    assert SoftmaxCrossEntropy().num_classes(7) == 7
    assert HalfSumSquares().num_classes(3) == 3
    assert SigmoidBinaryCrossEntropy().num_classes(1) == 2   # one logit, two labels


def test_probabilities_are_distributions_for_probabilistic_losses():
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((6, 4)) * 300   # large logits must not overflow
    with np.errstate(over="raise", invalid="raise"):
        p = SoftmaxCrossEntropy().probabilities(scores)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_array_equal(p.argmax(axis=1), scores.argmax(axis=1))
    logits = np.array([[-2.0], [0.0], [3.0]])
    pb = SigmoidBinaryCrossEntropy().probabilities(logits)
    assert pb.shape == (3, 2)
    np.testing.assert_allclose(pb[:, 1], 1 / (1 + np.exp(-logits[:, 0])))
    np.testing.assert_allclose(pb.sum(axis=1), 1.0)
    np.testing.assert_array_equal(pb.argmax(axis=1),
                                  SigmoidBinaryCrossEntropy().predict_labels(logits))
    act = rng.random((2, 3))
    np.testing.assert_array_equal(HalfSumSquares().probabilities(act), act)


@pytest.mark.parametrize("loss,shape,classes", [
    (SoftmaxCrossEntropy(), (6, 4), 4),
    (SigmoidBinaryCrossEntropy(), (6, 1), 2),
    (HalfSumSquares(), (6, 3), 3),
])
def test_loss_is_a_sum_so_chunks_add_up(loss, shape, classes):
    rng = np.random.default_rng(2)
    scores = rng.standard_normal(shape)
    y = rng.integers(0, classes, size=shape[0])
    whole, d = loss(scores, y)
    a, da = loss(scores[:2], y[:2])
    b, db = loss(scores[2:], y[2:])
    assert isinstance(whole, float) and whole == pytest.approx(a + b, rel=1e-14)
    np.testing.assert_array_equal(np.concatenate([da, db]), d)
    assert d.dtype == scores.dtype and d.shape == scores.shape
