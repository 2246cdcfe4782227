"""Any tool's CSV export, read through a YAML mapping: ``<landing>/csv/<name>.csv`` + ``<name>.yaml``.

The mapping sits next to the CSV (``<name>.yaml`` or ``<name>.yml``) and says which CSV column
feeds which normalized column. Example (a Linear export)::

    source_name: linear            # task_id = "csv:linear:<key>"; default: the CSV file's stem
    timezone: Europe/Berlin        # optional: zone of naive timestamps (default UTC)
    delimiter: ";"                 # optional, default ","
    key: {column: ID}              # required
    created_at: {column: Created, format: "%d.%m.%Y %H:%M"}   # required; format optional (ISO default)
    project: {value: WEB}          # a constant; default: source_name
    title: Title                   # shorthand for {column: Title}
    status: {column: State}
    status_category: {column: State, map: {Done: done, "In Progress": in_progress, Backlog: todo}}
    priority: {column: Priority, map: {Urgent: highest}}   # unmapped values pass through unchanged
    labels: {column: Labels, separator: "|"}               # default separator ","
    assignee: {column: Assignee}   # pseudonymized into assignee_id (also: reporter)

Fields (all optional but ``key`` and ``created_at``):

- text: ``project``, ``key``, ``title``, ``type``, ``priority``, ``status``, ``labels``
- status_category: values must be ``todo``/``in_progress``/``done``. With a ``map``, a value
  missing from the map rejects the row (add it to the map); without one, other values go through
  the name heuristics ("Done" -> done, "In Review" -> in_progress, else todo). Unmapped, it is
  derived from ``status`` the same way (or ``done`` when ``resolved_at`` is set and no status).
- people (pseudonymized, never stored raw): ``assignee``, ``reporter``
- timestamps (``format`` = a ``strptime`` pattern; ISO 8601 when absent; naive values are read in
  ``timezone``): ``created_at``, ``updated_at``, ``resolved_at``, ``due_at``, ``deadline_at``
  (``deadline_at`` defaults to ``due_at``)
- numbers: ``story_points``, ``original_estimate_h``, ``time_spent_h`` (decimal comma accepted);
  counts: ``n_comments``, ``n_links``, ``n_subtasks``, ``n_labels`` (default: number of labels)
- ``description``: its length becomes ``description_length``

Each field is ``{column: <CSV header>}`` or ``{value: <constant>}`` (or the column name alone),
with ``map: {<CSV value>: <our value>}`` allowed on text fields (quote keys such as ``"Yes"``,
``"No"``, ``"On"``, ``"1"``: YAML would otherwise read them as booleans or numbers). A broken YAML, an unknown field,
or a column that is not in the CSV raises :class:`SourceFormatError` naming the file and the fix.
YAML aliases (``*name``) are refused, and ``column``, ``value``, ``format``, ``separator``, the
settings and ``map`` entries must be single values. The mapping is part of the CSV's content
hash: editing it makes the next ingestion read the CSV again.
"""

from __future__ import annotations

import codecs
import difflib
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from mlops_assets.lib.redact import excerpt
from mlops_assets.lib.sources import stream
from mlops_assets.lib.sources.base import (
    DateOutOfRange,
    ParsedFile,
    Reject,
    SourceFormatError,
    canonical_json,
    category_from_status_name,
    csv_line_records,
    csv_records,
    decode_bytes,
    pseudonymize,
    unique_names,
    utc,
)

SOURCE = "csv"
TEXT_FIELDS = ("project", "key", "title", "type", "priority", "status", "status_category", "labels")
PERSON_FIELDS = {"assignee": "assignee_id", "reporter": "reporter_id"}
TIME_FIELDS = ("created_at", "updated_at", "resolved_at", "due_at", "deadline_at")
FLOAT_FIELDS = ("story_points", "original_estimate_h", "time_spent_h")
INT_FIELDS = ("n_comments", "n_links", "n_subtasks", "n_labels")
FIELDS = (*TEXT_FIELDS, *PERSON_FIELDS, *TIME_FIELDS, *FLOAT_FIELDS, *INT_FIELDS, "description")
SETTINGS = ("source_name", "timezone", "delimiter")
REQUIRED = ("key", "created_at")
FIELD_OPTIONS = {"column", "value", "format", "map", "separator"}
CATEGORIES = ("todo", "in_progress", "done")
_ALIASES = {"assignee_id": "assignee", "reporter_id": "reporter", "description_length": "description"}

