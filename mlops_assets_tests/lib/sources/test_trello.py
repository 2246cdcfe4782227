"""The Trello board-export parser on a real board and on small hand-made boards."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlops_assets.lib.sources import trello
from mlops_assets.lib.sources.base import (
    COMMENT_COLUMNS,
    EVENT_COLUMNS,
    TASK_COLUMNS,
    SourceFormatError,
    pseudonymize,
)
from mlops_assets_tests.conftest import shared_data

BOARD = ("exports", "trello", "volunteerbridge-board.json")


@pytest.fixture(scope="module")
def real():
    path = shared_data(*BOARD)
    return trello.parse(path), json.loads(path.read_text(encoding="utf-8"))


def test_real_board_counts(real):
    parsed, board = real
    assert (len(board["cards"]), len(board["lists"]), len(board["actions"])) == (42, 8, 145)
    tasks = parsed.records["tasks"]
    assert len(tasks) == 42 and parsed.rejects == []
    assert parsed.shape == "trello-board-export"
    assert {t["project"] for t in tasks} == {"VolunteerBridge"}
    assert all(t["due_at"] is None and t["deadline_at"] is None for t in tasks)  # no due dates at all
    assert sum(t["n_subtasks"] for t in tasks) == 8  # two checklists, 3 + 5 items
    # every list move of a card in the export is a status event
    moves = [a for a in board["actions"] if a["type"] == "updateCard" and "listAfter" in a["data"]]
    assert len(parsed.records["events"]) == len(moves) == 5
    assert parsed.records["comments"] == []
    for kind, columns in (("tasks", TASK_COLUMNS), ("events", EVENT_COLUMNS), ("comments", COMMENT_COLUMNS)):
        for row in parsed.records[kind]:
            assert set(row) == set(columns) | {"locator", "payload"}


def test_real_board_creation_times_come_from_actions_or_the_id(real):
    parsed, board = real
    created = {a["data"]["card"]["id"]: a["date"] for a in board["actions"] if a["type"] == "createCard"}
    for task in parsed.records["tasks"]:
        card_id = task["task_id"].removeprefix("trello:")
        action_time = datetime.fromisoformat(created[card_id])
        # the createCard action dates the card (capped at its last activity, a few ms earlier for 11 cards)
        assert task["created_at"] == min(action_time, task["updated_at"])
        id_time = datetime.fromtimestamp(int(card_id[:8], 16), UTC)
        assert abs((task["created_at"] - id_time).total_seconds()) < 2
        assert task["created_at"] <= task["updated_at"]


def test_real_board_statuses_and_archived_card(real):
    parsed, board = real
    tasks = {t["task_id"]: t for t in parsed.records["tasks"]}
    assert {t["status"] for t in tasks.values()} == {
        "Product Backlog: User Story",
        "Product Backlog",
        "Current Sprint 1 Backlog",
    }
    assert {t["status_category"] for t in tasks.values()} == {"todo"}
    archived = [c for c in board["cards"] if c["closed"]]
    assert len(archived) == 1
    # archived on a backlog list: not evidence of completion
    assert tasks[f"trello:{archived[0]['id']}"]["status_category"] == "todo"
    event = parsed.records["events"][0]
    assert (event["field"], event["from_value"], event["to_value"]) == (
        "status",
        "Product Backlog",
        "Product Backlog: User Story",
    )
    assert event["author_id"] == pseudonymize("trello", "5e4421f68dba22024009f504")


def _board(cards: list[dict], actions: list[dict] = (), **extra) -> dict:
    return {
        "id": "b1",
        "name": "Web",
        "shortLink": "AbCd1234",
        "lists": [
            {"id": "L1", "name": "To Do", "closed": False},
            {"id": "L2", "name": "Doing", "closed": False},
            {"id": "L3", "name": "Done \u2705", "closed": False},
        ],
        "labels": [
            {"id": "lab1", "name": "High", "color": "red"},
            {"id": "lab2", "name": "", "color": "green"},
        ],
        "members": [{"id": "m1", "fullName": "Ada Lovelace", "username": "ada"}],
        "checklists": [],
        "cards": cards,
        "actions": list(actions),
        **extra,
    }


def _card(card_id: str = "5e4422fcc283ba2e3af33c89", **overrides) -> dict:
    card = {
        "id": card_id,
        "idShort": 7,
        "shortLink": "cwJwejUi",
        "name": "Login page",
        "desc": "Build it",
        "idList": "L1",
        "idLabels": [],
        "labels": [],
        "idMembers": [],
        "closed": False,
        "due": None,
        "dueComplete": False,
        "dateLastActivity": "2020-03-01T10:00:00.000Z",
        "badges": {"comments": 0},
    }
    card.update(overrides)
    return card


def _action(action_id: str, kind: str, date: str, card_id: str = "5e4422fcc283ba2e3af33c89", **data) -> dict:
    return {
        "id": action_id,
        "idMemberCreator": "m1",
        "type": kind,
        "date": date,
        "data": {"card": {"id": card_id, "idShort": 7}, "board": {"id": "b1"}, **data},
    }


def _parse(tmp_path: Path, board: dict):
    path = tmp_path / "board.json"
    path.write_text(json.dumps(board), encoding="utf-8")
    return trello.parse(path)


def test_card_without_create_action_is_dated_by_its_id(tmp_path):
    task = _parse(tmp_path, _board([_card()])).records["tasks"][0]
    assert task["created_at"] == datetime(2020, 2, 12, 16, 8, 28, tzinfo=UTC)  # 0x5e4422fc
    assert task["reporter_id"] is None
    assert (task["task_id"], task["key"], task["project"], task["type"]) == (
        "trello:5e4422fcc283ba2e3af33c89",
        "7",
        "Web",
        "card",
    )


def test_move_into_done_resolves_and_makes_events(tmp_path):
    actions = [
        _action(
            "a3",
            "updateCard",
            "2020-03-05T09:00:00.000Z",
            listBefore={"id": "L2", "name": "Doing"},
            listAfter={"id": "L3", "name": "Done \u2705"},
            old={"idList": "L2"},
        ),
        _action(
            "a2",
            "updateCard",
            "2020-03-03T09:00:00.000Z",
            listBefore={"id": "L1", "name": "To Do"},
            listAfter={"id": "L2", "name": "Doing"},
            old={"idList": "L1"},
        ),
        _action("a1", "createCard", "2020-03-01T09:00:00.000Z", list={"id": "L1", "name": "To Do"}),
        _action("c1", "commentCard", "2020-03-04T09:00:00.000Z", text="Looks good, Ada"),
    ]
    card = _card(
        idList="L3",
        idMembers=["m1"],
        labels=[{"id": "lab1", "name": "High", "color": "red"}],
        idLabels=["lab1"],
        due="2020-03-04T12:00:00.000Z",
        dateLastActivity="2020-03-06T00:00:00.000Z",
        badges={"comments": 1},
    )
    parsed = _parse(tmp_path, _board([card], actions))
    task = parsed.records["tasks"][0]
    assert (task["status"], task["status_category"]) == ("Done \u2705", "done")
    assert task["resolved_at"] == datetime(2020, 3, 5, 9, 0, tzinfo=UTC)
    assert task["created_at"] == datetime(2020, 3, 1, 9, 0, tzinfo=UTC)
    assert task["due_at"] == task["deadline_at"] == datetime(2020, 3, 4, 12, 0, tzinfo=UTC)
    assert task["assignee_id"] == task["reporter_id"] == pseudonymize("trello", "m1")
    assert (task["priority"], task["labels"], task["n_labels"], task["n_comments"]) == ("High", "High", 1, 1)
    events = sorted(parsed.records["events"], key=lambda e: e["changed_at"])
    assert [(e["from_value"], e["to_value"]) for e in events] == [
        ("To Do", "Doing"),
        ("Doing", "Done \u2705"),
    ]
    assert [e["event_id"] for e in events] == ["a2", "a3"]
    (comment,) = parsed.records["comments"]
    assert (comment["comment_id"], comment["body_length"], comment["task_id"]) == ("c1", 15, task["task_id"])


def test_due_complete_card_is_done_at_last_activity_and_unnamed_labels_use_colour(tmp_path):
    card = _card(dueComplete=True, due="2020-03-01T00:00:00.000Z", idLabels=["lab2"], labels=[])
    task = _parse(tmp_path, _board([card])).records["tasks"][0]
    assert task["status_category"] == "done"
    assert task["resolved_at"] == datetime(2020, 3, 1, 10, 0, tzinfo=UTC)
    assert task["labels"] == "green" and task["priority"] is None


def test_checklist_items_count_as_subtasks(tmp_path):
    checklists = [
        {"id": "cl1", "idCard": "5e4422fcc283ba2e3af33c89", "checkItems": [{"id": "i1"}, {"id": "i2"}]},
        {"id": "cl2", "idCard": "5e4422fcc283ba2e3af33c89", "checkItems": [{"id": "i3"}]},
    ]
    board = _board([_card()])
    board["checklists"] = checklists
    assert _parse(tmp_path, board).records["tasks"][0]["n_subtasks"] == 3


def test_bad_cards_become_rejects(tmp_path):
    cards = [
        _card(),
        _card("5e4422fcc283ba2e3af33c90", dateLastActivity="yesterday"),
        _card("5e4422fcc283ba2e3af33c91", idList="L9"),
        _card("nothex-at-all", idShort=9),
        "not a card",
    ]
    parsed = _parse(tmp_path, _board(cards))
    assert len(parsed.records["tasks"]) == 1
    reasons = [r.reason for r in parsed.rejects]
    assert (
        reasons[0]
        == "cards[1] ('Login page'): 'dateLastActivity' = 'yesterday' is not a timestamp (expected ISO 8601 like 2020-02-25T01:03:54.021Z)"
    )
    assert "'idList' = 'L9' is not a list of this board export" in reasons[1]
    assert "is not a Trello id" in reasons[2]
    assert reasons[3] == "cards[4]: element is str, not a card object"
    assert len(parsed.records["tasks"]) + len(parsed.rejects) == len(cards)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"cards": [', "is not valid JSON"),
        (b'[{"number": 1}]', "expected a Trello board"),
        (b'{"cards": []}', "expected a Trello board"),
    ],
)
def test_unreadable_or_unknown_files_raise(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(SourceFormatError, match=message):
        trello.parse(path)


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("Done", "done"),
        ("Completed", "done"),
        ("Shipped \U0001f680", "done"),
        ("Not done", "todo"),
        ("Doing", "in_progress"),
        ("In Progress", "in_progress"),
        ("Testing/Review", "in_progress"),
        ("QA", "in_progress"),
        ("To-Do", "todo"),
        ("Product Backlog", "todo"),
        ("Current Sprint 1 Backlog", "todo"),
        ("Not started", "todo"),
        ("Issues", "todo"),
        ("", "todo"),
        (None, "todo"),
    ],
)
def test_category_from_list_name(name, category):
    assert trello.category_from_status_name(name) == category
