"""Fixtures shared by the test modules; plain helpers live in partrain.testing."""

import os
from pathlib import Path

import pytest

# ../shared/data beside the repository, as on the developers' machines and in CI.
SHARED_DATA = Path(os.environ.get("PARTRAIN_SHARED_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def shared_data():
    """The real datasets; tests that need them are skipped (and say so) where absent."""
    if not (SHARED_DATA / "catvnoncat").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def one_blas_thread():
    """BLAS on one thread while the test runs its model in this process: on tiny matrices
    threaded BLAS only spins, and on a shared machine it is 10x slower. A module asks
    for it with ``pytestmark = pytest.mark.usefixtures("one_blas_thread")``."""
    from partrain.engine.host import one_blas_thread

    with one_blas_thread():
        yield
