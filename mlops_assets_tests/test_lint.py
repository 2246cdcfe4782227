"""The code passes the project's linter and formatter (`make lint`), so a review never argues about layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["mlops_assets", "mlops_assets_tests", "scripts"]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        pytest.skip(
            "ruff is not installed in this environment (it is a dev dependency: pip install -e '.[dev]')"
        )
    return subprocess.run([str(ruff), *args, *PATHS], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_ruff_finds_nothing():
    done = _ruff("check", "--no-cache")
    assert done.returncode == 0, (
        f"`ruff check` found problems (`make lint`; most fix with `ruff check --fix`):\n{done.stdout}"
    )


def test_the_code_is_formatted():
    done = _ruff("format", "--check", "--no-cache")
    assert done.returncode == 0, f"files to format (run `ruff format {' '.join(PATHS)}`):\n{done.stdout}"
