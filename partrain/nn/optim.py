"""Update rules on flat vectors: ``step(w, g)`` updates the parameter vector ``w`` in
place from the gradient ``g`` (both 1-D, same dtype). State (velocity, moments, step
count) lives in ``self.state`` so a checkpoint can save and restore it exactly.

The rules and their defaults follow cs231n's ``optim.py``.
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError


class Optimizer:
    """Base of the update rules. ``weight_decay`` is the L2 strength on weights (the
    trainer adds ``wd * W`` to the gradient of the parameters the model marks)."""

    name = ""

    def __init__(self, lr, weight_decay=0.0):
        if not (isinstance(lr, (int, float, np.floating)) and np.isfinite(lr) and lr > 0):
            raise UsageError(f"learning rate must be a positive number, got {lr!r}")
        if not (np.isfinite(weight_decay) and weight_decay >= 0):
            raise UsageError(f"weight decay must be >= 0, got {weight_decay!r}")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.state: dict[str, np.ndarray] = {}

    def hyperparameters(self):
        """The settings that change the result, for the run record and fingerprint."""
        return {k: v for k, v in vars(self).items() if k != "state"} | {"name": self.name}

    def state_shapes(self, num_params):
        """{key: (shape, dtype kind)} of every state array this rule may keep."""
        return {}

    def _slot(self, key, like):
        if key not in self.state:
            self.state[key] = np.zeros_like(like)
        return self.state[key]

    def step(self, w, g):
        raise NotImplementedError

    def reset_state(self):
        """Zero every state array in place (velocity, moments, Adam's step count): the
        next step is the one a fresh optimizer would take. The trainer calls it at each
        epoch's first step when ``momentum_reset="epoch"`` (seed 004)."""
        for value in self.state.values():
            value[...] = 0

    def state_dict(self):
        """Everything needed to continue bit for bit: arrays and the current lr."""
        return {"lr": self.lr, **{k: v.copy() for k, v in self.state.items()}}

    def load_state_dict(self, state):
        self.lr = float(state["lr"])
        self.state = {k: np.array(v) for k, v in state.items() if k != "lr"}


class SGD(Optimizer):
    """w -= lr * g."""

    name = "sgd"

    def step(self, w, g):
        w -= self.lr * g


class Momentum(Optimizer):
    """Classic momentum: v = mu v - lr g; w += v.

    Seed 004 writes m = alpha dW + beta m; W += m with dW the *negative* gradient:
    the same rule with lr = alpha, mu = beta.
    """

    name = "momentum"

    def __init__(self, lr, momentum=0.9, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        if not (np.isfinite(momentum) and 0 <= momentum < 1):
            raise UsageError(f"momentum must lie in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)

    def state_shapes(self, num_params):
        return {"velocity": ((num_params,), "f")}

    def step(self, w, g):
        v = self._slot("velocity", w)
        v *= self.momentum
        v -= self.lr * g
        w += v


class Nesterov(Momentum):
    """Nesterov momentum in the look-ahead-free form: w += -mu v_old + (1 + mu) v_new."""

    name = "nesterov"

    def step(self, w, g):
        v = self._slot("velocity", w)
        v_old = v.copy()
        v *= self.momentum
        v -= self.lr * g
        w += (1 + self.momentum) * v - self.momentum * v_old


class RMSProp(Optimizer):
    """cache = rho cache + (1 - rho) g^2; w -= lr g / (sqrt(cache) + eps)."""

    name = "rmsprop"

    def __init__(self, lr, decay_rate=0.99, eps=1e-8, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.decay_rate, self.eps = decay_rate, eps

    def state_shapes(self, num_params):
        return {"cache": ((num_params,), "f")}

    def step(self, w, g):
        cache = self._slot("cache", w)
        cache *= self.decay_rate
        cache += (1 - self.decay_rate) * g * g
        w -= self.lr * g / (np.sqrt(cache) + self.eps)


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba 2015)."""

    name = "adam"

    def __init__(self, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def state_shapes(self, num_params):
        return {"m": ((num_params,), "f"), "v": ((num_params,), "f"), "t": ((1,), "i")}

    def step(self, w, g):
        m, v = self._slot("m", w), self._slot("v", w)
        t = self.state.setdefault("t", np.zeros(1, dtype=np.int64))
        t += 1
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        m_hat = m / (1 - self.beta1 ** int(t[0]))
        v_hat = v / (1 - self.beta2 ** int(t[0]))
        w -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


OPTIMIZERS = {cls.name: cls for cls in (SGD, Momentum, Nesterov, RMSProp, Adam)}


def make_optimizer(name, lr, momentum=0.9, weight_decay=0.0):
    """An optimizer by name (CLI and presets); the Python API also takes objects."""
    if name not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if name in ("momentum", "nesterov"):
        return OPTIMIZERS[name](lr, momentum=momentum, weight_decay=weight_decay)
    return OPTIMIZERS[name](lr, weight_decay=weight_decay)
