"""Live API pulls into the landing zone, with a watermark kept beside the pulled pages.

A pull writes the API's pages as files into ``<landing>/<source>/`` (the same parser then ingests
them like any export) and records the newest ``updated`` it saw in ``<landing>/<source>/.watermark.json``
(hidden files are never ingested). The next pull asks only for what changed since. The watermark is
written after the pages, so a pull that dies half-way repeats some pages next time (the raw layer
deduplicates them by content) and never skips any.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

WATERMARK_FILE = ".watermark.json"


class PullClient(Protocol):
    def pull(self, landing_dir: Path, since: datetime | None = None) -> Any: ...


@dataclass
class PullOutcome:
    """What a pull did, for asset metadata."""

    pages_written: int
    issues: int
    since: datetime | None
    new_watermark: datetime | None


def read_watermark(folder: Path) -> datetime | None:
    path = folder / WATERMARK_FILE
    if not path.exists():
        return None
    try:
        return datetime.fromisoformat(json.loads(path.read_text())["updated_since"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a watermark file ({exc}): delete it to pull everything again") from None


def write_watermark(folder: Path, when: datetime) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (WATERMARK_FILE + ".tmp")
    tmp.write_text(json.dumps({"updated_since": when.isoformat()}))
    os.replace(tmp, folder / WATERMARK_FILE)


def pull_into(client: PullClient, folder: Path) -> PullOutcome:
    """Pull everything updated since the folder's watermark, then advance the watermark."""
    since = read_watermark(folder)
    result = client.pull(folder, since=since)
    if result.new_watermark is not None and (since is None or result.new_watermark > since):
        write_watermark(folder, result.new_watermark)
    return PullOutcome(result.pages_written, result.issues, since, result.new_watermark)
