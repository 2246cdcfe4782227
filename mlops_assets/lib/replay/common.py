"""The replay engine: templates compiled once into literal text and slots, rendered per round.

A template is a real file's text cut at every value that must change (a date, a key, an id, a
person): ``literals[0] slot[0] literals[1] slot[1] ... literals[n]``. Rendering a round joins the
literals with each slot's value looked up in that round's maps, so one copy costs a join, not a
JSON parse and dump, and everything the rewrite does not touch (field order, whitespace, escapes,
sizes) stays byte for byte as the tool wrote it.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

# Replayed dates stay before this day (the data must look like a past export).
DATE_CEILING = date(2026, 11, 30)
TAG_SPACE = 26**4  # four letters: enough distinct round tags per source for any size we generate

_FIRST = (
    "Anna", "Ben", "Chloe", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca",
    "Maya", "Noah", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen", "Xavier",
    "Yara", "Zoe", "Amir", "Bea", "Carlos", "Dana", "Emil", "Fatima", "Goran", "Hana", "Ivan", "Julia",
    "Kenji", "Lea", "Marco", "Nadia",
)  # fmt: skip
_LAST = (
    "Keller", "Novak", "Schmidt", "Rossi", "Yilmaz", "Haddad", "Larsen", "Moreau", "Costa", "Weber",
    "Ivanova", "Bianchi", "Kowalski", "Nakamura", "Okafor", "Petrov", "Quintero", "Sato", "Torres",
    "Usman", "Varga", "Wagner", "Xu", "Zimmermann", "Berg", "Dubois", "Fischer", "Garcia", "Horvat",
    "Jensen", "Kaya", "Lindqvist", "Mueller", "Nilsson", "Ortega", "Park", "Reyes", "Silva", "Tanaka",
    "Vogel",
)  # fmt: skip
PEOPLE_POOL = len(_FIRST) * len(_LAST) * 8

# Each source draws its round tags from its own part of the tag space, so no two sources (and no
# two rounds of one source) of a run share a key prefix.
SOURCE_TAG_BASE = {"jira": 0, "jira_csv": 60_000, "csv": 120_000, "github": 180_000, "trello": 240_000,
                   "asana": 300_000}  # fmt: skip


class LikeDataError(ValueError):
    """The --like folder lacks what the replay needs; the message names the expected path."""


def tag_index(seed: int, source: str, n: int) -> int:
    """A seed-dependent bijection of (source, n) onto [0, TAG_SPACE): distinct for every round of a run."""
    x = SOURCE_TAG_BASE[source] + n
    if x >= TAG_SPACE or n >= 60_000:
        raise ValueError(f"round {n} of {source} is past the tag space; generate fewer tasks")
    return (x * 7919 + seed * 104_729 + 12_345) % TAG_SPACE


def letters(index: int) -> str:
    """Four upper-case letters for a tag index (``AAAA``..``ZZZZ``)."""
    out = []
    for _ in range(4):
        index, rem = divmod(index, 26)
        out.append(chr(65 + rem))
    return "".join(reversed(out))


def round_rng(seed: int, source: str, n: int) -> random.Random:
    """A deterministic generator for one round (string seeds hash with SHA-512: stable across runs)."""
    return random.Random(f"replay:{seed}:{source}:{n}")


def shift_bounds(template_dates: list[str], back_days: int = 3 * 365) -> tuple[int, int]:
    """(lowest, highest) whole-day shift that keeps every template date on or before DATE_CEILING."""
    latest = max(
        (d for d in template_dates if d <= DATE_CEILING.isoformat()), default=DATE_CEILING.isoformat()
    )
    high = (DATE_CEILING - date.fromisoformat(latest)).days
    return -back_days, max(high, -back_days)


def hex_suffix(seed: int, scope: str, old: str, n_hex: int = 16) -> str:
    return hashlib.blake2b(f"{seed}:{scope}:{old}".encode(), digest_size=n_hex // 2).hexdigest()


class Memo(dict):
    """A dict that computes a missing value once with ``fn`` (lookups of hits stay at C speed)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], str]) -> None:
        super().__init__()
        self.fn = fn

    def __missing__(self, key: Any) -> str:
        value = self[key] = self.fn(key)
        return value


