import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The read-only data folder: $SKILLVET_SHARED, else ../shared beside the repository."""
    return Path(os.environ.get("SKILLVET_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared data folder not found at {path} (set SKILLVET_SHARED)")
    return path
