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
