"""What a worker does with a task, whatever process it runs in (a worker process, an
MPI rank, or the serial engine's own process). See :mod:`.messages` for the tasks."""

from __future__ import annotations

import time
import traceback
from functools import partial

import numpy as np

from ..data.augment import chunk_rng
from ..errors import LayerError, UsageError
from ..nn.randomness import training_stream
from .host import peak_rss_bytes
from .messages import EvaluateTask, Failure, GradientTask, ReduceTask, Reply
from .partition import sum_chunks


class Worker:
    """Computes tasks on a model bound to shared (or private) arrays.

    arrays: ``params`` (P,), ``slots`` (max_chunks, P), ``grad`` (P,), and
    ``<split>.X`` / ``<split>.y`` for every split; shared memory or private, as the
    backend arranges. The model is bound to ``params``.
    between_chunks: called before each chunk (the serial engine checks stop requests).
    """

    def __init__(self, model, arrays, between_chunks=None):
        # The data is shared by every worker and step (and, serial, is the caller's own
        # array): nothing here may write it, so it is held read-only.
        arrays = {k: (read_only(v) if k.endswith((".X", ".y")) else v)
                  for k, v in arrays.items()}
        self.model, self.a = model, arrays
        self.between_chunks = between_chunks or (lambda: None)
        model.bind(arrays["params"])

    def reply(self, task):
        """Handle ``task``: a :class:`Reply`, or a :class:`Failure` naming the chunk."""
        t0 = time.perf_counter()
        try:
            results = self.handle(task)
        except _ChunkFailed as failure:
            return Failure(task.kind, task.seq, task.what, failure.where, failure.detail,
                           failure.text)
        return Reply(task.kind, task.seq, time.perf_counter() - t0, peak_rss_bytes(), results)

    def handle(self, task):
        a = self.a
        results = {}
        if isinstance(task, GradientTask):
            X, y = a["train.X"], a["train.y"]
            for c, idx in task.chunks:
                self.between_chunks()
                with _naming(f"chunk {c}"), training_stream(task.key, c):
                    transform = None
                    if task.augment is not None:
                        transform = partial(task.augment, rng=chunk_rng(task.key, c))
                    results[c] = compute_chunk(self.model, X, y, idx, a["slots"][c], transform)
        elif isinstance(task, ReduceTask):
            with _naming("the gradient reduction"):
                sum_chunks(a["slots"][: task.n_chunks, task.lo : task.hi], task.batch,
                           out=a["grad"][task.lo : task.hi])
        elif isinstance(task, EvaluateTask):
            X, y = a[f"{task.split}.X"], a[f"{task.split}.y"]
            for c, lo, hi in task.chunks:
                self.between_chunks()
                with _naming(f"evaluation chunk {c}"):
                    results[c] = evaluate_chunk(self.model, X[lo:hi], y[lo:hi], task.want_scores)
        else:
            raise ValueError(f"unknown task {task!r}")
        return results


class _ChunkFailed(Exception):
    def __init__(self, where, detail, text):
        super().__init__(where)
        self.where, self.detail, self.text = where, detail, text


class _naming:
    """Turn any exception raised by the model's code into a one-line description."""

    def __init__(self, where):
        self.where = where

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, _ChunkFailed):
            return False
        if isinstance(exc, LayerError):   # it names the layer and its own line
            detail = str(exc)
        else:
            frames = traceback.extract_tb(tb)
            place = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
            detail = "".join(traceback.format_exception_only(exc)).strip().splitlines()[-1]
            detail += place
        text = "".join(traceback.format_exception(exc))
        raise _ChunkFailed(self.where, detail, text) from None


def compute_chunk(model, X, y, indices, grad_out, transform=None):
    """Loss sum of one chunk, its gradient sum written into ``grad_out``; ``transform``
    (images -> images), if given, is applied to the chunk's images first.

    A contiguous run of indices is sliced (no gather copy); the values, and so the
    bits, are the same as a gathered copy.
    """
    if len(indices) > 1 and indices[-1] - indices[0] == len(indices) - 1 and \
            np.all(np.diff(indices) == 1):
        sl = slice(int(indices[0]), int(indices[-1]) + 1)
        Xc, yc = X[sl], y[sl]
    else:
        Xc, yc = X[indices], y[indices]
    if transform is not None:
        Xc = transform(Xc)
    # Read-only whichever way the chunk was made (a slice of the shared data, a gathered
    # copy, an augmented copy), so a layer that writes into its input fails the same way
    # on every batch instead of changing the training data for every later step.
    Xc = read_only(Xc)
    # Overflow is not an error here: the trainer checks loss and gradient for NaN/inf
    # after every step and stops with one clear line.
    with np.errstate(all="ignore"):
        loss_sum, _ = model.loss_sum_and_grads(Xc, yc, grad_out=grad_out)
    return float(loss_sum)


def evaluate_chunk(model, X, y, want_scores=False):
    """(loss sum, correct count, scores or None) of a forward pass on one chunk."""
    with np.errstate(all="ignore"):   # a diverged model evaluates to nan, not warnings
        scores, _ = model.forward(read_only(X))
        loss_sum, _ = model.loss(scores, y)
        correct = int(np.count_nonzero(model.loss.predict_labels(scores) == y))
    return float(loss_sum), correct, (np.array(scores) if want_scores else None)


def read_only(array):
    """A view of ``array`` that cannot be written through (``array`` itself unchanged)."""
    view = array.view()
    view.flags.writeable = False
    return view


def pickled_model(model):
    """The model as cloudpickle bytes for the other processes; a layer holding what
    cannot be pickled (a lock, an open file, a generator) is one line naming it."""
    import cloudpickle

    try:
        return cloudpickle.dumps(model)
    except Exception as exc:
        raise UsageError(f"{unpicklable_part(model, exc)} cannot be sent to worker "
                         "processes; train it in this process with the serial backend "
                         '(`backend="serial"` or `workers=1`)') from None


def unpicklable_part(model, exc):
    """"layer NAME (Class) holds what pickle cannot copy (...)": the first part of
    ``model`` that fails to pickle with ``exc``'s message."""
    import cloudpickle

    parts = [(f"layer {name} ({type(layer).__name__})", layer)
             for name, layer in zip(getattr(model, "layer_names", ()),
                                    getattr(model, "layers", ()))]
    parts.append((f"the loss ({type(getattr(model, 'loss', None)).__name__})",
                  getattr(model, "loss", None)))
    what = f"the model ({type(model).__name__})"
    for name, part in parts:
        try:
            cloudpickle.dumps(part)
        except Exception as own:
            what, exc = name, own
            break
    return f"{what} holds something pickle cannot copy ({type(exc).__name__}: {exc})"
