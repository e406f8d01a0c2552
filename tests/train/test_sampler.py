"""Which samples each step uses depends on (seed, step) only."""

import numpy as np
import pytest

from partrain.errors import UsageError
from partrain.train.sampler import Sampler


def test_shuffle_visits_every_sample_once_per_epoch_and_reshuffles():
    s = Sampler(10, 4, seed=3)
    assert s.steps_per_epoch == 3
    epoch0 = np.concatenate([s.batch(i)[1] for i in range(3)])
    epoch1 = np.concatenate([s.batch(i)[1] for i in range(3, 6)])
    assert sorted(epoch0) == list(range(10)) == sorted(epoch1)
    assert list(epoch0) != list(epoch1)


def test_a_fresh_sampler_gives_the_same_batch_for_the_same_step():
    a, b = Sampler(50, 8, seed=1), Sampler(50, 8, seed=1)
    for step in (0, 13, 7, 20):
        assert np.array_equal(a.batch(step)[1], b.batch(step)[1])
    assert not np.array_equal(Sampler(50, 8, seed=2).batch(0)[1], a.batch(0)[1])


def test_ordered_and_replacement_orders():
    assert list(Sampler(10, 4, 0, "ordered").batch(2)[1]) == [8, 9]
    epoch, idx = Sampler(10, 4, 0, "replacement").batch(4)
    assert epoch == 1 and len(idx) == 4 and idx.max() < 10


def test_an_unknown_order_names_the_setting():
    with pytest.raises(UsageError, match="`batch_order`"):
        Sampler(10, 4, 0, "sorted")
