import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# ../shared/data beside the repository, as on the developers' machines and in CI.
SHARED_DATA = Path(os.environ.get("PARTRAIN_SHARED_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def shared_data():
    """The real datasets; tests that need them are skipped (and say so) where absent."""
    if not (SHARED_DATA / "catvnoncat").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
