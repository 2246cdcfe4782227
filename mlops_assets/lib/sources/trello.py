"""Trello: a board's "Export as JSON" (``<landing>/trello/*.json``) to tasks, status events and comments.

Shape ``trello-board-export``: an object with ``cards`` and ``lists`` (plus ``actions``, ``labels``,
``members``, ``checklists``). One task per card:

- ``task_id`` ``trello:<card id>``, ``project`` the board name (else its shortLink), ``key`` the
  card's ``idShort`` (else its shortLink), ``type`` ``"card"``, ``status`` the list name.
- ``status_category`` from the list name (:func:`category_from_status_name`: done/complete/shipped
  -> done; doing/progress/review/testing -> in_progress; else todo); a card whose due date is
  marked complete counts as done. Archived (``closed``) cards and cards on archived lists keep
  their list's category: archiving is not evidence of completion (an archived card on a done list
  is done).
- ``created_at`` from the card's ``createCard`` (or copy/convert/email) action, else from the card
  id (its first 8 hex digits are the creation time in unix seconds): exports carry only the most
  recent actions; capped at ``dateLastActivity`` (Trello stamps the action a few ms after the
  card's own activity date). ``updated_at`` = ``dateLastActivity``; ``due_at`` and ``deadline_at`` = ``due``.
- ``resolved_at`` (done cards only): the last move into a done list, else ``dateLastActivity``.
- ``assignee_id``: first of ``idMembers``; ``reporter_id``: the creating action's member
  (both pseudonymized from the Trello member id).
- labels: names (unnamed labels by colour); ``priority`` from a priority-like label name.
- ``n_subtasks``: checklist items; ``n_comments``: ``badges.comments`` (else comment actions);
  ``n_links``: attachments that point at Trello cards.
- events: one ``status`` row per ``updateCard`` action with ``listBefore``/``listAfter``; comments:
  one row per ``commentCard`` action. Actions on cards not in the export are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import msgspec

from mlops_assets.lib.redact import excerpt
from mlops_assets.lib.sources import stream
from mlops_assets.lib.sources.base import (
    DateOutOfRange,
    ParsedFile,
    Reject,
    SourceFormatError,
    canonical_json,
    category_from_status_name,
    load_json_file,
    priority_from_labels,
    pseudonymize,
    utc,
)

SOURCE = "trello"
EXPECTED_SHAPE = 'a Trello board "Export as JSON" (an object with "cards" and "lists" arrays)'

_CREATE_ACTIONS = {"createCard", "copyCard", "convertToCardFromCheckItem", "emailCard"}
_USED_ACTIONS = _CREATE_ACTIONS | {"updateCard", "commentCard"}

_pseudo = lru_cache(maxsize=65536)(pseudonymize)


class _Bad(Exception):
    """One card is unusable (becomes a Reject)."""


def _ts(value: Any, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _Bad(f"'{name}' = {value!r} is not a timestamp")
    try:
        return utc(datetime.fromisoformat(value))
    except DateOutOfRange as exc:
        raise _Bad(f"'{name}' = {value!r} {exc}") from None
    except ValueError:
        raise _Bad(
            f"'{name}' = {value!r} is not a timestamp (expected ISO 8601 like 2020-02-25T01:03:54.021Z)"
        ) from None


def _time_from_id(object_id: str) -> datetime:
    """Trello ids are Mongo ObjectIds: the first 8 hex digits are the creation time in unix seconds."""
    try:
        return datetime.fromtimestamp(int(object_id[:8], 16), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise _Bad(
            f"'id' = {object_id!r} is not a Trello id (24 hex digits) and no createCard action dates the card"
        ) from None


def _list_of_dicts(board: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = board.get(key) or []
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def parse(path: Path) -> ParsedFile:
    """Parse one Trello board export into tasks, status events and comments."""
    board, encoding = load_json_file(path, EXPECTED_SHAPE)
    if not (
        isinstance(board, dict)
        and isinstance(board.get("cards"), list)
        and isinstance(board.get("lists"), list)
    ):
        got = f"an object with keys {sorted(board)[:8]}" if isinstance(board, dict) else type(board).__name__
        raise SourceFormatError(f"{path.name}: expected {EXPECTED_SHAPE}; got {got}")

    parsed = ParsedFile(encoding=encoding, shape="trello-board-export")
    board_ctx = _Board.of(
        board.get("name") or board.get("shortLink") or path.stem,
        _list_of_dicts(board, "lists"),
        _list_of_dicts(board, "labels"),
        _list_of_dicts(board, "checklists"),
        # a card whose id is not text (a list, an object) is rejected alone below, not the board
        {
            card.get("id")
            for card in board["cards"]
            if isinstance(card, dict) and isinstance(card.get("id"), str)
        },
    )
    actions = board.get("actions") or []
    if not isinstance(actions, list):  # the cards are still good: keep them, say what was ignored
        parsed.rejects.append(
            _actions_not_a_list(type(actions).__name__, excerpt(canonical_json(actions), 200))
        )
        actions = []
    for _ in _board_parts(board_ctx, enumerate(actions), enumerate(board["cards"]), lambda: parsed):
        pass
    return parsed


def parse_stream(path: Path) -> Iterator[ParsedFile] | None:
    """A board too big to hold whole (a 400 MB export), part by part (lib/sources/stream.py); None: parse it whole.

    Three passes over the file, each holding one item at a time: the board's small parts (name,
    lists, labels, checklists, card ids), then its actions (events, comments, and per card the
    creation and last move into done), then its cards (tasks). Records equal the whole parse's.
    """
    if stream.first_byte(path) != b"{":
        return None

    def parts() -> Iterator[ParsedFile]:
        try:
            head = _board_head(path)
        except SourceFormatError:
            # msgspec refuses a lone surrogate escape (an emoji cut in two), which the whole parse reads as
            # U+FFFD: read a mended copy instead (nothing was yielded yet: the head's pass reads the whole file)
            if not stream.has_surrogate_escapes(path):
                raise
            with stream.mended_copy(path) as mended:
                yield from _streamed_board(mended, _board_head(mended))
            return
        yield from _streamed_board(path, head)

    return parts()


def _streamed_board(path: Path, head: dict[str, Any]) -> Iterator[ParsedFile]:
    """The parts of a streamed board whose first pass gave ``head``: its actions, then its cards."""
    if not (head["kinds"].get("cards") == "start_array" and head["kinds"].get("lists") == "start_array"):
        got = f"an object with keys {sorted(head['kinds'])[:8]}"
        raise SourceFormatError(f"{path.name}: expected {EXPECTED_SHAPE}; got {got}")
    board_ctx = _Board.of(
        head["name"] or head["shortLink"] or path.stem,
        head["lists"],
        head["labels"],
        head["checklists"],
        head["card_ids"],
    )
    first = ParsedFile(shape="trello-board-export")
    actions_kind = head["kinds"].get("actions")
    if actions_kind == "start_array":
        actions: Iterator[tuple[int, Any]] = enumerate(stream.mapped_items(path, "actions"))
    else:
        if actions_kind not in (None, "null"):
            shown = {"start_map": "dict", "string": "str", "number": "float", "boolean": "bool"}.get(
                actions_kind, actions_kind
            )
            first.rejects.append(_actions_not_a_list(shown, "(not shown: the board is streamed)"))
        actions = iter(())
    made = [first]

    def new_part() -> ParsedFile:
        if made:
            return made.pop()
        return ParsedFile(shape="trello-board-export")

    yield from _board_parts(
        board_ctx, actions, enumerate(stream.mapped_items(path, "cards")), new_part, stream.PART_RECORDS
    )


def _actions_not_a_list(type_name: str, shown: str) -> Reject:
    return Reject(
        "actions",
        f"actions: a JSON {type_name} where a list belongs: the board's list moves and comments "
        "were ignored, its cards kept; fix the export",
        shown,
    )


class _CardId(msgspec.Struct):
    id: Any = None


class _BoardHead(msgspec.Struct):
    """What the first pass keeps of a board: the small parts, the card ids, and the big arrays' kinds."""

    name: Any = None
    shortLink: Any = None  # noqa: N815 - Trello's key
    lists: Any = None
    labels: Any = None
    checklists: Any = None
    cards: msgspec.Raw = None  # type: ignore[assignment] - None when the key is absent
    actions: msgspec.Raw = None  # type: ignore[assignment]


