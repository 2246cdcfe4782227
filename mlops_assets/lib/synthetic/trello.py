"""Trello: one board JSON per project (lists, labels, members, cards and their actions)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from mlops_assets.lib.synthetic.common import _description, _fmt, _q, _render, _utf8_rows
from mlops_assets.lib.synthetic.truth import _TRELLO_LISTS, _hex
from mlops_assets.lib.synthetic.world import _LABELS, US, Person, Project

_TRELLO_TS = "%Y-%m-%dT%H:%M:%S%.3fZ"

_TRELLO_COLORS = {"Urgent": "red", "High": "orange", "Low": "green"}


def _hex_id(seconds: int, counter: int) -> str:
    return f"{seconds:08x}{counter:016x}"


def _write_trello(
    t: pl.DataFrame,
    project: Project,
    project_id: int,
    people: dict[str, Person],
    export: int,
    out: Path,
    tag: str,
) -> list[Path]:
    start = int(t["created_at"].min().timestamp()) - 86400 if len(t) else export // US
    board_id = _hex_id(start, 0xB0A4D0000000 + project_id)
    board_ref = json.dumps(
        {"id": board_id, "name": project.name, "shortLink": "Cmpgn" + str(project_id)}, separators=(",", ":")
    )
    list_ids = {name: _hex_id(start, 0x11570000 + i) for i, name in enumerate(_TRELLO_LISTS)}
    label_names = ["Urgent", "High", "Low", *_LABELS]
    label_ids = {name: _hex_id(start, 0x1AB00000 + i) for i, name in enumerate(label_names)}
    label_objs = {
        name: json.dumps({"id": label_ids[name], "idBoard": board_id, "name": name,
                          "color": _TRELLO_COLORS.get(name, ("sky", "purple", "lime", "pink", "black", "blue", "yellow", "green")[i % 8])},
                         separators=(",", ":"))
        for i, name in enumerate(label_names)
    }  # fmt: skip
    members = {login: p.account_id for login, p in people.items()}
    creators = {
        login: json.dumps({"id": p.account_id, "activityBlocked": False, "avatarHash": None, "avatarUrl": None, "fullName": p.name,
                           "idMemberReferrer": None, "initials": "".join(w[0] for w in p.name.split()), "nonPublic": {},
                           "nonPublicAvailable": False, "username": p.login}, ensure_ascii=False, separators=(",", ":"))
        for login, p in people.items()
    }  # fmt: skip
    t = t.sort("created_at").with_columns(
        pl.Series("_card", _trello_ids_of(t.sort("created_at"))),
        pl.coalesce(pl.col("assignee_login"), pl.col("reporter_login")).alias("_actor"),
        pl.when(pl.col("priority_ordinal") <= 2)
        .then(pl.lit("Backlog"))
        .otherwise(pl.lit("To Do"))
        .alias("_first_list"),
    )
    card_tpl = (
        '{"id":"@@_card@@","address":null,"checkItemStates":null,"closed":false,"coordinates":null,"creationMethod":null,'
        '"dateLastActivity":"@@_updated@@","desc":@@_desc@@,"descData":{"emoji":{}},"dueReminder":null,"idBoard":"'
        + board_id
        + '",'
        '"idLabels":[@@_idlabels@@],"idList":"@@_list@@","idMembersVoted":[],"idShort":@@number@@,"idAttachmentCover":null,'
        '"locationName":null,"manualCoverAttachment":false,"name":@@_name@@,"pos":@@_pos@@,"shortLink":"@@_short@@","isTemplate":false,'
        '"badges":{"attachmentsByType":{"trello":{"board":0,"card":0}},"location":false,"votes":0,"viewingMemberVoted":false,'
        '"subscribed":false,"fogbugz":"","checkItems":0,"checkItemsChecked":0,"checkItemsEarliestDue":null,"comments":@@n_comments@@,'
        '"attachments":0,"description":@@_hasdesc@@,"due":@@_due@@,"dueComplete":@@_duecomplete@@},"dueComplete":@@_duecomplete@@,'
        '"due":@@_due@@,"idChecklists":[],"idMembers":@@_members@@,"labels":[@@_labelobjs@@],'
        '"shortUrl":"https://trello.com/c/@@_short@@","subscribed":false,"url":"https://trello.com/c/@@_short@@/@@number@@",'
        '"cover":{"idAttachment":null,"color":null,"idUploadedBackground":null,"size":"normal","brightness":"light"},'
        '"attachments":[],"pluginData":[],"customFieldItems":[]}'
    )
    label_list = pl.col("labels").str.split(",")
    cards = t.select(
        pl.col("_card"), pl.col("number"), pl.col("n_comments"),
        _fmt("updated_at", _TRELLO_TS).alias("_updated"),
        _q(_description(pl.col("description_length"), pl.col("number") % 61)).alias("_desc"),
        pl.when(pl.col("description_length") > 0).then(pl.lit("true")).otherwise(pl.lit("false")).alias("_hasdesc"),
        label_list.list.eval(pl.element().replace_strict(label_ids, default=None)).list.drop_nulls()
        .list.eval(pl.concat_str([pl.lit('"'), pl.element(), pl.lit('"')])).list.join(",").alias("_idlabels"),
        label_list.list.eval(pl.element().replace_strict(label_objs, default=None)).list.drop_nulls().list.join(",").alias("_labelobjs"),
        pl.when(pl.col("defect") == "missing_required_field").then(pl.lit("5f0000000000000000000000"))
        .otherwise(pl.col("status").replace_strict(list_ids)).alias("_list"),
        _q(pl.col("title")).alias("_name"),
        (pl.col("number") * 16384).alias("_pos"),
        pl.col("_card").str.slice(16, 8).alias("_short"),
        _q(pl.col("deadline_at").dt.strftime("%Y-%m-%dT16:00:00.000Z")).alias("_due"),
        pl.when(pl.col("resolved_at").is_not_null() & pl.col("deadline_at").is_not_null()).then(pl.lit("true")).otherwise(pl.lit("false")).alias("_duecomplete"),
        pl.when(pl.col("assignee_login").is_null()).then(pl.lit("[]")).otherwise(
            pl.concat_str([pl.lit('["'), pl.col("assignee_login").replace_strict(members, default=""), pl.lit('"]')])).alias("_members"),
    ).select(_render(card_tpl).alias("r"))["r"]  # fmt: skip

    # actions: createCard, then one updateCard per move between lists (newest first, as exported)
    base = t.select(
        "_card",
        "number",
        "title",
        "_actor",
        "_first_list",
        "created_at",
        "started_at",
        "review_at",
        "resolved_at",
    )
    prev_done = (
        pl.when(pl.col("review_at").is_not_null())
        .then(pl.lit("Review"))
        .when(pl.col("started_at").is_not_null())
        .then(pl.lit("Doing"))
        .otherwise(pl.col("_first_list"))
    )
    moves = pl.concat([
        base.select(pl.all(), pl.col("created_at").alias("_at"), pl.lit(None, pl.String).alias("_from"), pl.col("_first_list").alias("_to"), pl.lit(0).alias("_j")),
        base.filter(pl.col("started_at").is_not_null()).select(pl.all(), pl.col("started_at").alias("_at"), pl.col("_first_list").alias("_from"), pl.lit("Doing").alias("_to"), pl.lit(1).alias("_j")),
        base.filter(pl.col("review_at").is_not_null()).select(pl.all(), pl.col("review_at").alias("_at"), pl.lit("Doing").alias("_from"), pl.lit("Review").alias("_to"), pl.lit(2).alias("_j")),
        base.filter(pl.col("resolved_at").is_not_null()).select(pl.all(), pl.col("resolved_at").alias("_at"), prev_done.alias("_from"), pl.lit("Done").alias("_to"), pl.lit(3).alias("_j")),
    ]).sort("_at", descending=True)  # fmt: skip
    action_tpl_head = '{"id":"@@_aid@@","idMemberCreator":"@@_mid@@","data":{'
    move_tpl = action_tpl_head + (
        '"old":{"idList":"@@_fromid@@"},"card":{"idList":"@@_toid@@","id":"@@_card@@","name":@@_name@@,"idShort":@@number@@,'
        '"shortLink":"@@_short@@"},"board":'
        + board_ref
        + ',"listBefore":{"id":"@@_fromid@@","name":"@@_from@@"},'
        '"listAfter":{"id":"@@_toid@@","name":"@@_to@@"}},"type":"updateCard","date":"@@_date@@","limits":{},"memberCreator":@@_creator@@}'
    )
    create_tpl = action_tpl_head + (
        '"card":{"id":"@@_card@@","name":@@_name@@,"idShort":@@number@@,"shortLink":"@@_short@@"},'
        '"list":{"id":"@@_toid@@","name":"@@_to@@"},"board":'
        + board_ref
        + '},"type":"createCard","date":"@@_date@@",'
        '"limits":{},"memberCreator":@@_creator@@}'
    )
    actions = moves.with_columns(
        pl.concat_str([pl.col("_at").dt.epoch("s").map_batches(_hex8, return_dtype=pl.String),
                       pl.lit("ac"), pl.col("_card").str.slice(10, 12), pl.col("_j").cast(pl.String).str.zfill(2)]).alias("_aid"),
        pl.col("_actor").replace_strict(members, default="").alias("_mid"),
        pl.col("_actor").replace_strict(creators, default="null").alias("_creator"),
        pl.col("_from").replace_strict(list_ids, default=None).alias("_fromid"),
        pl.col("_to").replace_strict(list_ids).alias("_toid"),
        _q(pl.col("title")).alias("_name"),
        pl.col("_card").str.slice(16, 8).alias("_short"),
        pl.col("_at").dt.strftime(_TRELLO_TS).alias("_date"),
    ).select(pl.when(pl.col("_j") == 0).then(_render(create_tpl)).otherwise(_render(move_tpl)).alias("r"))["r"]  # fmt: skip

    lists = [
        {"id": list_ids[name], "name": name, "closed": False, "idBoard": board_id, "pos": 16384 * (i + 1), "subscribed": False,
         "softLimit": None, "creationMethod": None}
        for i, name in enumerate(_TRELLO_LISTS)
    ]  # fmt: skip
    member_objs = [
        {"id": p.account_id, "activityBlocked": False, "avatarHash": None, "avatarUrl": None, "bio": "", "bioData": {"emoji": {}},
         "confirmed": True, "fullName": p.name, "idEnterprise": None, "initials": "".join(w[0] for w in p.name.split()),
         "memberType": "normal", "nonPublic": {}, "nonPublicAvailable": True, "products": [], "url": f"https://trello.com/{p.login}",
         "username": p.login, "status": "disconnected"}
        for p in sorted(people.values(), key=lambda p: p.index)
    ]  # fmt: skip
    board_head = {
        "id": board_id, "name": project.name, "desc": "", "descData": None, "closed": False, "idOrganization": None,
        "idEnterprise": None, "pinned": False, "starred": False, "url": f"https://trello.com/b/Cmpgn{project_id}/campaigns",
        "prefs": {"permissionLevel": "org", "background": "blue", "cardAging": "regular"}, "shortLink": f"Cmpgn{project_id}",
        "subscribed": False, "labelNames": {}, "powerUps": 0,
        "dateLastActivity": datetime.fromtimestamp(export // US, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "dateLastView": None, "shortUrl": f"https://trello.com/b/Cmpgn{project_id}", "idTags": 0,
    }  # fmt: skip
    dumps = lambda obj: json.dumps(obj, ensure_ascii=False, separators=(",", ":"))  # noqa: E731
    memberships = [{"id": _hex_id(start, 0x3E3B0000 + i), "idMember": m["id"], "memberType": "normal", "unconfirmed": False,
                    "deactivated": False} for i, m in enumerate(member_objs)]  # fmt: skip
    tail = (
        '],"labels":['
        + ",".join(label_objs.values())
        + '],"lists":'
        + dumps(lists)
        + ',"members":'
        + dumps(member_objs)
        + ',"checklists":[],"customFields":[],"memberships":'
        + dumps(memberships)
        + ',"pluginData":[]}'
    )
    pieces = [
        dumps(board_head)[:-1] + ',"actions":[',
        actions.str.join(","),
        '],"cards":[',
        cards.str.join(","),
        tail,
    ]
    path = out / f"{project.key.lower().replace(' ', '-')}{tag}-board.json"
    with path.open("wb") as fh:
        for piece in pieces:
            fh.write(piece.encode("utf-8") if isinstance(piece, str) else _utf8_rows(piece)[0])
    return [path]


def _hex8(s: pl.Series) -> pl.Series:
    return pl.Series(_hex(s.to_numpy(), 8))


def _trello_ids_of(t: pl.DataFrame) -> list[str]:
    secs = t["created_at"].dt.epoch("s").to_numpy()
    return np.char.add(_hex(secs, 8), _hex(0x5E4422FC00000000 + t["number"].to_numpy(), 16)).tolist()
