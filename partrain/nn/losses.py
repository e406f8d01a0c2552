"""Losses on a batch of scores.

Each loss returns ``(loss_sum, dscores)``: the loss **summed** over the batch (a
float64 Python float) and its gradient with respect to the scores, same shape
and dtype as the scores. Returning sums, not means, is what lets the engine add
chunk results exactly and divide by the batch size once.

Each loss also names how scores become a predicted label (``predict_labels``).
"""

from __future__ import annotations

import numpy as np

from .activations import sigmoid


class Loss:
    """Base of the losses: ``loss(scores, y) -> (loss_sum, dscores)``, with how scores
    become labels and probabilities."""

    name = ""

    def __call__(self, scores, y):
        raise NotImplementedError

    def predict_labels(self, scores):
        """scores: (N, K) -> int labels (N,)."""
        return scores.argmax(axis=1)

    def num_classes(self, num_outputs):
        """How many label values a model with ``num_outputs`` scores predicts."""
        return num_outputs

    def probabilities(self, scores):
        """scores: (N, K) -> (N, num_classes) class probabilities (or the model's own
        activations, for losses that are not probabilistic)."""
        return scores


class SoftmaxCrossEntropy(Loss):
    """-log softmax(scores)[y]; scores: (N, K) logits, y: (N,) ints in [0, K)."""

    name = "softmax_cross_entropy"

    def __call__(self, scores, y):
        shifted = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        rows = np.arange(len(y))
        loss_sum = float(np.sum(np.log(total[:, 0]) - shifted[rows, y], dtype=np.float64))
        dscores = exp / total
        dscores[rows, y] -= 1
        return loss_sum, dscores

    def probabilities(self, scores):
        exp = np.exp(scores - scores.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)


class SigmoidBinaryCrossEntropy(Loss):
    """Binary cross-entropy of sigmoid(scores) against y in {0, 1}; scores: (N, 1) logits.

    Computed from the logit as max(s, 0) - s*y + log(1 + exp(-|s|)), which never
    takes log(0) or overflows, unlike log(sigmoid(s)).
    """

    name = "sigmoid_binary_cross_entropy"

    def __call__(self, scores, y):
        s = scores[:, 0]
        t = y.astype(scores.dtype)
        per_sample = np.maximum(s, 0) - s * t + np.log1p(np.exp(-np.abs(s)))
        loss_sum = float(np.sum(per_sample, dtype=np.float64))
        return loss_sum, (sigmoid(s) - t)[:, None]

    def predict_labels(self, scores):
        return (scores[:, 0] > 0).astype(np.int64)

    def num_classes(self, num_outputs):
        return 2

    def probabilities(self, scores):
        p = sigmoid(scores[:, 0])
        return np.stack([1 - p, p], axis=1)


class HalfSumSquares(Loss):
    """1/2 * sum_k (scores_k - onehot(y)_k)^2 (seed 003); scores: (N, K) activations."""

    name = "half_sum_squares"

    def __call__(self, scores, y):
        target = np.zeros_like(scores)
        target[np.arange(len(y)), y] = 1
        diff = scores - target
        loss_sum = 0.5 * float(np.sum(diff * diff, dtype=np.float64))
        return loss_sum, diff