def _board_head(path: Path) -> dict[str, Any]:
    """The board's name, lists, labels, checklists and card ids, and what kind of JSON its cards, lists and
    actions are (``start_array`` for a list); the actions and the cards' other fields are not built.

    msgspec reads the file through a memory map (its pages are the file's, not the process's: the
    kernel reclaims them; they are dropped once the pass is done): 4 s for a 400 MB board, where an
    ijson event loop in Python took minutes.
    """
    with stream.mapped_file(path, expected=EXPECTED_SHAPE) as m:
        board = cards = actions = card_list = None  # views into the map: gone before it closes
        try:
            try:
                board = msgspec.json.decode(m, type=_BoardHead)
                cards, actions = board.cards, board.actions
                card_list = _card_ids(cards) if stream.raw_head(cards) == b"[" else None
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise SourceFormatError(
                    f"{path.name} is not valid JSON of {EXPECTED_SHAPE} "
                    f"({str(exc)[:200]}); was the download cut short?"
                ) from None
            kinds = {
                "cards": _json_kind(stream.raw_head(cards)),
                "actions": _json_kind(stream.raw_head(actions)),
                "lists": "start_array"
                if isinstance(board.lists, list)
                else (None if board.lists is None else "other"),
            }
            head = {
                "name": board.name if isinstance(board.name, str) else None,
                "shortLink": board.shortLink if isinstance(board.shortLink, str) else None,
                "lists": _dicts(board.lists),
                "labels": _dicts(board.labels),
                "checklists": _dicts(board.checklists),
                "card_ids": card_list or set(),
                "kinds": {k: v for k, v in kinds.items() if v is not None},
            }
        finally:
            board = cards = actions = card_list = None
    return head


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _card_ids(cards: msgspec.Raw) -> set[str]:
    """The text ids of a raw array of cards (an item that is not a card object is skipped: parse rejects it)."""
    try:
        items = msgspec.json.decode(cards, type=list[_CardId])
    except msgspec.ValidationError:  # an odd item somewhere: one by one
        items = []
        for raw in msgspec.json.decode(cards, type=list[msgspec.Raw]):
            try:
                items.append(msgspec.json.decode(raw, type=_CardId))
            except msgspec.ValidationError:
                continue
    return {c.id for c in items if isinstance(c.id, str)}


