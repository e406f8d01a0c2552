"""Data augmentation: random image transforms applied to each training chunk.

A few hundred training images (catvnoncat has 209) are memorised within a hundred
steps; showing each one mirrored or moved by a pixel or two at random makes a network
learn what does not change under those transforms instead. Evaluation always sees the
images as stored.

Which transform a sample gets is drawn from a random stream of ``(seed, step, chunk)``
(:func:`chunk_rng`), never of the worker that computes the chunk, so an augmented run
has the same bits on any number of workers and resumes exactly.

Spelled as a comma-separated spec, on the command line (``--augment flip,shift=2``)
and in Python (``partrain.fit(..., augment="flip,shift=2")``):

* ``flip``: mirror left-right with probability 1/2 (not for digits: a mirrored 2 is
  not a 2);
* ``shift=K``: move by a random whole number of pixels in [-K, K], independently in
  each direction; the uncovered border repeats the image's edge pixels (background
  stays background, whatever value the data uses for it).
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError

# Mixed into every augmentation stream, so it is never the stream of a batch
# (trainer.Sampler seeds from [seed, epoch] or [seed, epoch, step in epoch]).
_STREAM_TAG = 0xA06


class Augmentation:
    """flip: mirror left-right with probability 1/2; shift: the largest move in pixels
    (0: none). ``str()`` gives the spec it was parsed from, in a canonical order."""

    def __init__(self, flip=False, shift=0):
        if isinstance(shift, bool) or not isinstance(shift, (int, np.integer)) or shift < 0:
            raise UsageError(f"augment shift must be a non-negative integer, got {shift!r}")
        self.flip, self.shift = bool(flip), int(shift)

    def __bool__(self):
        return self.flip or self.shift > 0

    def __str__(self):
        parts = (["flip"] if self.flip else []) + ([f"shift={self.shift}"] if self.shift else [])
        return ",".join(parts)

    def __repr__(self):
        return f"Augmentation({str(self)!r})"

    def check(self, input_shape):
        """Refuse a shift that would move a (C, H, W) image entirely out of view."""
        _, h, w = input_shape
        if self.shift >= min(h, w):
            raise UsageError(f"augment shift={self.shift} is not smaller than the "
                             f"{h}x{w} images")

    def __call__(self, X, rng):
        """X: (N, C, H, W) images -> a transformed copy, same shape and dtype.

        The draws come in a fixed order (flips for all N, then shifts for all N) so a
        chunk's transforms depend on its stream only.
        """
        n, _, h, w = X.shape
        flips = rng.random(n) < 0.5 if self.flip else np.zeros(n, bool)
        k = self.shift
        moves = rng.integers(-k, k + 1, size=(n, 2)) if k else np.zeros((n, 2), np.int64)
        out = np.empty_like(X)
        padded = np.pad(X, ((0, 0), (0, 0), (k, k), (k, k)), mode="edge") if k else X
        for i in range(n):
            dy, dx = moves[i]
            # Moving the image by (dy, dx) is reading the padded one from (k - dy, k - dx).
            window = padded[i, :, k - dy : k - dy + h, k - dx : k - dx + w]
            out[i] = window[:, :, ::-1] if flips[i] else window
        return out


def parse(spec):
    """A spec such as "flip,shift=2" (or None / "" / "none") -> Augmentation or None."""
    if spec is None or isinstance(spec, Augmentation):
        return spec or None
    if not isinstance(spec, str):
        raise UsageError(f"augment must be a spec such as 'flip,shift=2', got {spec!r}")
    if spec.strip() in ("", "none"):
        return None
    flip, shift = False, 0
    for part in (p.strip() for p in spec.split(",")):
        name, _, value = part.partition("=")
        if name == "flip" and not value:
            flip = True
        elif name == "shift" and value.isdigit() and int(value) > 0:
            shift = int(value)
        else:
            raise UsageError(f"unknown augmentation {part!r} in {spec!r}; use flip and/or "
                             "shift=K (K a positive number of pixels), comma-separated")
    return Augmentation(flip=flip, shift=shift)


def chunk_rng(key, chunk):
    """The random stream of one chunk: key (seed, step) and the chunk's index."""
    return np.random.default_rng([*map(int, key), int(chunk), _STREAM_TAG])
