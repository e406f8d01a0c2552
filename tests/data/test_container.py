"""Data and hold_out_validation: which samples move depends on the seed alone, and a
split that cannot be made is one clear UsageError in the Python spelling."""

import numpy as np
import pytest

from partrain.data import Data, hold_out_validation
from partrain.errors import UsageError


def arrays(n=20):
    return np.arange(n * 4, dtype=np.float32).reshape(n, 1, 2, 2), np.arange(n) % 3


def test_held_out_samples_are_a_seeded_partition_of_the_training_set():
    data = Data(train=arrays(), num_classes=3, name="toy")
    split = hold_out_validation(data, 0.25, seed=1)
    (Xt, yt), (Xv, yv) = split.train, split.val
    assert len(Xv) == 5 and len(Xt) == 15 and split.name == "toy" and split.num_classes == 3
    rows = sorted(int(x) // 4 for x in np.concatenate([Xt, Xv])[:, 0, 0, 0])
    assert rows == list(range(20))
    again = hold_out_validation(data, 0.25, seed=1)
    assert again.fingerprint() == split.fingerprint()
    assert hold_out_validation(data, 0.25, seed=2).fingerprint() != split.fingerprint()


@pytest.mark.parametrize("val, fraction, problem", [
    (arrays(2), 0.5, "already has a validation split; drop `validation_split`"),
    (None, 1.5, r"`validation_split` must lie in \(0, 1\), got 1.5"),
    (None, 0.01, "`validation_split` 0.01 of 20 training samples leaves an empty split"),
])
def test_a_split_that_cannot_be_made_is_refused(val, fraction, problem):
    with pytest.raises(UsageError, match=problem):
        hold_out_validation(Data(train=arrays(), val=val), fraction, seed=0)


def test_fingerprint_sees_every_split_and_dtype():
    X, y = arrays()
    base = Data(train=(X, y)).fingerprint()
    assert Data(train=(X, y), test=(X, y)).fingerprint() != base
    assert Data(train=(X.astype(np.float64), y)).fingerprint() != base
