"""A version users can follow: `mlops-assets --version`, one source of truth, and a CHANGELOG entry for it."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import mlops_assets

ROOT = Path(__file__).resolve().parents[1]


def test_the_command_prints_the_package_version():
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mlops-assets"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"mlops-assets {mlops_assets.__version__}"


def test_installed_metadata_reads_the_same_version():
    # pyproject.toml's version is dynamic (mlops_assets.__version__): an install never disagrees with the code
    assert importlib.metadata.version("mlops_assets") == mlops_assets.__version__


def test_changelog_has_the_current_version_and_puts_data_layout_first():
    text = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## (\d+\.\d+\.\d+)\b.*$", text, flags=re.M)
    base = re.match(r"\d+\.\d+\.\d+", mlops_assets.__version__).group(0)
    assert releases and releases[0] == base, (
        f"CHANGELOG.md's newest section is {releases[:1]}, the package is {base}"
    )
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        headings = re.findall(r"^### (.+)$", section, flags=re.M)
        assert headings and headings[0] == "Data layout and migrations", (section.splitlines()[0], headings)
