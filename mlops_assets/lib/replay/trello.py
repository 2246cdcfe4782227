"""Replay a real Trello board export ("Export as JSON") into boards of a realistic size.

A board holds ``ROUNDS_PER_BOARD`` rounds (42 real cards x 48 = about 2,000 cards). Its board-level
parts (lists, labels, members, memberships, board actions such as ``createList``) are written once
per board; the cards with their actions (``createCard``, ``updateCard`` moves, comments) and
checklists are written once per round. Every 24-hex Trello id is rewritten: its first 8 hex digits
are the creation time in Unix seconds, so they move with the dates (whole days: board-level ids
by the board's shift, card-level ids by the round's), the other 16 are a hash of seed, scope and the
old id. Card ``idShort`` numbers continue across the rounds of a board; short links, the board
name and members (full name, user name, initials) are rewritten too.

The file is streamed: board header, then ``actions``, ``cards``, ``checklists`` one round at a time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mlops_assets.lib.replay.common import (
    AtomicWriter,
    Memo,
    People,
    SourceStats,
    Template,
    compile_text,
    hex_suffix,
    iso_shifter,
    letters,
    round_rng,
    shift_bounds,
    tag_index,
    user_name,
)

ROUNDS_PER_BOARD = 48
DAYS_PER_ROUND = 7  # rounds of one board follow each other a week apart
DATE, HEX, IDSHORT, SHORTLINK, BOARD_NAME, FULLNAME, USERNAME, INITIALS = range(8)
_ROUND_PARTS = ("actions", "cards", "checklists")
_PATTERN = re.compile(
    r'"(?P<hex>[0-9a-f]{24})"'
    r'|(?P<d>\d{4}-\d\d-\d\d)(?=T\d\d:\d\d:\d\d(?:\.\d+)?Z")'
    r'|"idShort": (?P<idshort>\d+)'
    r'|"shortLink": "(?P<sl>[A-Za-z0-9]{8})"'
    r"|trello\.com/[cb]/(?P<sl2>[A-Za-z0-9]{8})(?:/(?P<urlidshort>\d+)-)?"
    r'|"(?P<f>name|fullName|username|initials)": "(?P<fv>[^"\\]*)"'
    r'|trello\.com/(?P<urluser>[A-Za-z0-9_]+)"'
)


class TrelloTemplate:
    """The board compiled: board-level parts once, card-level items with the card each belongs to."""

    def __init__(self, path: Path) -> None:
        doc = json.loads(path.read_bytes().decode("utf-8"))
        if not isinstance(doc, dict) or not isinstance(doc.get("cards"), list):
            raise ValueError(f"{path} is not a Trello board export (an object with 'cards' and 'lists')")
        self.board_name = doc.get("name") or ""
        self.people = People()
        for member in doc.get("members") or []:
            self.people.add(member.get("username"), member.get("fullName"), member.get("initials"))
        self.card_ids = {c["id"] for c in doc["cards"]}
        self.card_shortlinks = {c.get("shortLink") for c in doc["cards"]}
        self.max_idshort = max((c.get("idShort") or 0) for c in doc["cards"]) or len(doc["cards"])
        round_ids = set(self.card_ids)
        for a in doc.get("actions") or []:
            if _card_of(a) is not None:
                round_ids.add(a["id"])
        for cl in doc.get("checklists") or []:
            round_ids.add(cl["id"])
            round_ids.update(item["id"] for item in cl.get("checkItems") or [])
        self.round_ids = round_ids
        self.dates: list[str] = []
        board_actions = [a for a in doc.get("actions") or [] if _card_of(a) is None]
        self.parts: dict[str, list[tuple[str, Template]]] = {
            "actions": [(_card_of(a), self._compile(a)) for a in doc.get("actions") or [] if _card_of(a)],
            "cards": [(c["id"], self._compile(c)) for c in doc["cards"]],
            "checklists": [(cl.get("idCard"), self._compile(cl)) for cl in doc.get("checklists") or []],
        }
        self.card_order = [c["id"] for c in doc["cards"]]
        # Board-level text: every top-level key but the round parts, plus the board's own actions.
        self.header = [(k, self._compile(v)) for k, v in doc.items() if k not in _ROUND_PARTS]
        self.board_actions = [self._compile(a) for a in board_actions]
        self.order = list(doc)
        self.shift_range = shift_bounds(self.dates)
        low, high = self.shift_range
        self.shift_range = (low, max(low, high - ROUNDS_PER_BOARD * DAYS_PER_ROUND))

    def _compile(self, obj: Any) -> Template:
        return compile_text(json.dumps(obj, ensure_ascii=False), _PATTERN, self._classify)

    def _classify(self, m: re.Match) -> list[tuple[int, int, int, Any]]:
        kind = m.lastgroup
        if kind == "hex":
            return [(*m.span("hex"), HEX, m.group("hex"))]
        if kind == "d":
            self.dates.append(m.group("d"))
            return [(*m.span("d"), DATE, m.group("d"))]
        if kind == "idshort":
            return [(*m.span("idshort"), IDSHORT, m.group("idshort"))]
        if kind in ("sl", "sl2", "urlidshort"):
            slots = [(*m.span(g), SHORTLINK, m.group(g)) for g in ("sl", "sl2") if m.group(g)]
            if m.group("urlidshort"):
                slots.append((*m.span("urlidshort"), IDSHORT, m.group("urlidshort")))
            return slots
        if kind == "urluser":
            v = m.group("urluser")
            return [(*m.span("urluser"), USERNAME, v)] if v in self.people else []
        f, v = m.group("f"), m.group("fv")
        if f == "name" and v == self.board_name:
            return [(*m.span("fv"), BOARD_NAME, v)]
        if f != "name" and v in self.people:
            return [(*m.span("fv"), {"fullName": FULLNAME, "username": USERNAME, "initials": INITIALS}[f], v)]
        return []


def _card_of(action: dict) -> str | None:
    card = (action.get("data") or {}).get("card")
    return card.get("id") if isinstance(card, dict) else None


def _maps(t: TrelloTemplate, seed: int, board: int, j: int) -> list[dict]:
    """Slot maps of round ``j`` of board ``board`` (board-level values depend on the board only)."""
    board_rng = round_rng(seed, "trello", board)
    base_days = board_rng.randint(*t.shift_range)
    people_offset = board_rng.randrange(1 << 30)
    board_tag = letters(tag_index(seed, "trello", board))
    days = base_days + j * DAYS_PER_ROUND

    def hex_id(v: str) -> str:
        per_round = v in t.round_ids
        shift = (days if per_round else base_days) * 86_400
        scope = f"b{board}r{j}" if per_round else f"b{board}"
        return f"{max(0, int(v[:8], 16) + shift) & 0xFFFFFFFF:08x}{hex_suffix(seed, scope, v)}"

    def short_link(v: str) -> str:
        scope = f"b{board}r{j}" if v in t.card_shortlinks else f"b{board}"
        digest = hex_suffix(seed, scope, v, 16)
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        n = int(digest, 16)
        return "".join(alphabet[(n >> (6 * i)) % 62] for i in range(8))

    def person(v: str) -> tuple[str, str, int]:
        return t.people.person(v, people_offset)

    return [
        Memo(iso_shifter(days)),
        Memo(hex_id),
        Memo(lambda v: str(int(v) + j * t.max_idshort)),
        Memo(short_link),
        Memo(lambda v: f"{v} {board_tag}"),
        Memo(lambda v: "{} {}".format(*person(v)[:2])),
        Memo(lambda v: user_name(*person(v))),
        Memo(lambda v: person(v)[0][0] + person(v)[1][0]),
    ]


def generate(t: TrelloTemplate, out: Path, n_tasks: int, seed: int) -> SourceStats:
    """Write boards of up to ROUNDS_PER_BOARD rounds into ``out/trello/`` until ``n_tasks`` cards."""
    stats = SourceStats()
    per_round = len(t.card_order)
    board = 0
    while stats.tasks < n_tasks:
        rounds = []  # (round maps, the card ids included in that round)
        for j in range(ROUNDS_PER_BOARD):
            left = n_tasks - stats.tasks - sum(len(c) for _, c in rounds)
            if left <= 0:
                break
            rounds.append((_maps(t, seed, board, j), set(t.card_order[: min(per_round, left)])))
        board_maps = rounds[0][0]
        name = f"board-{seed}-{board:05d}.json"
        with AtomicWriter(out / "trello" / name, stats) as w:
            w.write("{")
            first = True
            for key in t.order:
                w.write("" if first else ", ")
                first = False
                w.write(json.dumps(key) + ": ")
                if key not in _ROUND_PARTS:
                    w.write(dict(t.header)[key].render(board_maps))
                    continue
                w.write("[")
                sep = ""
                if key == "actions":
                    for template in t.board_actions:
                        w.write(sep + template.render(board_maps))
                        sep = ", "
                for maps, cards in rounds:
                    for card, template in t.parts[key]:
                        if card in cards:
                            w.write(sep + template.render(maps))
                            sep = ", "
                w.write("]")
            w.write("}\n")
        stats.tasks += sum(len(c) for _, c in rounds)
        board += 1
    return stats
