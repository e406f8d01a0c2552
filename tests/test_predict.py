"""Prediction from files: `partrain predict RUN INPUTS`, partrain.predict on paths, and
`partrain eval RUN --data` on new labelled data."""

import csv
import io

import numpy as np
import pytest
from PIL import Image

import partrain
from partrain.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained on an image folder of two classes (dark and light 6x6 squares)."""
    root = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    for label, (name, level) in enumerate((("dark", 40), ("light", 210))):
        (root / "train" / name).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(level + rng.integers(-30, 30, (6, 6)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / "train" / name / f"{i}.png")
    run = root / "run"
    assert main(["train", "--model", "digits123", "--data", str(root / "train"), "--steps",
                 "60", "--lr", "2", "--workers", "1", "--no-progress", "--quiet", "--out",
                 str(run)]) == 0
    new = root / "new"
    new.mkdir()
    Image.fromarray(np.full((6, 6), 30, np.uint8)).save(new / "a.png")
    Image.fromarray(np.full((6, 6), 220, np.uint8)).save(new / "b.png")
    np.savez(root / "more.npz", X=np.stack([np.full((6, 6), 220, np.uint8)] * 2))
    return root, run


def rows_of(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_predict_writes_labels_class_names_and_probabilities(trained, capsys):
    root, run = trained
    capsys.readouterr()
    assert main(["predict", str(run), str(root / "new"), str(root / "more.npz")]) == 0
    rows = rows_of(capsys.readouterr().out)
    assert [r["input"] for r in rows] == [str(root / "new" / "a.png"),
                                          str(root / "new" / "b.png"),
                                          f"{root / 'more.npz'}[0]", f"{root / 'more.npz'}[1]"]
    assert [r["class"] for r in rows] == ["dark", "light", "light", "light"]
    for r in rows:   # digits123 scores each class with its own sigmoid
        p = [float(r["p_dark"]), float(r["p_light"])]
        assert all(0 <= v <= 1 for v in p) and int(np.argmax(p)) == int(r["label"])


def test_predict_to_a_file_and_from_python_on_paths(trained, tmp_path):
    root, run = trained
    out = tmp_path / "labels.csv"
    assert main(["predict", str(run), str(root / "new" / "b.png"), "--out", str(out)]) == 0
    assert [r["label"] for r in rows_of(out.read_text())] == ["1"]
    model, _ = partrain.load_run(run)
    assert list(partrain.predict(model, [root / "new" / "a.png", root / "new" / "b.png"],
                                 workers=1)) == [0, 1]


def test_predict_refuses_images_of_another_size_in_one_line(trained, tmp_path, capsys):
    root, run = trained
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "big.png")
    assert main(["predict", str(run), str(tmp_path / "big.png")]) == 2
    assert "the inputs are 1x9x9 images; the model takes 1x6x6" in capsys.readouterr().err


def test_eval_takes_the_run_as_an_argument_and_new_labelled_data(trained, capsys):
    root, run = trained
    assert main(["eval", str(run), "--data", str(root / "train"), "--split", "train"]) == 0
    assert "train (24 images): loss" in capsys.readouterr().out