def iso_shifter(days: int) -> Callable[[str], str]:
    """``YYYY-MM-DD`` -> the date ``days`` later; text that is not a real date stays as it is."""
    delta = timedelta(days=days)

    def shift(value: str) -> str:
        try:
            return (date.fromisoformat(value) + delta).isoformat()
        except ValueError:
            return value

    return shift


@dataclass
class People:
    """Real identities (user names, display names, account ids) -> per-round synthetic people.

    Every identity gets an index; a round rotates the whole list onto the pool by a round-specific
    offset, so within a round distinct real people stay distinct and a person who appears in many
    tasks still does, while no synthetic person equals a real one.
    """

    index: dict[str, int] = field(default_factory=dict)
    display: set[str] = field(default_factory=set)  # the identities that are display names
    _next: int = 0

    def add(self, *aliases: str | None, display: str | None = None) -> None:
        """Register the names of one person (they all map to the same synthetic person)."""
        names = [a for a in (*aliases, display) if a]
        if not names:
            return
        i = next((self.index[a] for a in names if a in self.index), None)
        if i is None:
            i, self._next = self._next, self._next + 1
        for a in names:
            self.index.setdefault(a, i)
        if display:
            self.display.add(display)

    def __contains__(self, name: object) -> bool:
        return name in self.index

    def person(self, name: str, offset: int) -> tuple[str, str, int]:
        """(first, last, pool index) of the synthetic person standing for ``name`` in a round."""
        k = (self.index[name] + offset) % PEOPLE_POOL
        return _FIRST[k % len(_FIRST)], _LAST[(k // len(_FIRST)) % len(_LAST)], k


def user_name(first: str, last: str, k: int) -> str:
    """A login as short as real ones (``jokeller``): replayed files keep their real sizes."""
    variant = k // (len(_FIRST) * len(_LAST))
    return f"{first[:2]}{last}{variant or ''}".lower()


@dataclass
class Template:
    """A file's text as literals and slots; ``render`` fills the slots from per-kind maps."""

    literals: list[str]
    kinds: list[int]
    values: list[Any]
    encoding: str = "utf-8"

    def render(self, maps: list[dict]) -> str:
        lits = self.literals
        out = [lits[0]]
        append = out.append
        for k, v, lit in zip(self.kinds, self.values, lits[1:], strict=True):
            append(maps[k][v])
            append(lit)
        return "".join(out)


Slot = tuple[int, int, int, Any]  # (start, end, kind, value)


def compile_text(
    text: str, pattern: re.Pattern, classify: Callable[[re.Match], list[Slot]], encoding: str = "utf-8"
) -> Template:
    """Cut ``text`` at the slots ``classify`` finds in each match of ``pattern`` (empty list: no slot)."""
    literals: list[str] = []
    kinds: list[int] = []
    values: list[Any] = []
    pos = 0
    for m in pattern.finditer(text):
        for start, end, kind, value in classify(m):
            literals.append(text[pos:start])
            kinds.append(kind)
            values.append(value)
            pos = end
    literals.append(text[pos:])
    return Template(literals, kinds, values, encoding)


def decode(data: bytes) -> tuple[str, str]:
    """File bytes -> (text, encoding): UTF-8, else Latin-1 (kept, so the copy is Latin-1 too)."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


@dataclass
class SourceStats:
    """What the generator wrote for one source."""

    files: int = 0
    tasks: int = 0
    bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"files": self.files, "tasks": self.tasks, "bytes": self.bytes}


class AtomicWriter:
    """A file written under a hidden temporary name (ingestion skips dot-files) and renamed when closed."""

    def __init__(
        self, path: Path, stats: SourceStats, encoding: str = "utf-8", newline: str | None = None
    ) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh: IO[str] = open(self.tmp, "w", encoding=encoding, newline=newline)  # noqa: SIM115
        self.stats = stats

    def write(self, text: str) -> None:
        self.fh.write(text)

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.fh.close()
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        os.replace(self.tmp, self.path)
        self.stats.files += 1
        self.stats.bytes += self.path.stat().st_size


def write_bytes(path: Path, data: bytes, stats: SourceStats) -> None:
    """Write one whole (small) file atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    stats.files += 1
    stats.bytes += len(data)


def batched(n_total: int, per_round: int) -> Iterator[tuple[int, int]]:
    """(round, items in that round) until ``n_total`` items: full rounds, then the remainder."""
    r = 0
    while n_total > 0:
        take = min(per_round, n_total)
        yield r, take
        n_total -= take
        r += 1