_pseudo = lru_cache(maxsize=65536)(pseudonymize)


class _Bad(Exception):
    """One row is unusable (becomes a Reject)."""


def _suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def mapping_path(csv_path: Path) -> Path:
    """The mapping file for a CSV (``<name>.yaml``, else ``<name>.yml``); SourceFormatError when neither exists."""
    for suffix in (".yaml", ".yml"):
        candidate = csv_path.with_suffix(suffix)
        if candidate.exists():
            return candidate
    name = csv_path.stem
    raise SourceFormatError(
        f"no mapping {name}.yaml next to {name}.csv: write one, see docs "
        "(mapping reference: docs/CSV_MAPPING.md)"
    )


MAX_MAPPING_BYTES = 256 * 1024  # a mapping is a few dozen lines; anything near this is not one
_SCALAR_OPTIONS = ("column", "value", "format", "separator")
_SHOWN = 80  # characters of a value echoed in a message


class _NoAliasLoader(yaml.SafeLoader):
    """safe_load without aliases: ``*name`` is how a 412-byte "billion laughs" expands to gigabytes."""

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                "aliases (*name) are not allowed in a mapping: write the value out",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def _shown(value: Any) -> str:
    """A short, printable, credential-masked excerpt of a value for a message."""
    return excerpt(repr(value), _SHOWN)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def mapping_files(csv_path: Path) -> list[Path]:
    """The mapping candidates of a CSV that exist (``<name>.yaml``, ``<name>.yml``): what it is read through."""
    return [c for c in (csv_path.with_suffix(".yaml"), csv_path.with_suffix(".yml")) if c.is_file()]


def mapping_bytes(csv_path: Path) -> bytes:
    """The bytes of the mapping a CSV is read through (b"" when it has none or it cannot be read).

    Part of the CSV's content hash: the same CSV read through another mapping is another input.
    """
    for candidate in mapping_files(csv_path)[:1]:
        try:
            return candidate.read_bytes()[: MAX_MAPPING_BYTES + 1]
        except OSError:
            return b""
    return b""