def _json_kind(first: bytes | None) -> str | None:
    """Ijson's name for the kind of a JSON value from its first byte (None: the key is absent)."""
    if not first:
        return None
    return {
        b"[": "start_array",
        b"{": "start_map",
        b'"': "string",
        b"n": "null",
        b"t": "boolean",
        b"f": "boolean",
    }.get(first, "number")


@dataclass
class _Board:
    """What every card and action of a board is read against."""

    project: str
    lists: dict[str, str]
    label_names: dict[str, str]
    checklist_items: dict[str, int]
    card_ids: set[str]

    @classmethod
    def of(
        cls,
        project: str,
        lists: list[dict[str, Any]],
        labels: list[dict[str, Any]],
        checklists: list[dict[str, Any]],
        card_ids: set[str],
    ) -> _Board:
        checklist_items: dict[str, int] = {}
        for checklist in checklists:
            items = checklist.get("checkItems")
            card_id = checklist.get("idCard")
            if card_id:
                checklist_items[card_id] = checklist_items.get(card_id, 0) + (
                    len(items) if isinstance(items, list) else 0
                )
        return cls(
            project=project,
            lists={lst["id"]: lst.get("name") or "" for lst in lists if "id" in lst},
            label_names={
                lab["id"]: lab.get("name") or lab.get("color") or "" for lab in labels if "id" in lab
            },
            checklist_items=checklist_items,
            card_ids=card_ids,
        )


