"""Update rules, checked against their formulas on flat vectors."""

import numpy as np
import pytest

from partrain.errors import UsageError
from partrain.nn.optim import OPTIMIZERS, make_optimizer


def run(name, steps=3, **kw):
    opt = make_optimizer(name, 0.1, **kw)
    w = np.array([1.0, -2.0])
    grads = [np.array([0.5, 1.0]), np.array([-1.0, 0.25]), np.array([0.2, 0.2])]
    for g in grads[:steps]:
        opt.step(w, g)
    return w, grads, opt


def test_sgd():
    w, grads, _ = run("sgd")
    np.testing.assert_allclose(w, np.array([1.0, -2.0]) - 0.1 * sum(grads))


def test_momentum_is_seed_004s_rule():
    # Seed 004: m = alpha * dW + beta * m; W += m, with dW the negative gradient.
    w, grads, _ = run("momentum", momentum=0.95)
    W, m = np.array([1.0, -2.0]), np.zeros(2)
    for g in grads:
        m = 0.1 * (-g) + 0.95 * m
        W = W + m
    np.testing.assert_allclose(w, W)


def test_nesterov():
    w, grads, _ = run("nesterov", momentum=0.9)
    W, v = np.array([1.0, -2.0]), np.zeros(2)
    for g in grads:
        v_prev = v
        v = 0.9 * v - 0.1 * g
        W = W - 0.9 * v_prev + 1.9 * v
    np.testing.assert_allclose(w, W)


def test_rmsprop():
    w, grads, _ = run("rmsprop")
    W, c = np.array([1.0, -2.0]), np.zeros(2)
    for g in grads:
        c = 0.99 * c + 0.01 * g * g
        W = W - 0.1 * g / (np.sqrt(c) + 1e-8)
    np.testing.assert_allclose(w, W)


def test_adam():
    w, grads, _ = run("adam")
    W, m, v = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    for t, g in enumerate(grads, 1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        W = W - 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(w, W)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_round_trip_continues_bit_for_bit(name):
    w1, grads, opt = run(name, steps=2)
    twin = make_optimizer(name, 0.5)
    twin.load_state_dict(opt.state_dict())
    w2 = w1.copy()
    opt.step(w1, grads[2])
    twin.step(w2, grads[2])
    np.testing.assert_array_equal(w1, w2)


def test_float32_stays_float32():
    opt = make_optimizer("adam", 0.1)
    w = np.ones(3, np.float32)
    opt.step(w, np.ones(3, np.float32))
    assert w.dtype == np.float32


def test_bad_optimizer_settings():
    with pytest.raises(UsageError, match="unknown optimizer"):
        make_optimizer("lbfgs", 0.1)
    for lr in (0.0, -0.1, float("nan"), float("inf"), "0.1"):
        with pytest.raises(UsageError, match="learning rate must be a positive number"):
            make_optimizer("sgd", lr)
    for wd in (-0.1, float("nan"), float("inf")):
        with pytest.raises(UsageError, match="weight decay must be >= 0"):
            make_optimizer("adam", 0.1, weight_decay=wd)
    for mu in (1.0, -0.1, float("nan")):
        with pytest.raises(UsageError, match="momentum must lie in"):
            make_optimizer("nesterov", 0.1, momentum=mu)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_weight_decay_is_a_recorded_hyperparameter(name):
    opt = make_optimizer(name, 0.1, momentum=0.8, weight_decay=0.25)
    assert opt.weight_decay == 0.25
    hp = opt.hyperparameters()
    assert hp["name"] == name and hp["lr"] == 0.1 and hp["weight_decay"] == 0.25
    assert "state" not in hp
    if name in ("momentum", "nesterov"):
        assert hp["momentum"] == 0.8
    # The record rebuilds the same optimizer (how --resume does it).
    kwargs = {k: v for k, v in hp.items() if k != "name"}
    assert OPTIMIZERS[name](**kwargs).hyperparameters() == hp


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_shapes_describe_the_state_a_step_creates(name):
    opt = make_optimizer(name, 0.1)
    w = np.ones(5)
    opt.step(w, np.full(5, 0.5))
    shapes = opt.state_shapes(5)
    assert set(opt.state) == set(shapes)
    for key, (shape, kind) in shapes.items():
        assert opt.state[key].shape == shape and opt.state[key].dtype.kind == kind


def test_weight_decay_does_not_change_the_update_rule_itself():
    # The model adds wd * W to the gradient; the optimizer only records the strength.
    w0, _, _ = run("sgd")
    w1, _, _ = run("sgd", weight_decay=0.5)
    np.testing.assert_array_equal(w0, w1)