def load_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping as a dict, validated for shape (columns are checked against the CSV later)."""
    try:
        size = path.stat().st_size
        if size > MAX_MAPPING_BYTES:
            raise SourceFormatError(
                f"{path.name}: {size:,} bytes is not a column mapping (at most "
                f"{MAX_MAPPING_BYTES:,}); is it the right file?"
            )
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader
    except OSError as exc:
        raise SourceFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SourceFormatError(f"{path.name}: not UTF-8 text; save the mapping as UTF-8") from None
    except (yaml.YAMLError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise SourceFormatError(
            f"{path.name}: not valid YAML ({excerpt(str(problem), _SHOWN)}{where}); fix the syntax there"
        ) from None
    if not isinstance(doc, dict):
        raise SourceFormatError(
            f"{path.name}: expected a YAML mapping like 'key: {{column: ID}}', got {type(doc).__name__}"
        )
    mapping: dict[str, Any] = {}
    for name, spec in doc.items():
        name = _ALIASES.get(str(name), str(name))
        if name in SETTINGS:
            if not _is_scalar(spec):
                raise SourceFormatError(f"{path.name}: {name} must be a single value, got {_shown(spec)}")
            mapping[name] = spec
            continue
        if name not in FIELDS:
            raise SourceFormatError(
                f"{path.name}: unknown field {excerpt(repr(name), _SHOWN)}{_suggest(name[:_SHOWN], FIELDS + SETTINGS)} "
                f"(fields: {', '.join(FIELDS)})"
            )
        if isinstance(spec, str):
            spec = {"column": spec}
        if not isinstance(spec, dict) or ("column" in spec) == ("value" in spec):
            raise SourceFormatError(
                f"{path.name}: {name} must be {{column: <CSV header>}} or {{value: <constant>}}, got {_shown(spec)}"
            )
        unknown = {str(option) for option in spec} - FIELD_OPTIONS
        if unknown:
            option = sorted(unknown)[0]
            raise SourceFormatError(
                f"{path.name}: {name}.{excerpt(option, _SHOWN)} is not an option{_suggest(option[:_SHOWN], sorted(FIELD_OPTIONS))} "
                "(options: column, value, format, map, separator)"
            )
        for option in _SCALAR_OPTIONS:
            if option in spec and not _is_scalar(spec[option]):
                raise SourceFormatError(
                    f"{path.name}: {name}.{option} must be a single value, got {_shown(spec[option])}"
                )
        if "map" in spec and not isinstance(spec["map"], dict):
            raise SourceFormatError(
                f"{path.name}: {name}.map must be a mapping of CSV value to our value, got {_shown(spec['map'])}"
            )
        for key, target in spec.get("map", {}).items():
            if not (_is_scalar(key) and _is_scalar(target)):
                raise SourceFormatError(
                    f"{path.name}: {name}.map entries must be single values, got {_shown(key)}: {_shown(target)}"
                )
        if name == "status_category":
            targets = list(spec.get("map", {}).values()) + ([spec["value"]] if "value" in spec else [])
            for target in targets:
                if target not in CATEGORIES:
                    raise SourceFormatError(
                        f"{path.name}: status_category value {_shown(target)} must be one of todo, in_progress, done"
                    )
        mapping[name] = spec
    for name in REQUIRED:
        if name not in mapping:
            raise SourceFormatError(
                f"{path.name}: {name!r} is not mapped; add e.g. `{name}: {{column: <CSV header>}}`"
            )
    return mapping


def _zone(path: Path, name: Any) -> tzinfo:
    if name in (None, "", "UTC", "utc"):
        return UTC
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise SourceFormatError(
            f"{path.name}: timezone {name!r} is not an IANA zone name (e.g. Europe/Berlin, UTC)"
        ) from None


_FAST_DIRECTIVES = {
    "d": r"(\d{1,2})",
    "m": r"(\d{1,2})",
    "Y": r"(\d{4})",
    "y": r"(\d{2})",
    "H": r"(\d{1,2})",
    "I": r"(\d{1,2})",
    "M": r"(\d{1,2})",
    "S": r"(\d{1,2})",
    "p": r"([AaPp][Mm])",
    "b": r"([A-Za-z]{3})",
}
_MONTHS = {
    name: i for i, name in enumerate(("jan feb mar apr may jun jul aug sep oct nov dec").split(), start=1)
}


def fast_strptime(fmt: str) -> Callable[[str], datetime] | None:
    """A parser equal to ``datetime.strptime(value, fmt)`` for day/month/year/time formats, ~4x faster.

    Handles ``%d %m %b %Y %y %H %I %M %S %p`` and literal text (English month abbreviations, as
    strptime in the C locale); returns None for any other format (the caller falls back to strptime).
    """
    parts: list[str] = []
    order: list[str] = []
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char == "%":
            directive = fmt[i + 1 : i + 2]
            if directive not in _FAST_DIRECTIVES or directive in order:
                return None
            order.append(directive)
            parts.append(_FAST_DIRECTIVES[directive])
            i += 2
        else:
            parts.append(r"\s+" if char.isspace() else re.escape(char))
            i += 1
    have = set(order)
    if not (have & {"Y", "y"} and have & {"m", "b"} and "d" in have) or ("I" in have) != ("p" in have):
        return None
    if "H" in have and "I" in have:
        return None
    pattern = re.compile("".join(parts) + r"\Z")
    pos = {directive: n for n, directive in enumerate(order)}
    i_year, i_short_year = pos.get("Y"), pos.get("y")
    i_month, i_month_name, i_day = pos.get("m"), pos.get("b"), pos["d"]
    i_hour, i_hour12, i_pm, i_min, i_sec = (
        pos.get("H"),
        pos.get("I"),
        pos.get("p"),
        pos.get("M"),
        pos.get("S"),
    )

    def parse(value: str) -> datetime:
        match = pattern.match(value)
        if match is None:
            raise ValueError(f"time data {value!r} does not match format {fmt!r}")
        g = match.groups()
        if i_year is not None:
            year = int(g[i_year])
        else:
            short = int(g[i_short_year])  # type: ignore[index]
            year = short + (1900 if short >= 69 else 2000)  # strptime's POSIX pivot
        if i_month is not None:
            month = int(g[i_month])
        else:
            month = _MONTHS.get(g[i_month_name].lower(), 0)  # type: ignore[index]
            if not month:
                raise ValueError(f"{g[i_month_name]!r} is not an English month abbreviation")  # type: ignore[index]
        if i_hour is not None:
            hour = int(g[i_hour])
        elif i_hour12 is not None:
            hour12 = int(g[i_hour12])
            if not 1 <= hour12 <= 12:
                raise ValueError(f"hour {hour12} is not 1..12")
            hour = hour12 % 12 + (12 if g[i_pm].lower() == "pm" else 0)  # type: ignore[index]
        else:
            hour = 0
        minute = int(g[i_min]) if i_min is not None else 0
        second = int(g[i_sec]) if i_sec is not None else 0
        return datetime(year, month, int(g[i_day]), hour, minute, second)

    return parse


def _time_parser(column: str, fmt: str | None, zone: tzinfo) -> Callable[[str], datetime]:
    if fmt:
        strptime = fast_strptime(fmt) or (lambda value: datetime.strptime(value, fmt))
    else:
        strptime = datetime.fromisoformat

    def parse_time(value: str) -> datetime:
        try:
            dt = strptime(value)
        except ValueError as exc:
            expected = f"in format {fmt!r}" if fmt else "ISO 8601 (or set a format: in the mapping)"
            detail = (
                f" ({exc})" if "range" in str(exc) or "must be in" in str(exc) or "month" in str(exc) else ""
            )
            raise _Bad(f"{column!r} = {value!r} is not a timestamp {expected}{detail}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=zone)
        try:
            return utc(dt)  # type: ignore[return-value]
        except DateOutOfRange as exc:
            raise _Bad(f"{column!r} = {value!r} {exc}") from None

    return parse_time


def _float(column: str) -> Callable[[str], float]:
    def parse_float(value: str) -> float:
        try:
            return float(value)
        except ValueError:
            try:
                return float(value.replace(",", "."))
            except ValueError:
                raise _Bad(f"{column!r} = {value!r} is not a number") from None

    return parse_float


def _int(column: str) -> Callable[[str], int]:
    def parse_int(value: str) -> int:
        try:
            return int(value)
        except ValueError:
            pass
        try:
            number = float(value)
        except ValueError:
            number = 0.5
        if number.is_integer():
            return int(number)
        raise _Bad(f"{column!r} = {value!r} is not a whole number")

    return parse_int


def _compile(
    mapping: dict[str, Any], header: list[str], yaml_name: str, csv_name: str
) -> list[tuple[str, Callable[[list[str]], Any]]]:
    """One (field, extractor) pair per mapped field; an extractor takes a CSV row and returns the value."""
    index = {name: i for i, name in reversed(list(enumerate(header)))}
    zone = mapping["_zone"]
    extractors: list[tuple[str, Callable[[list[str]], Any]]] = []
    for name in FIELDS:
        spec = mapping.get(name)
        if spec is None:
            continue
        value_map = spec.get("map")
        if "column" in spec:
            column = str(spec["column"]).strip()
            if column not in index:
                raise SourceFormatError(
                    f"{yaml_name}: {name}.column {_shown(column)} is not a column of {csv_name}"
                    f"{_suggest(column[:_SHOWN], header)} "
                    f"(columns: {', '.join(header[:12])}{', ...' if len(header) > 12 else ''})"
                )
            i = index[column]
        else:
            constant = spec["value"]
            column, i = f"{name}.value", None

        convert: Callable[[str], Any] | None = None
        if name in TIME_FIELDS:
            convert = _time_parser(column, spec.get("format"), zone)
        elif name in FLOAT_FIELDS:
            convert = _float(column)
        elif name in INT_FIELDS:
            convert = _int(column)
        elif name == "status_category":
            convert = _category(column, value_map, yaml_name)
            value_map = None
        elif name == "labels":
            sep = str(spec.get("separator", ","))
            convert = lambda value, sep=sep: ",".join(p.strip() for p in value.split(sep) if p.strip())  # noqa: E731
        elif name in PERSON_FIELDS:
            convert = lambda value: _pseudo(SOURCE, value)  # noqa: E731
        elif name == "description":
            convert = len

        if i is None:
            text = "" if constant is None else str(constant)
            try:
                fixed = _apply(text, value_map, convert)
            except _Bad as bad:
                raise SourceFormatError(f"{yaml_name}: {name}.value: {bad}") from None
            extractors.append((name, lambda row, fixed=fixed: fixed))
        else:
            extractors.append(
                (name, _column_getter(i, value_map, convert, keep_spaces=name == "description"))
            )
    return extractors


def _apply(value: str, value_map: dict | None, convert: Callable[[str], Any] | None) -> Any:
    if value_map is not None:
        value = str(value_map.get(value, value))
    if value == "":
        return None
    return convert(value) if convert else value


def _column_getter(
    i: int, value_map: dict | None, convert: Callable[[str], Any] | None, keep_spaces: bool
) -> Callable[[list[str]], Any]:
    """A specialized extractor (the common cases skip the map lookup and the conversion call)."""
    if value_map is None and convert is None:
        return lambda row: row[i].strip() or None
    if value_map is None:
        if keep_spaces:
            return lambda row: convert(row[i]) if row[i] else None
        return lambda row: convert(value) if (value := row[i].strip()) else None
    lookup = {str(k): str(v) for k, v in value_map.items()}

    def get(row: list[str]) -> Any:
        value = row[i] if keep_spaces else row[i].strip()
        return _apply(value, lookup, convert)

    return get


def _category(column: str, value_map: dict | None, yaml_name: str) -> Callable[[str], str]:
    if value_map is None:
        return lambda value: value if value in CATEGORIES else category_from_status_name(value)
    lookup = {str(k): str(v) for k, v in value_map.items()}

    def by_map(value: str) -> str:
        try:
            return lookup[value]
        except KeyError:
            raise _Bad(
                f"{column!r} = {value!r} is not in status_category.map of {yaml_name} (add it, e.g. {value!r}: todo)"
            ) from None

    return by_map


def _setup(path: Path) -> tuple[Path, dict[str, Any], str, str]:
    """(mapping file, mapping, source name, delimiter) of a mapped CSV; SourceFormatError when unusable."""
    yaml_path = mapping_path(path)
    mapping = load_mapping(yaml_path)
    mapping["_zone"] = _zone(yaml_path, mapping.get("timezone"))
    source_name = str(mapping.get("source_name") or path.stem)
    delimiter = str(mapping.get("delimiter") or ",")
    if len(delimiter) != 1:
        raise SourceFormatError(f"{yaml_path.name}: delimiter {delimiter!r} must be one character")
    return yaml_path, mapping, source_name, delimiter


def parse(path: Path) -> ParsedFile:
    """Parse one mapped CSV (``<name>.csv`` with ``<name>.yaml`` beside it) into tasks."""
    yaml_path, mapping, source_name, delimiter = _setup(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    text, encoding = decode_bytes(data)
    del data
    return next(_parts(path, yaml_path, mapping, source_name, csv_records(text, delimiter), encoding, None))


# ingestion streams a big .csv through parse_stream (lib/sources/stream.py); the other sources stream JSON
STREAM_SUFFIXES = (".csv",)
_BLOCK_BYTES = 8 * 1024 * 1024


def parse_stream(path: Path) -> Iterator[ParsedFile] | None:
    """The tasks of a big mapped CSV in parts of at most ``stream.PART_RECORDS`` records and rejects.

    The same records, rejects and counts as :func:`parse`: the file is read twice, once to find its
    encoding as :func:`decode_bytes` would (a single non-UTF-8 byte anywhere makes all of it Latin-1),
    then line by line, holding one record's lines (and one part) at a time. Nothing is read before the
    first part is asked for.
    """

    def parts() -> Iterator[ParsedFile]:
        yaml_path, mapping, source_name, delimiter = _setup(path)
        try:
            encoding, codec = _stream_encoding(path)
            with open(path, encoding=codec, newline="") as f:
                yield from _parts(
                    path,
                    yaml_path,
                    mapping,
                    source_name,
                    csv_line_records(f, delimiter),
                    encoding,
                    stream.PART_RECORDS,
                )
        except OSError as exc:
            raise SourceFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise SourceFormatError(
                f"{path.name} changed while it was being read: re-run when the copy is complete"
            ) from None

    return parts()


def _stream_encoding(path: Path) -> tuple[str, str]:
    """(encoding as decode_bytes names it, the codec that reads it) of a whole file, read a block at a time."""
    with open(path, "rb") as f:
        head = f.read(2)
    candidates = [("utf-16", "utf-16")] if head in (b"\xff\xfe", b"\xfe\xff") else []
    for encoding, codec in [*candidates, ("utf-8", "utf-8-sig")]:
        decoder = codecs.getincrementaldecoder(codec)()
        try:
            with open(path, "rb") as f:
                while block := f.read(_BLOCK_BYTES):
                    decoder.decode(block)
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return encoding, codec
    return "latin-1", "latin-1"


def _parts(
    path: Path,
    yaml_path: Path,
    mapping: dict[str, Any],
    source_name: str,
    records: Iterator[tuple[int, list[str] | None, str]],
    encoding: str,
    part_records: int | None,
) -> Iterator[ParsedFile]:
    """The tasks and rejects of a mapped CSV's records, in parts of ``part_records`` (None: one part)."""
    _, header, problem = next(records, (1, None, ""))
    if header is None:
        if problem:
            raise SourceFormatError(f"{path.name}: the header is not readable ({problem})")
        raise SourceFormatError(
            f"{path.name} is empty; expected a header row with the columns {yaml_path.name} names"
        )
    header = [h.strip() for h in header]
    extractors = _compile(mapping, header, yaml_path.name, path.name)
    shape = f"csv-mapped:{source_name}"
    parsed = ParsedFile(encoding=encoding, shape=shape)
    width = len(header)
    payload_keys = unique_names(header)
    has = {name for name, _ in extractors}
    key_get = dict(extractors).get("key")
    for line, row, problem in records:
        _read_row(parsed, line, row, problem, extractors, key_get, width, payload_keys, has, source_name)
        if part_records is not None and len(parsed.records["tasks"]) + len(parsed.rejects) >= part_records:
            yield parsed
            parsed = ParsedFile(encoding=encoding, shape=shape)
    yield parsed