def _board_parts(
    board: _Board,
    actions: Iterable[tuple[int, Any]],
    cards: Iterable[tuple[int, Any]],
    new_part: Callable[[], ParsedFile],
    part_records: int = 0,
) -> Iterator[ParsedFile]:
    """The records of a board's actions, then of its cards, in parts of ``part_records`` (0: one part)."""
    parsed = new_part()
    project, lists, label_names = board.project, board.lists, board.label_names
    checklist_items, card_ids = board.checklist_items, board.card_ids
    created: dict[str, tuple[datetime, str | None]] = {}
    moves_into_done: dict[str, datetime] = {}
    n_comment_actions: dict[str, int] = {}
    for index, action in actions:
        if not isinstance(action, dict):
            continue
        data = action.get("data") if isinstance(action.get("data"), dict) else {}
        card = data.get("card") if isinstance(data.get("card"), dict) else {}
        card_id = card.get("id")
        kind = action.get("type")
        if kind not in _USED_ACTIONS or not card_id or card_id not in card_ids:
            continue  # board/list actions, and actions on cards the export no longer holds
        locator = f"actions[{index}]"
        try:
            when = _ts(action.get("date"), "date")
        except _Bad as bad:
            parsed.rejects.append(
                Reject(locator, f"{locator} ({kind} {action.get('id')}): {bad}", canonical_json(action))
            )
            continue
        if when is None:
            parsed.rejects.append(
                Reject(
                    locator,
                    f"{locator} ({kind} {action.get('id')}): 'date' is missing",
                    canonical_json(action),
                )
            )
            continue
        author = _pseudo(SOURCE, action.get("idMemberCreator"))
        task_id = f"trello:{card_id}"
        if kind in _CREATE_ACTIONS:
            if card_id not in created or when < created[card_id][0]:
                created[card_id] = (when, author)
        elif kind == "updateCard":
            before, after = data.get("listBefore"), data.get("listAfter")
            if isinstance(after, dict):
                to_name = after.get("name") or lists.get(after.get("id"), "")
                from_name = (
                    (before.get("name") or lists.get(before.get("id"), ""))
                    if isinstance(before, dict)
                    else None
                )
                parsed.add(
                    "events",
                    {
                        "task_id": task_id,
                        "source": SOURCE,
                        "event_id": action.get("id"),
                        "changed_at": when,
                        "field": "status",
                        "from_value": from_name,
                        "to_value": to_name,
                        "author_id": author,
                        "locator": locator,
                        "payload": canonical_json(action),
                    },
                )
                if category_from_status_name(to_name) == "done":
                    if card_id not in moves_into_done or when > moves_into_done[card_id]:
                        moves_into_done[card_id] = when
        elif kind == "commentCard":
            text = data.get("text")
            n_comment_actions[card_id] = n_comment_actions.get(card_id, 0) + 1
            parsed.add(
                "comments",
                {
                    "task_id": task_id,
                    "source": SOURCE,
                    "comment_id": action.get("id"),
                    "created_at": when,
                    "author_id": author,
                    "body_length": len(text) if isinstance(text, str) else 0,
                    "locator": locator,
                    "payload": canonical_json(action),
                },
            )
        if part_records and parsed.n_records >= part_records:
            yield parsed
            parsed = new_part()

    for index, card in cards:
        locator = f"cards[{index}]"
        if not isinstance(card, dict):
            parsed.rejects.append(Reject.not_an_object(locator, card, "a card object"))
            continue
        try:
            row = _card_to_task(
                card,
                project,
                lists,
                label_names,
                created,
                moves_into_done,
                checklist_items,
                n_comment_actions,
            )
        except _Bad as bad:
            name = card.get("name")
            parsed.rejects.append(Reject(locator, f"{locator} ({name!r}): {bad}", canonical_json(card)))
            continue
        except Exception as exc:  # noqa: BLE001 - one odd card (an id that is a list) must not cost the board's others
            parsed.rejects.append(
                Reject(
                    locator,
                    f"{locator} ({excerpt(str(card.get('name')), 60)!r}): could not be "
                    f"read ({type(exc).__name__}: {excerpt(str(exc), 80)}); the other "
                    "cards were kept: fix the export",
                    canonical_json(card),
                )
            )
            continue
        row["locator"] = locator
        row["payload"] = canonical_json(card)
        parsed.add("tasks", row)
        if part_records and parsed.n_records >= part_records:
            yield parsed
            parsed = new_part()
    yield parsed


