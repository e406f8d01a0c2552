"""The scaling tool: its cost model recovers what it is fitted to, and a run writes
every output it promises. (Timings themselves are never asserted: benchmarks are not
tests.)"""

import json

import numpy as np
import pytest

from partrain.bench.scaling import fit_serial_fraction, parallel_share, project, run_scaling


def test_parallel_share_counts_whole_chunks():
    # 27 chunks: 2 workers -> the busier computes 14; 27 or more workers -> 1 each.
    np.testing.assert_allclose(parallel_share([1, 2, 27, 64], 27), [1, 14 / 27, 1 / 27, 1 / 27])


def test_fit_recovers_a_known_serial_fraction():
    t1, s, chunks = 2.0, 0.1, 40
    workers = [1, 2, 3, 4]
    seconds = project(t1, s, workers, chunks)
    fit_t1, fit_s = fit_serial_fraction(workers, seconds, chunks)
    assert fit_t1 == pytest.approx(t1) and fit_s == pytest.approx(s)


def test_projection_stops_improving_past_the_chunk_count():
    t1, s = fit_serial_fraction([1, 2], [1.0, 0.55], chunks=27)
    at_27, at_64 = project(t1, s, [27, 64], 27)
    assert at_27 == at_64 < t1


@pytest.mark.slow
def test_scale_run_writes_csv_markdown_plot_and_json(tmp_path):
    run_scaling("lenet5", "digits32", workers=(1, 2), batch_sizes=("64",), rounds=1, steps=1,
                baselines=False, name="t", out=tmp_path, log=lambda *a: None)
    for ext in ("csv", "md", "png", "json"):
        assert (tmp_path / f"t.{ext}").stat().st_size > 0
    result = json.loads((tmp_path / "t.json").read_text())
    assert [r["config"] for r in result["rows"]] == ["1 workers", "2 workers"]
    assert all(r["step_seconds_median"] > 0 for r in result["rows"])
    assert all(r["peak_rss_mib_per_worker"] > 1 for r in result["rows"])
    assert [r["chunk_size"] for r in result["rows"]] == [8, 8]
    text = (tmp_path / "t.md").read_text()
    assert "serial fraction" in text and "PROJECTION, not measured" in text
    from partrain.testing import shm_entries, worker_processes

    assert worker_processes() == [] and shm_entries() == []


@pytest.mark.slow
def test_scale_writes_outside_the_working_directory_and_never_over_a_file(tmp_path,
                                                                            monkeypatch, capsys):
    from partrain.cli import main

    work, cache = tmp_path / "clone", tmp_path / "cache"
    work.mkdir()
    (work / "results" / "scaling").mkdir(parents=True)
    figure = work / "results" / "scaling" / "lenet5-float32.png"
    figure.write_bytes(b"committed")
    monkeypatch.chdir(work)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    quick = ["scale", "--model", "lenet5", "--dataset", "digits32", "--workers", "1",
             "--batch-sizes", "16", "--rounds", "1", "--steps", "1", "--no-baselines"]
    assert main(quick) == 0
    assert figure.read_bytes() == b"committed"
    assert sorted(p.name for p in work.rglob("*")) == ["lenet5-float32.png", "results", "scaling"]
    written = list((cache / "partrain" / "scale").glob("lenet5-float32-*/lenet5-float32.png"))
    assert len(written) == 1
    capsys.readouterr()
    assert main([*quick, "--out", "results/scaling"]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert figure.read_bytes() == b"committed"
    assert main([*quick, "--out", "results/scaling", "--overwrite"]) == 0
    assert figure.read_bytes() != b"committed"
