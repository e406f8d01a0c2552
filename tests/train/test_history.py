"""History: columns by name, a clear KeyError for a misspelled one, a short repr."""

import pytest

from partrain.train.history import History

ROWS = [dict(step=1, epoch=0, loss=2.0, lr=0.1, seconds=0.01),
        dict(step=2, epoch=0, loss=1.5, lr=0.1, seconds=0.01, train_acc=0.5, test_acc=0.4)]
EVALS = [dict(step=2, train_acc=0.5, test_acc=0.4, eval_seconds=0.02)]


def test_columns_by_name_per_step_and_per_evaluation():
    h = History(ROWS, EVALS)
    assert h["loss"] == [2.0, 1.5] and h["test_acc"] == [0.4] and len(h) == 2
    assert h.keys()[:5] == ["step", "epoch", "loss", "lr", "seconds"]


def test_a_misspelled_column_is_a_key_error_naming_the_columns():
    with pytest.raises(KeyError, match="'val_accuracy': the history has step, epoch"):
        History(ROWS, EVALS)["val_accuracy"]


def test_repr_is_one_short_line():
    text = repr(History(ROWS * 500, EVALS * 100, out="runs/x"))
    assert text == ("History(1000 steps, 100 evaluations, last loss 1.5000, train_acc 0.5000, "
                    "test_acc 0.4000, out='runs/x')")


def test_columns_align_every_value_with_its_step_and_write_as_csv(tmp_path):
    h = History(ROWS, EVALS)
    columns = h.columns()
    assert columns["step"] == [1, 2] and columns["test_acc"] == [None, 0.4]
    h.to_csv(tmp_path / "h.csv")
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines[0].startswith("step,epoch,loss,lr,seconds") and lines[1].endswith(",")
    assert len(lines) == 3
