"""Candidates of a sweep (partrain/sweeps/plan.py) and how it shares the cores
(partrain/sweeps/runner.py: share_cores, candidate_state)."""

import json

import pytest

from partrain.errors import UsageError
from partrain.sweeps import expand, share_cores
from partrain.sweeps.runner import candidate_state


def test_a_grid_times_seeds_in_order_with_unique_directory_names():
    cands = expand({"lr": [0.01, 0.1], "batch_size": [32, 64]}, seeds=[0, 5])
    assert len(cands) == 8
    assert [c.settings for c in cands[:2]] == [(("lr", 0.01), ("batch_size", 32))] * 2
    assert [c.seed for c in cands[:2]] == [0, 5]
    assert cands[0].name == "00-lr=0.01-batch_size=32-seed0"
    assert len({c.name for c in cands}) == 8
    assert cands[-1].label() == "lr=0.1 batch_size=64"


def test_variants_times_grid_and_the_grid_wins_a_shared_setting():
    cands = expand({"lr": [0.1]}, [{"optimizer": "adam", "lr": 1.0}, {"optimizer": "sgd"}])
    assert [dict(c.settings) for c in cands] == [{"optimizer": "adam", "lr": 0.1},
                                                 {"optimizer": "sgd", "lr": 0.1}]
    assert expand()[0].label() == "(base settings)"


@pytest.mark.parametrize("grid, variants, seeds, message", [
    ({"lr": []}, None, [0], "no values"),
    ({"lr": 0.1}, None, [0], "must be a list"),
    (None, None, [], "at least one seed"),
    (None, None, [1, 1], "seed twice"),
    (None, [{"lr": 0.1}, {"lr": 0.1}], [0], "same run"),
])
def test_a_bad_plan_is_one_clear_error(grid, variants, seeds, message):
    with pytest.raises(UsageError, match=message):
        expand(grid, variants, seeds)


@pytest.mark.parametrize("n, jobs, workers, cores, expected", [
    (8, "auto", "auto", 2, (2, 1)),     # many small runs: one worker each
    (8, "auto", "auto", 16, (8, 2)),    # fewer candidates than cores: workers share the rest
    (1, "auto", "auto", 16, (1, 16)),
    (8, "auto", 4, 16, (4, 4)),
    (8, 2, "auto", 16, (2, 8)),
    (8, 3, 5, 2, (3, 5)),               # what the user asks, even oversubscribed
])
def test_cores_are_shared_between_runs_first(n, jobs, workers, cores, expected):
    assert share_cores(n, jobs, workers, cores=cores) == expected


def test_candidate_state_reads_the_run_directory(tmp_path):
    run = tmp_path / "c"
    assert candidate_state(run, None) == "new"
    run.mkdir()
    (run / "checkpoint.h5").write_bytes(b"")
    assert candidate_state(run, {"code": 130}) == "resume"
    assert candidate_state(run, {"code": 1}) == "failed"   # diverged: kept, not rerun
    (run / "metrics.json").write_text(json.dumps({"stopped_by": None, "completed": False}))
    assert candidate_state(run, {"code": 130}) == "done"   # early stopping ends a run too
