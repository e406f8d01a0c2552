"""Data augmentation (partrain/augment.py).

Specification: ``flip`` mirrors left-right, ``shift=K`` moves an image by whole pixels
and repeats its edge into the uncovered border; which transform each sample gets is a
function of (seed, step, chunk), so an augmented run has the same bits on 1, 2 or 3
workers and after a resume; bad specs are one-line usage errors; evaluation sees the
images as stored.
"""

import numpy as np
import pytest

import partrain
from partrain.data.augment import Augmentation, chunk_rng, parse
from partrain.errors import PartrainError, UsageError
from partrain.nn import Conv2D, Dense, Flatten, MaxPool2D


class FixedDraws:
    """A stand-in random stream that returns chosen flips and moves."""

    def __init__(self, flips, moves):
        self.flips, self.moves = np.asarray(flips, float), np.asarray(moves)

    def random(self, n):
        return self.flips[:n]

    def integers(self, lo, hi, size):
        assert self.moves.min() >= lo and self.moves.max() < hi
        return self.moves[: size[0]]


def images(n=2, c=2, h=5, w=6):
    return np.arange(n * c * h * w, dtype=np.float32).reshape(n, c, h, w)


def test_flip_mirrors_left_right_where_drawn():
    X = images()
    out = Augmentation(flip=True)(X, FixedDraws([0.1, 0.9], []))
    assert np.array_equal(out[0], X[0, :, :, ::-1])   # 0.1 < 0.5: flipped
    assert np.array_equal(out[1], X[1])


def test_shift_moves_the_image_and_repeats_its_edge():
    X = images(n=1)
    out = Augmentation(shift=2)(X, FixedDraws([], [[1, -2]]))   # down 1, left 2
    assert np.array_equal(out[0, :, 1:, :-2], X[0, :, :-1, 2:])
    assert np.array_equal(out[0, :, 0, :-2], X[0, :, 0, 2:])    # top row repeated
    assert np.array_equal(out[0, :, 1:, -1], X[0, :, :-1, -1])  # right column repeated
    assert out.dtype == X.dtype and out.shape == X.shape


def test_a_zero_move_and_no_flip_keep_the_image():
    X = images(n=3)
    out = Augmentation(flip=True, shift=1)(X, FixedDraws([0.7] * 3, [[0, 0]] * 3))
    assert np.array_equal(out, X)


def test_chunk_streams_differ_by_chunk_and_step_and_repeat_exactly():
    draw = lambda key, chunk: chunk_rng(key, chunk).integers(0, 2**31, 4).tolist()  # noqa: E731
    assert draw((0, 5), 1) == draw((0, 5), 1)
    assert len({str(draw(k, c)) for k, c in [((0, 5), 1), ((0, 5), 2), ((0, 6), 1), ((1, 5), 1)]}) == 4


@pytest.mark.parametrize("spec, canonical", [("flip", "flip"), ("shift=2,flip", "flip,shift=2"),
                                             (" flip , shift=1 ", "flip,shift=1")])
def test_specs_parse_to_one_spelling(spec, canonical):
    assert str(parse(spec)) == canonical


@pytest.mark.parametrize("spec", ["none", "", None])
def test_no_augmentation(spec):
    assert parse(spec) is None


@pytest.mark.parametrize("spec", ["rotate", "flip,shift", "shift=-1", "shift=0", "shift=1.5",
                                  "flip=1"])
def test_bad_specs_are_usage_errors(spec):
    with pytest.raises(UsageError, match="augmentation"):
        parse(spec)


def test_a_shift_as_large_as_the_image_is_refused_before_training():
    X, y = toy_data()
    with pytest.raises(UsageError, match="not smaller than the 8x8"):
        partrain.fit(small_net(), X, y, steps=1, augment="shift=8", workers=1, progress=False)


def small_net():
    return partrain.Sequential([Conv2D(1, 3, 3), MaxPool2D(2), Flatten(), Dense(27, 4)],
                               partrain.SoftmaxCrossEntropy(), input_shape=(1, 8, 8), seed=3)


def toy_data(n=90, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 8, 8)), rng.integers(0, 4, n)


def train(workers, augment="flip,shift=2", **kw):
    X, y = toy_data()
    model = small_net()
    history = partrain.fit(model, X, y, steps=6, batch_size=30, chunk_size=4, workers=workers,
                           optimizer="adam", lr=0.01, augment=augment, progress=False, **kw)
    return model.flat.copy(), history


def test_augmented_runs_are_byte_identical_on_any_worker_count():
    flats = {w: train(w)[0] for w in (1, 2, 3)}
    assert flats[1].tobytes() == flats[2].tobytes() == flats[3].tobytes()
    assert flats[1].tobytes() != train(1, augment=None)[0].tobytes()   # it did transform


def test_an_augmented_run_resumes_to_the_same_bits(tmp_path):
    whole, _ = train(2)
    X, y = toy_data()
    model = small_net()
    args = dict(batch_size=30, chunk_size=4, workers=2, optimizer="adam", lr=0.01,
                augment="flip,shift=2", progress=False, out=tmp_path / "run")
    partrain.fit(model, X, y, steps=3, checkpoint_every=3, **args)
    resumed = small_net()
    history = partrain.fit(resumed, X, y, steps=6, resume=True, **args)
    assert resumed.flat.tobytes() == whole.tobytes()
    assert len(history) == 6


def test_resume_refuses_a_different_augmentation(tmp_path):
    X, y = toy_data()
    args = dict(batch_size=30, workers=1, progress=False, out=tmp_path / "run")
    partrain.fit(small_net(), X, y, steps=2, checkpoint_every=2, augment="flip", **args)
    with pytest.raises(PartrainError, match="settings"):
        partrain.fit(small_net(), X, y, steps=4, resume=True, augment="shift=1", **args)
