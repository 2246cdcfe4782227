"""stream.mapped_items (msgspec over a memory map) against stream.items (ijson), the reader it replaces for
big Trello boards: the same items, and what ijson could not read either read as the whole parse reads it
or refused the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_assets.lib.sources import stream
from mlops_assets.lib.sources.base import SourceFormatError

ITEMS = [
    {"id": "a1", "n": 3, "x": 1.5e3, "y": -0.0, "z": 0.1, "neg": -7, "big": 1.7976931348623157e308},
    {"text": "caf\u00e9 \U0001f600 \u4e2d", "nested": {"list": [1, [2, [3, {"k": None}]]], "t": True}},
    "a string",
    12,
    None,
    [],
    {},
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "board.json"
    path.write_text(text, encoding="utf-8")
    return path


def test_mapped_items_are_the_items_ijson_streams(tmp_path):
    doc = {"name": "b", "cards": ITEMS, "actions": list(reversed(ITEMS)), "lists": []}
    path = _write(tmp_path, json.dumps(doc, ensure_ascii=False))
    for key in ("cards", "actions"):
        assert list(stream.mapped_items(path, key)) == list(stream.items(path, f"{key}.item")) == doc[key]
    assert list(stream.mapped_items(path, "absent")) == []


def test_an_integer_past_64_bits_is_kept_where_ijson_refused_the_file(tmp_path):
    path = _write(tmp_path, '{"cards": [{"id": "c1", "points": 123456789012345678901234567890}]}')
    assert list(stream.mapped_items(path, "cards")) == [
        {"id": "c1", "points": 123456789012345678901234567890}
    ]
    with pytest.raises(SourceFormatError):
        list(stream.items(path, "cards.item"))


@pytest.mark.parametrize(
    "text",
    [
        '{"cards": [{"id": "c1"}, {"id": "c2", "p": 1e400}]}',
        '{"cards": [{"id": "c1"}, {"id": "c2", "text": "x\\ud800y"}]}',
        '{"cards": [{"id": "c1"}, {"id": "c2"',
        "",
    ],
    ids=["a number past a double", "a lone surrogate escape", "cut short", "empty"],
)
def test_what_neither_reader_can_read_fails_the_file_with_a_reason(tmp_path, text):
    path = _write(tmp_path, text)
    with pytest.raises(SourceFormatError, match="board.json"):
        list(stream.mapped_items(path, "cards"))


def test_a_reader_left_part_way_closes_its_map(tmp_path):
    path = _write(tmp_path, json.dumps({"cards": ITEMS}))
    reader = stream.mapped_items(path, "cards")
    assert next(reader) == ITEMS[0]
    reader.close()  # the map closes with no view left into it (BufferError otherwise)