def _card_to_task(
    card: dict[str, Any],
    project: str,
    lists: dict[str, str],
    label_names: dict[str, str],
    created: dict[str, tuple[datetime, str | None]],
    moves_into_done: dict[str, datetime],
    checklist_items: dict[str, int],
    n_comment_actions: dict[str, int],
) -> dict[str, Any]:
    card_id = card.get("id")
    if not isinstance(card_id, str) or not card_id:
        raise _Bad("'id' is missing")
    list_id = card.get("idList")
    if list_id not in lists:
        raise _Bad(f"'idList' = {list_id!r} is not a list of this board export (was the export cut short?)")
    status = lists[list_id]
    category = category_from_status_name(status)
    if card.get("dueComplete") is True:
        category = "done"

    if card_id in created:
        created_at, reporter = created[card_id]
    else:
        created_at, reporter = _time_from_id(card_id), None
    updated_at = _ts(card.get("dateLastActivity"), "dateLastActivity")
    if updated_at is not None and updated_at < created_at:
        # Trello stamps createCard a few ms after the new card's dateLastActivity (11 of 42 cards
        # in the real sample): cap so that no duration comes out negative.
        created_at = updated_at
    due = _ts(card.get("due"), "due")
    resolved = None
    if category == "done":
        resolved = moves_into_done.get(card_id) or updated_at

    names: list[str] = []
    card_labels = card.get("labels")
    if isinstance(card_labels, list) and card_labels:
        names = [lab.get("name") or lab.get("color") or "" for lab in card_labels if isinstance(lab, dict)]
    elif isinstance(card.get("idLabels"), list):
        names = [label_names.get(label_id, "") for label_id in card["idLabels"]]
    names = [name for name in names if name]

    members = card.get("idMembers")
    assignee = members[0] if isinstance(members, list) and members else None
    badges = card.get("badges") if isinstance(card.get("badges"), dict) else {}
    n_comments = badges.get("comments")
    if not isinstance(n_comments, int):
        n_comments = n_comment_actions.get(card_id, 0)
    attachments = card.get("attachments")
    n_links = None
    if isinstance(attachments, list):
        n_links = sum(
            1
            for att in attachments
            if isinstance(att, dict) and str(att.get("url", "")).startswith("https://trello.com/c/")
        )
    id_short = card.get("idShort")
    desc = card.get("desc")
    return {
        "task_id": f"trello:{card_id}",
        "source": SOURCE,
        "project": project,
        "key": str(id_short) if id_short is not None else card.get("shortLink") or card_id,
        "title": card.get("name"),
        "type": "card",
        "priority": priority_from_labels(names) if names else None,
        "status": status,
        "status_category": category,
        "assignee_id": _pseudo(SOURCE, assignee),
        "reporter_id": reporter,
        "created_at": created_at,
        "updated_at": updated_at,
        "resolved_at": resolved,
        "due_at": due,
        "deadline_at": due,
        "story_points": None,
        "original_estimate_h": None,
        "time_spent_h": None,
        "n_comments": n_comments,
        "n_links": n_links,
        "n_subtasks": checklist_items.get(card_id, 0),
        "n_labels": len(names),
        "description_length": len(desc) if isinstance(desc, str) else 0,
        "labels": ",".join(names),
    }