def _read_row(
    parsed: ParsedFile,
    line: int,
    row: list[str] | None,
    problem: str,
    extractors: list[tuple[str, Callable[[list[str]], Any]]],
    key_get: Callable[[list[str]], Any] | None,
    width: int,
    payload_keys: list[str],
    has: set[str],
    source_name: str,
) -> None:
    """One CSV record into ``parsed``: a task, a reject, or nothing (a blank line)."""
    locator = f"line {line}"
    if row is None:
        parsed.rejects.append(Reject(locator, problem))
        return
    if not any(row):
        return
    if len(row) != width:
        if len(row) > width:
            parsed.rejects.append(
                Reject(
                    locator,
                    f"{locator}: {len(row)} fields but the header has {width} (a delimiter inside an unquoted value?)",
                    canonical_json(row),
                )
            )
            return
        row = row + [""] * (width - len(row))
    try:
        row_values = {name: get(row) for name, get in extractors}
    except _Bad as bad:
        try:
            key = key_get(row) if key_get else None
        except _Bad:
            key = None
        parsed.rejects.append(
            Reject(
                locator,
                f"{locator} ({key or '?'}): {bad}",
                canonical_json(dict(zip(payload_keys, row, strict=True))),
            )
        )
        return
    key = row_values.get("key")
    if not key:
        parsed.rejects.append(
            Reject(
                locator,
                f"{locator}: the key column is empty",
                canonical_json(dict(zip(payload_keys, row, strict=True))),
            )
        )
        return
    if row_values.get("created_at") is None:
        parsed.rejects.append(
            Reject(
                locator,
                f"{locator} ({key}): created_at is empty",
                canonical_json(dict(zip(payload_keys, row, strict=True))),
            )
        )
        return
    parsed.add(
        "tasks",
        _task(
            row_values,
            has,
            source_name,
            locator,
            canonical_json(dict(zip(payload_keys, row, strict=True))),
        ),
    )


