"""Malformed requests for the scoring service, and a runner that counts its answers by status.

``requests(base, n)`` derives at least ``n`` requests from one good record (``base``, a task the
champion can score): every field swapped for values of the wrong type, sizes, nesting, encodings,
NaN and huge numbers, dates at the calendar's limits, unknown keys, oversized batches and wrong
content types. Deterministic for a seed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

FIELDS = ("task_id", "project", "created_at", "source", "type", "priority", "assignee_id", "due_at", "deadline_at",
          "story_points", "original_estimate_h", "title", "description_length", "n_labels", "labels")  # fmt: skip
DATES = ("created_at", "due_at", "deadline_at")

SWAPS: tuple[object, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1.5,
    -0.0,
    10**30,
    -(10**30),
    2**63,
    1e308,
    -1e308,
    1e20,
    "",
    " ",
    "x" * 10_000,
    [],
    [1],
    {},
    {"a": 1},
    "\u0000",
    "\ud800"[:0] + "\u202e",
    "NaN",
    "Infinity",
    "1e400",
    "\U0001f4a9" * 100,
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:00:00-05:00",
    "0001-01-01T00:00:00+05:00",
    "0000-00-00",
    "2024-02-30",
    "1970-01-01T00:00:00Z",
    "2024-03-01T10:00:00",
    "2024-03-01T25:61:61Z",
    "yesterday",
    "1e9",
    "-5",
)
RAW_NUMBERS = (
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e400",
    b"-1e400",
    b"1" + b"0" * 5000,
    b"0x10",
    b"01",
    b".5",
)


@dataclass(frozen=True)
class FuzzRequest:
    """One request: what it tests, where it goes, its bytes and content type."""

    label: str
    path: str
    body: bytes
    content_type: str | None = "application/json"
    method: str = "POST"


def _json(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def requests(base: dict, n: int = 500, seed: int = 12) -> list[FuzzRequest]:
    """At least ``n`` malformed requests built around the good record ``base``."""
    out = list(_field_swaps(base)) + list(_raw_numbers(base)) + list(_shapes(base)) + list(_bodies(base))
    rng = random.Random(seed)
    while len(out) < n:  # random multi-field mutations until the count is reached
        record = dict(base)
        for name in rng.sample(FIELDS, k=rng.randint(2, 5)):
            record[name] = rng.choice(SWAPS)
        if rng.random() < 0.3:
            record[f"unknown_{rng.randint(0, 99)}"] = rng.choice(SWAPS)
        out.append(FuzzRequest(f"mutation {len(out)}", "/predict", _json(record)))
    return out


def _field_swaps(base: dict) -> Iterator[FuzzRequest]:
    for name in FIELDS:
        for value in SWAPS:
            yield FuzzRequest(f"{name}={str(value)[:30]!r}", "/predict", _json({**base, name: value}))
        yield FuzzRequest(f"without {name}", "/predict", _json({k: v for k, v in base.items() if k != name}))


def _raw_numbers(base: dict) -> Iterator[FuzzRequest]:
    for name in ("story_points", "original_estimate_h", "description_length", "n_labels"):
        for raw in RAW_NUMBERS:
            body = _json({**base, name: "__N__"}).replace(b'"__N__"', raw)
            yield FuzzRequest(f"{name}={raw[:20].decode()}", "/predict", body)


def _shapes(base: dict) -> Iterator[FuzzRequest]:
    yield FuzzRequest("batch of 1,001", "/predict/batch", _json({"tasks": [base] * 1001}))
    yield FuzzRequest("batch of 5,000 tiny", "/predict/batch", _json({"tasks": [{}] * 5000}))
    yield FuzzRequest("batch is an object", "/predict/batch", _json({"tasks": base}))
    yield FuzzRequest("batch is a list", "/predict/batch", _json([base, base]))
    yield FuzzRequest("batch tasks null", "/predict/batch", _json({"tasks": None}))
    yield FuzzRequest("batch of numbers", "/predict/batch", _json({"tasks": [1, 2, 3]}))
    yield FuzzRequest("batch duplicate ids", "/predict/batch", _json({"tasks": [base, base]}))
    yield FuzzRequest(
        "batch with one bad",
        "/predict/batch",
        _json({"tasks": [base, {**base, "task_id": "b", "created_at": "9999-12-31T23:59:59Z"}]}),
    )
    yield FuzzRequest("empty batch", "/predict/batch", _json({"tasks": []}))
    for depth in (50, 999, 10_000, 100_000):
        yield FuzzRequest(f"array nested {depth}", "/predict", b"[" * depth + b"]" * depth)
        yield FuzzRequest(f"object nested {depth}", "/predict", b'{"a":' * depth + b"1" + b"}" * depth)
        yield FuzzRequest(
            f"field nested {depth}",
            "/predict",
            _json({**base, "title": "__D__"}).replace(b'"__D__"', b"[" * depth + b"]" * depth),
        )
    yield FuzzRequest("1,000 unknown keys", "/predict", _json({**base, **{f"k{i}": i for i in range(1000)}}))
    yield FuzzRequest(
        "50,000 unknown keys", "/predict", _json({**base, **{f"k{i}": i for i in range(50_000)}})
    )
    yield FuzzRequest("unknown key 100 KB long", "/predict", _json({**base, "k" * 100_000: 1}))
    yield FuzzRequest("title 900 KB", "/predict", _json({**base, "title": "t" * 900_000}))
    yield FuzzRequest("body 1.2 MB", "/predict", _json({**base, "title": "t" * 1_200_000}))
    yield FuzzRequest("labels 10,000", "/predict", _json({**base, "labels": ",".join(["l"] * 10_000)}))
    for value in (None, 1, "task", [], [base], True):
        yield FuzzRequest(f"body is {str(value)[:20]}", "/predict", _json(value))
    yield FuzzRequest(
        "duplicate key conflicting", "/predict", _json(base)[:-1] + b', "created_at": "9999-12-31T23:59:59Z"}'
    )


def _bodies(base: dict) -> Iterator[FuzzRequest]:
    good = _json(base)
    yield FuzzRequest("empty body", "/predict", b"")
    yield FuzzRequest("truncated", "/predict", good[: len(good) // 2])
    yield FuzzRequest("not JSON", "/predict", b"task_id=1&project=x")
    yield FuzzRequest("binary", "/predict", bytes(range(256)) * 4)
    yield FuzzRequest("invalid UTF-8", "/predict", good.replace(b'"title"', b'"ti\xfftle"'))
    yield FuzzRequest(
        "invalid UTF-8 in value", "/predict", _json({**base, "title": "__X__"}).replace(b"__X__", b"\xc3\x28")
    )
    yield FuzzRequest(
        "lone surrogate escape", "/predict", _json({**base, "title": "__X__"}).replace(b"__X__", b"\\ud800")
    )
    yield FuzzRequest("UTF-16 body", "/predict", json.dumps(base).encode("utf-16"))
    yield FuzzRequest("UTF-16 BE body", "/predict", json.dumps(base).encode("utf-16-be"))
    yield FuzzRequest("UTF-32 body", "/predict", json.dumps(base).encode("utf-32"))
    yield FuzzRequest("BOM body", "/predict", b"\xef\xbb\xbf" + good)
    yield FuzzRequest(
        "Latin-1 body",
        "/predict",
        json.dumps({**base, "title": "caf\u00e9"}, ensure_ascii=False).encode("latin-1"),
    )
    yield FuzzRequest("NUL bytes", "/predict", good + b"\x00\x00")
    yield FuzzRequest("trailing garbage", "/predict", good + b"}}]]")
    yield FuzzRequest("two documents", "/predict", good + good)
    for ctype in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
        "",
        "*/*",
        None,
    ):
        yield FuzzRequest(f"content type {ctype!r}", "/predict", good, ctype)
    yield FuzzRequest("GET /predict", "/predict", b"", None, "GET")
    yield FuzzRequest("PUT /predict", "/predict", good, "application/json", "PUT")
    yield FuzzRequest("DELETE /predict/batch", "/predict/batch", b"", None, "DELETE")
    yield FuzzRequest("POST /health", "/health", good)
    yield FuzzRequest("unknown path", "/predict/../../etc/passwd", good)
    yield FuzzRequest(
        "query flood", "/predict?" + "&".join(f"unknown_categories=x{i}" for i in range(500)), good
    )
    yield FuzzRequest("policy unknown", "/predict?unknown_categories=%00%ff", good)


@dataclass
class FuzzResult:
    """Answers by status class, and the requests that got a 5xx or no answer at all."""

    sent: int
    by_status: dict[int, int]
    server_errors: list[tuple[str, int, str]]  # (label, status, body excerpt)
    transport_errors: list[tuple[str, str]]
    accepted: list[str]  # labels answered 2xx (a malformed-looking value the service takes, e.g. null)


def send(url: str, batch: list[FuzzRequest], workers: int = 4, timeout_s: float = 60.0) -> FuzzResult:
    """Send every request (``workers`` at a time) and count the answers."""
    by_status: dict[int, int] = {}
    server_errors: list[tuple[str, int, str]] = []
    transport_errors: list[tuple[str, str]] = []
    accepted: list[str] = []
    with httpx.Client(base_url=url, timeout=timeout_s) as http:

        def one(request: FuzzRequest) -> None:
            headers = {"content-type": request.content_type} if request.content_type is not None else {}
            try:
                answer = http.request(request.method, request.path, content=request.body, headers=headers)
            except httpx.HTTPError as exc:
                transport_errors.append((request.label, f"{type(exc).__name__}: {exc}"[:200]))
                return
            by_status[answer.status_code] = by_status.get(answer.status_code, 0) + 1
            if answer.status_code < 300:
                accepted.append(request.label)
            if answer.status_code >= 500:
                server_errors.append((request.label, answer.status_code, answer.text[:300]))

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, batch))
    return FuzzResult(
        len(batch), dict(sorted(by_status.items())), server_errors, transport_errors, sorted(accepted)
    )
