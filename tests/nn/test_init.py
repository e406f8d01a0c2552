"""Initializers draw their distribution and pickle."""

import numpy as np
import pytest

from partrain.nn import normal_init, uniform_init, zeros_init


def test_initializers_draw_their_distribution_and_pickle():
    import pickle

    rng = np.random.default_rng(0)
    u = pickle.loads(pickle.dumps(uniform_init(0.12)))(rng, (4000,))
    assert np.abs(u).max() <= 0.12 and u.std() == pytest.approx(0.12 / np.sqrt(3), rel=0.05)
    n = pickle.loads(pickle.dumps(normal_init(0.01)))(rng, (4000,))
    assert n.std() == pytest.approx(0.01, rel=0.05)
    assert not zeros_init(rng, (3, 2)).any()