def _task(
    values: dict[str, Any], has: set[str], source_name: str, locator: str, payload: str
) -> dict[str, Any]:
    key = values["key"]
    status = values.get("status")
    category = values.get("status_category")
    if category is None:
        if status:
            category = category_from_status_name(status)
        else:
            category = "done" if values.get("resolved_at") else "todo"
    labels = values.get("labels") or ""
    n_labels = values.get("n_labels")
    if n_labels is None and "labels" in has:
        n_labels = len(labels.split(",")) if labels else 0
    description = values.get("description")
    return {
        "task_id": f"csv:{source_name}:{key}",
        "source": SOURCE,
        "project": values.get("project") or source_name,
        "key": key,
        "title": values.get("title"),
        "type": values.get("type"),
        "priority": values.get("priority"),
        "status": status,
        "status_category": category,
        "assignee_id": values.get("assignee"),
        "reporter_id": values.get("reporter"),
        "created_at": values["created_at"],
        "updated_at": values.get("updated_at"),
        "resolved_at": values.get("resolved_at"),
        "due_at": values.get("due_at"),
        "deadline_at": values.get("deadline_at") or values.get("due_at"),
        "story_points": values.get("story_points"),
        "original_estimate_h": values.get("original_estimate_h"),
        "time_spent_h": values.get("time_spent_h"),
        "n_comments": values.get("n_comments"),
        "n_links": values.get("n_links"),
        "n_subtasks": values.get("n_subtasks"),
        "n_labels": n_labels,
        "description_length": description
        if description is not None
        else (0 if "description" in has else None),
        "labels": labels,
        "locator": locator,
        "payload": payload,
    }
