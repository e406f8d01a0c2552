"""The partitioning rules and the one reduction: what makes every backend give the same
bits.

A step's batch (an index array into the training set) is cut into fixed-size chunks of
``chunk_size`` samples, independent of how many workers there are. Whoever computes a
chunk writes its loss **sum** and gradient **sum** into that chunk's slot; the slots are
then added in chunk order and divided by the batch size once (:func:`sum_chunks`). The
same chunks, summed in the same order, give the same bits whichever process computed
them, so serial and any number of workers agree exactly. The sum is elementwise, so it
may also be split by parameter range across workers (:func:`param_ranges`) without
changing a bit.
"""

from __future__ import annotations

# Forward-only chunks of an evaluation: no gradient slot to fill, so larger than a
# training chunk; fixed, so an evaluation's loss has the same bits on any worker count.
EVAL_CHUNK = 64


def chunk_bounds(n, chunk_size):
    """[(lo, hi), ...] positions cutting a batch of n samples into chunk_size pieces."""
    return [(lo, min(lo + chunk_size, n)) for lo in range(0, n, chunk_size)]


def assign_chunks(chunks, n_workers):
    """Split a chunk list [(lo, hi), ...] into one contiguous run per worker, each
    holding about 1/W of the samples (a chunk goes to the worker whose share its middle
    falls in). Returns [[(chunk index, lo, hi), ...] per worker]; a run may be empty."""
    n = chunks[-1][1] if chunks else 0
    runs = [[] for _ in range(n_workers)]
    for c, (lo, hi) in enumerate(chunks):
        w = min(int((lo + hi) / 2 * n_workers / n), n_workers - 1)
        runs[w].append((c, lo, hi))
    return runs


def param_ranges(num_params, n_workers, align=16):
    """Split 0..P into one contiguous range per worker, cut on multiples of ``align``
    elements (64 bytes of float32) so no two workers write the same cache line."""
    cuts = [min(num_params, round(num_params * i / n_workers / align) * align)
            for i in range(n_workers)] + [num_params]
    return list(zip(cuts[:-1], cuts[1:]))


def sum_chunks(slots, n, out):
    """out = (slots[0] + slots[1] + ... in chunk order) / n: the one reduction.

    slots: (n_chunks, P) gradient sums, or any column range of them; out: (P,).
    Every backend computes each element this way, so every backend gets the same bits.
    """
    import numpy as np

    np.copyto(out, slots[0])
    for slot in slots[1:]:
        out += slot
    out /= n
    return out


def mean_loss(losses, n):
    """Chunk loss sums (float64) added in chunk order, divided by n."""
    loss_sum = 0.0
    for value in losses:
        loss_sum += float(value)
    return loss_sum / n
