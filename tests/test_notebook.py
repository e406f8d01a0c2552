"""What a fit shows where people run it: a Jupyter kernel (executed headless with
nbclient, as papermill does) and a script whose stderr goes to a file. Both keep a line
per epoch and no carriage-return fragments of a progress bar."""

import subprocess
import sys

import nbformat
from nbclient import NotebookClient

FIT = ("import partrain\n"
       "model = partrain.build_model('digits123')\n"
       "X, y = partrain.load_dataset('digits123', 'train')\n"
       "history = partrain.fit(model, X, y, epochs=3, batch_size=16, workers=1)\n")


def check_output(text):
    assert "\r" not in text and "Warning" not in text, text
    for epoch in (1, 2, 3):
        assert f"partrain: step {6 * epoch}/18 (epoch {epoch}): loss " in text, text
    assert "partrain: 18 steps in " in text


def test_a_notebook_keeps_a_line_per_epoch_and_no_bar_fragments():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(FIT + "history")]
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    streams = "".join(o["text"] for o in outputs if o["output_type"] == "stream")
    check_output(streams)
    result = [o for o in outputs if o["output_type"] == "execute_result"]
    assert result[0]["data"]["text/plain"].startswith("History(18 steps, 3 evaluations")


def test_a_script_writing_to_a_file_keeps_a_line_per_epoch(tmp_path):
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-c", FIT], stderr=f, check=True)
    check_output(log.read_text())
