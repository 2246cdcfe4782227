"""Jira: REST search pages (``api`` projects) and the "all fields" CSV export (``csv`` projects)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import polars as pl

from mlops_assets.lib.synthetic.common import (
    _description,
    _fmt,
    _json_list,
    _lookup,
    _num,
    _q,
    _render,
    _write_pages,
)
from mlops_assets.lib.synthetic.truth import _JIRA_PRIORITY, _JIRA_STATUS, _JIRA_TYPE
from mlops_assets.lib.synthetic.world import DAY, MAIN_START, PAGE_SIZE, Person, Project, _us

_JIRA_BASE = "https://jira.acme.example"
_JIRA_TS = "%Y-%m-%dT%H:%M:%S%.3f+0000"

_JIRA_STATUS_IDS = {
    "Open": "1", "In Progress": "3", "Patch Available": "10002", "Resolved": "5",
    "To Do": "10000", "In Review": "10001", "Done": "10003",
}  # fmt: skip
_JIRA_CATEGORY = {0: ("new", 2, "blue-gray", "To Do"), 1: ("indeterminate", 4, "yellow", "In Progress"),
                  2: ("indeterminate", 4, "yellow", "In Progress"), 3: ("done", 3, "green", "Done")}  # fmt: skip
_SP_FIELD = {
    "classic": ("customfield_12310293", "Story Points"),
    "cloud": ("customfield_10016", "Story point estimate"),
}


def _jira_user(p: Person) -> str:
    avatar = f"{_JIRA_BASE}/secure/useravatar?ownerId={p.login}&avatarId={10000 + p.index}"
    return json.dumps(
        {
            "self": f"{_JIRA_BASE}/rest/api/2/user?accountId={p.account_id}",
            "name": p.login,
            "key": p.login,
            "accountId": p.account_id,
            "avatarUrls": {k: f"{avatar}&size={k}" for k in ("48x48", "24x24", "16x16", "32x32")},
            "displayName": p.name,
            "active": True,
            "timeZone": "Europe/Berlin",
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _jira_status(name: str, stage: int) -> str:
    key, cid, color, cname = _JIRA_CATEGORY[stage]
    sid = _JIRA_STATUS_IDS[name]
    return json.dumps(
        {
            "self": f"{_JIRA_BASE}/rest/api/2/status/{sid}",
            "description": "",
            "iconUrl": f"{_JIRA_BASE}/images/icons/statuses/generic.png",
            "name": name,
            "id": sid,
            "statusCategory": {
                "self": f"{_JIRA_BASE}/rest/api/2/statuscategory/{cid}",
                "id": cid,
                "key": key,
                "colorName": color,
                "name": cname,
            },
        },
        separators=(",", ":"),
    )


def _jira_named(kind: str, names: tuple[str, ...], extra: dict[str, Any] | None = None) -> dict[str, str]:
    return {
        name: json.dumps(
            {"self": f"{_JIRA_BASE}/rest/api/2/{kind}/{i + 1}", "iconUrl": f"{_JIRA_BASE}/images/icons/{kind}/{i + 1}.svg",
             "name": name, "id": str(i + 1), **({k: v(name) for k, v in extra.items()} if extra else {})},
            separators=(",", ":"),
        )
        for i, name in enumerate(names)
    }  # fmt: skip


def _jira_frame(
    t: pl.DataFrame, project: Project, people: dict[str, Person], export: int, project_id: int
) -> pl.DataFrame:
    """The per-issue JSON fragments a Jira issue is assembled from."""
    users = {login: _jira_user(p) for login, p in people.items()}
    scheme = project.scheme
    statuses = _JIRA_STATUS[scheme]
    status_json = {name: _jira_status(name, stage) for stage, name in enumerate(statuses)}
    types = _jira_named(
        "issuetype",
        _JIRA_TYPE[scheme],
        {"subtask": lambda name: name in ("Sub-task", "Subtask"), "description": lambda name: ""},
    )
    prios = _jira_named("priority", _JIRA_PRIORITY[scheme])
    export_day = export // DAY
    created = pl.col("created_at")
    resolved = (
        pl.when(pl.col("defect") == "resolved_before_created")
        .then(created - pl.duration(days=3, hours=2))
        .otherwise(pl.col("resolved_at"))
    )
    by_stage = {0: statuses[0], 1: statuses[1], 2: statuses[2], 3: statuses[3]}

    def history(j: int, at: str, to_stage: int, from_expr: pl.Expr) -> pl.Expr:
        to_name = by_stage[to_stage]
        resolution = (
            (
                ',{"field":"resolution","fieldtype":"jira","from":null,"fromString":null,"to":"1","toString":"'
                + ("Fixed" if scheme == "classic" else "Done")
                + '"}'
            )
            if to_stage == 3
            else ""
        )
        return entry(j, at, [
            pl.lit('{"field":"status","fieldtype":"jira","from":"'),
            from_expr.replace_strict(_JIRA_STATUS_IDS, return_dtype=pl.String),
            pl.lit('","fromString":"'), from_expr, pl.lit('","to":"' + _JIRA_STATUS_IDS[to_name] + '","toString":"' + to_name + '"}'),
            pl.lit(resolution),
        ])  # fmt: skip

    def entry(j: int, at: str, items: list[pl.Expr]) -> pl.Expr:
        """One changelog history (id, author, time, items) where column `at` is set."""
        return pl.when(pl.col(at).is_not_null()).then(
            pl.concat_str([
                pl.lit('{"id":"'), (pl.col("number") * 8 + j + project_id * 10_000_000).cast(pl.String),
                pl.lit('","author":'), pl.col("_author"), pl.lit(',"created":"'), _fmt(at, _JIRA_TS),
                pl.lit('","items":['), *items, pl.lit("]}"),
            ])
        )  # fmt: skip

    account = {login: p.account_id for login, p in people.items()}
    display = {login: p.name for login, p in people.items()}
    handover = [
        pl.lit('{"field":"assignee","fieldtype":"jira","from":"'), pl.col("prev_assignee_login").replace_strict(account, default=""),
        pl.lit('","fromString":"'), pl.col("prev_assignee_login").replace_strict(display, default=""),
        pl.lit('","to":"'), pl.col("assignee_login").replace_strict(account, default=""),
        pl.lit('","toString":"'), pl.col("assignee_login").replace_strict(display, default=""), pl.lit('"}'),
    ]  # fmt: skip
    due_move = [
        pl.lit('{"field":"duedate","fieldtype":"jira","from":"'), _fmt("due_from", "%Y-%m-%d"),
        pl.lit('","fromString":"'), _fmt("due_from", "%Y-%m-%d 00:00:00.0"),
        pl.lit('","to":"'), pl.col("due_at").dt.strftime("%Y-%m-%d"),
        pl.lit('","toString":"'), pl.col("due_at").dt.strftime("%Y-%m-%d 00:00:00.0"), pl.lit('"}'),
    ]  # fmt: skip

    from_done = (
        pl.when(pl.col("review_at").is_not_null()).then(pl.lit(statuses[2]))
        .when(pl.col("started_at").is_not_null()).then(pl.lit(statuses[1]))
        .otherwise(pl.lit(statuses[0]))
    )  # fmt: skip
    release_day = pl.lit(_us(MAIN_START) // DAY + 2) + pl.col("release_index") * 14
    released = release_day <= export_day
    link = (
        '{"id":"@@_lid@@","self":"'
        + _JIRA_BASE
        + '/rest/api/2/issueLink/@@_lid@@","type":{"id":"10003","name":"Relates",'
        '"inward":"relates to","outward":"relates to","self":"'
        + _JIRA_BASE
        + '/rest/api/2/issueLinkType/10003"},'
        '"outwardIssue":{"id":"@@_lid@@","key":"'
        + project.key
        + '-@@_lnum@@","self":"'
        + _JIRA_BASE
        + '/rest/api/2/issue/@@_lid@@"}}'
    )
    sub = (
        '{"id":"@@_sid@@","key":"'
        + project.key
        + '-@@_snum@@","self":"'
        + _JIRA_BASE
        + '/rest/api/2/issue/@@_sid@@",'
        '"fields":{"summary":"Subtask of '
        + project.key
        + '-@@number@@","status":'
        + status_json[statuses[0]]
        + ',"priority":@@_priority@@,'
        '"issuetype":' + types[_JIRA_TYPE[scheme][5]] + "}}"
    )
    f = t.with_columns(
        (pl.col("number") + project_id * 1_000_000).alias("_id"),
        _q(pl.col("title")).alias("_summary"),
        _lookup("type", types).alias("_type"),
        _lookup("priority", prios).alias("_priority"),
        _lookup("status", status_json).alias("_status"),
        _lookup("assignee_login", users).alias("_assignee"),
        _lookup("reporter_login", users).alias("_reporter"),
        pl.when(pl.col("defect") == "missing_required_field").then(pl.lit("null")).otherwise(_q(_fmt("created_at", _JIRA_TS))).alias("_created"),
        _q(_fmt("updated_at", _JIRA_TS)).alias("_updated"),
        _q(resolved.dt.strftime(_JIRA_TS)).alias("_resolved"),
        _q(pl.col("due_at").dt.strftime("%Y-%m-%d")).alias("_due"),
        pl.when(pl.col("release_index").is_null()).then(pl.lit("[]")).otherwise(pl.concat_str([
            pl.lit('[{"self":"' + _JIRA_BASE + '/rest/api/2/version/'), (pl.col("release_index") + 20000).cast(pl.String),
            pl.lit('","id":"'), (pl.col("release_index") + 20000).cast(pl.String),
            pl.lit('","description":"","name":"' + project.key + ' 1.'), pl.col("release_index").cast(pl.String),
            pl.lit('","archived":false,"released":'), pl.when(released).then(pl.lit("true")).otherwise(pl.lit("false")),
            pl.lit(',"releaseDate":"'), (release_day * DAY).cast(pl.Datetime("us", "UTC")).dt.strftime("%Y-%m-%d"), pl.lit('"}]'),
        ])).alias("_fix"),
        _num((pl.col("original_estimate_h") * 3600).cast(pl.Int64)).alias("_est"),
        _num((pl.col("time_spent_h") * 3600).cast(pl.Int64)).alias("_spent"),
        _num(pl.col("story_points")).alias("_sp"),
        _json_list(pl.col("labels")).alias("_labels"),
        pl.when(pl.col("description_length") == 0).then(pl.lit("null"))
        .otherwise(_q(_description(pl.col("description_length"), pl.col("number") % 97))).alias("_desc"),
        pl.when(pl.col("resolved_at").is_null()).then(pl.lit("null")).otherwise(pl.lit(
            '{"self":"' + _JIRA_BASE + '/rest/api/2/resolution/1","id":"1","description":"","name":"'
            + ("Fixed" if scheme == "classic" else "Done") + '"}')).alias("_resolution"),
        pl.when(pl.col("assignee_login").is_null()).then(_lookup("reporter_login", users)).otherwise(_lookup("assignee_login", users)).alias("_author"),
    )  # fmt: skip
    link_items = [
        pl.when(pl.col("n_links") > j).then(
            _render(
                link.replace("@@_lid@@", "@@_lid" + str(j) + "@@").replace(
                    "@@_lnum@@", "@@_lnum" + str(j) + "@@"
                )
            )
        )
        for j in range(3)
    ]
    sub_items = [
        pl.when(pl.col("n_subtasks") > j).then(
            _render(
                sub.replace("@@_sid@@", "@@_sid" + str(j) + "@@").replace(
                    "@@_snum@@", "@@_snum" + str(j) + "@@"
                )
            )
        )
        for j in range(4)
    ]
    f = f.with_columns(
        *[(pl.col("_id") * 10 + j + 900_000_000).alias(f"_lid{j}") for j in range(3)],
        *[pl.max_horizontal(pl.col("number") - (j + 1) * 3, pl.lit(1)).alias(f"_lnum{j}") for j in range(3)],
        *[(pl.col("_id") * 10 + j + 500_000_000).alias(f"_sid{j}") for j in range(4)],
        *[(pl.col("number") * 10 + j + 100_000).alias(f"_snum{j}") for j in range(4)],
    )
    f = f.with_columns(
        pl.concat_str([pl.lit("["), pl.concat_str(link_items, separator=",", ignore_nulls=True), pl.lit("]")]).alias("_links"),
        pl.concat_str([pl.lit("["), pl.concat_str(sub_items, separator=",", ignore_nulls=True), pl.lit("]")]).alias("_subs"),
        pl.concat_str(
            [
                history(0, "started_at", 1, pl.lit(statuses[0])),
                entry(3, "reassigned_at", handover),
                history(4, "blocked_at", 0, pl.lit(statuses[1])),
                history(5, "unblocked_at", 1, pl.lit(statuses[0])),
                entry(6, "due_moved_at", due_move),
                history(1, "review_at", 2, pl.lit(statuses[1])),
                history(2, "resolved_at", 3, from_done),
            ],
            separator=",",
            ignore_nulls=True,
        ).alias("_hist"),
        pl.sum_horizontal(pl.col(c).is_not_null().cast(pl.Int32) for c in (
            "started_at", "review_at", "resolved_at", "reassigned_at", "blocked_at", "unblocked_at", "due_moved_at",
        )).alias("_nhist"),
    )  # fmt: skip
    return f


def _jira_issue_template(project: Project, project_id: int, people: dict[str, Person]) -> str:
    proj = json.dumps(
        {"self": f"{_JIRA_BASE}/rest/api/2/project/{10000 + project_id}", "id": str(10000 + project_id), "key": project.key,
         "name": project.name, "projectTypeKey": "software", "simplified": project.scheme == "cloud",
         "avatarUrls": {k: f"{_JIRA_BASE}/secure/projectavatar?pid={10000 + project_id}&size={k}" for k in ("48x48", "24x24", "16x16", "32x32")}},
        separators=(",", ":"),
    )  # fmt: skip
    sp_field = _SP_FIELD[project.scheme][0]
    return (
        '{"expand":"operations,versionedRepresentations,editmeta,changelog,renderedFields","id":"@@_id@@",'
        '"self":"' + _JIRA_BASE + '/rest/api/2/issue/@@_id@@","key":"@@key@@","fields":{'
        '"summary":@@_summary@@,"progress":{"progress":0,"total":0},"timetracking":{},"issuetype":@@_type@@,'
        '"timespent":@@_spent@@,"reporter":@@_reporter@@,"created":@@_created@@,"updated":@@_updated@@,'
        '"description":@@_desc@@,"priority":@@_priority@@,"issuelinks":@@_links@@,"subtasks":@@_subs@@,'
        '"status":@@_status@@,"labels":@@_labels@@,"workratio":-1,"project":' + proj + ',"environment":null,'
        '"lastViewed":null,"aggregateprogress":{"progress":0,"total":0},"components":[],'
        '"comment":{"comments":[],"maxResults":0,"total":@@n_comments@@,"startAt":0},'
        '"timeoriginalestimate":@@_est@@,"votes":{"self":"'
        + _JIRA_BASE
        + '/rest/api/2/issue/@@key@@/votes","votes":0,"hasVoted":false},'
        '"fixVersions":@@_fix@@,"resolution":@@_resolution@@,"resolutiondate":@@_resolved@@,"creator":@@_reporter@@,'
        '"aggregatetimeoriginalestimate":@@_est@@,"duedate":@@_due@@,'
        '"watches":{"self":"'
        + _JIRA_BASE
        + '/rest/api/2/issue/@@key@@/watchers","watchCount":1,"isWatching":false},'
        '"assignee":@@_assignee@@,"aggregatetimeestimate":null,"versions":[],"timeestimate":null,"aggregatetimespent":@@_spent@@,'
        '"' + sp_field + '":@@_sp@@},'
        '"changelog":{"startAt":0,"maxResults":@@_nhist@@,"total":@@_nhist@@,"histories":[@@_hist@@]}}'
    )


_JIRA_NAMES = {
    "summary": "Summary", "issuetype": "Issue Type", "timespent": "Time Spent", "reporter": "Reporter",
    "created": "Created", "updated": "Updated", "description": "Description", "priority": "Priority",
    "issuelinks": "Linked Issues", "subtasks": "Sub-Tasks", "status": "Status", "labels": "Labels",
    "project": "Project", "comment": "Comment", "timeoriginalestimate": "Original Estimate",
    "fixVersions": "Fix Version/s", "resolution": "Resolution", "resolutiondate": "Resolved",
    "creator": "Creator", "duedate": "Due Date", "assignee": "Assignee",
}  # fmt: skip


def _write_jira_api(
    t: pl.DataFrame,
    project: Project,
    project_id: int,
    people: dict[str, Person],
    export: int,
    out: Path,
    tag: str,
    duplicate: bool,
) -> list[Path]:
    f = _jira_frame(t.sort("number"), project, people, export, project_id)
    rendered = f.select(_render(_jira_issue_template(project, project_id, people) + ",").alias("r"))["r"]
    names = json.dumps(
        {**_JIRA_NAMES, _SP_FIELD[project.scheme][0]: _SP_FIELD[project.scheme][1]}, separators=(",", ":")
    )

    def wrap(start: int, total: int) -> tuple[str, str]:
        return (f'{{"expand":"names,schema","startAt":{start},"maxResults":{PAGE_SIZE},"total":{total},"issues":[',
                f'],"names":{names}}}')  # fmt: skip

    return _write_pages(
        rendered, out, f"{project.key}{tag}-search", PAGE_SIZE, wrap, PAGE_SIZE - 1 if duplicate else None
    )


_JIRA_CSV_HEADER = [
    "Summary", "Issue key", "Issue id", "Issue Type", "Status", "Project key", "Project name", "Project type",
    "Project lead", "Project lead id", "Project description", "Priority", "Resolution", "Assignee", "Assignee Id",
    "Reporter", "Reporter Id", "Creator", "Creator Id", "Created", "Updated", "Last Viewed", "Resolved", "Due date",
    "Votes", "Description", "Environment", "Watchers", "Watchers", "Watchers", "Watchers Id", "Watchers Id",
    "Watchers Id", "Original estimate", "Remaining Estimate", "Time Spent", "Work Ratio", "Σ Original Estimate",
    "Σ Remaining Estimate", "Σ Time Spent", "Security Level", "Attachment", "Custom field (Development)",
    "Custom field (Issue color)", "Custom field (Rank)", "Sprint", "Custom field (Start date)",
    "Custom field (Story Points)", "Custom field (Story point estimate)", "Custom field (Team)",
    "Custom field (Vulnerability)", "Comment", "Comment", "Comment", "Status Category", "Status Category Changed",
]  # fmt: skip
_JIRA_CSV_TS = "%d/%b/%y %-I:%M %p"


def _write_jira_csv(
    t: pl.DataFrame, project: Project, project_id: int, people: dict[str, Person], out: Path, tag: str
) -> list[Path]:
    names = {login: p.name for login, p in people.items()}
    accounts = {login: p.account_id for login, p in people.items()}
    lead = min(people.values(), key=lambda p: p.index)
    t = t.sort("number")
    resolved = (
        pl.when(pl.col("defect") == "resolved_before_created")
        .then(pl.col("created_at") - pl.duration(days=3, hours=2))
        .otherwise(pl.col("resolved_at"))
    )
    category = pl.col("status_category").replace_strict(
        {"todo": "To Do", "in_progress": "In Progress", "done": "Done"}
    )
    last_change = pl.coalesce(
        pl.col("resolved_at"), pl.col("review_at"), pl.col("started_at"), pl.col("created_at")
    )
    comment_author = pl.coalesce(pl.col("assignee_login"), pl.col("reporter_login")).replace_strict(
        accounts, default=""
    )

    def comment(j: int) -> pl.Expr:
        at = pl.col("created_at") + pl.duration(hours=5 + 20 * j)
        return pl.when(pl.col("n_comments") > j).then(pl.concat_str([
            at.dt.strftime(_JIRA_CSV_TS), pl.lit(";"), comment_author, pl.lit(";"),
            pl.lit("Update " + str(j + 1) + ": "), _description(pl.col("description_length") // 3 + 10, pl.col("number") % 53 + j),
        ])).otherwise(pl.lit(""))  # fmt: skip

    blank = pl.lit("")
    cols = [
        pl.col("title"), pl.col("key"), (pl.col("number") + project_id * 1_000_000).cast(pl.String), pl.col("type"),
        pl.col("status"), pl.lit(project.key), pl.lit(project.name), pl.lit("software"), pl.lit(lead.name),
        pl.lit(lead.account_id), blank, pl.col("priority"),
        pl.when(pl.col("resolved_at").is_not_null()).then(pl.lit("Done")).otherwise(blank),
        pl.col("assignee_login").replace_strict(names, default=""), pl.col("assignee_login").replace_strict(accounts, default=""),
        pl.col("reporter_login").replace_strict(names, default=""), pl.col("reporter_login").replace_strict(accounts, default=""),
        pl.col("reporter_login").replace_strict(names, default=""), pl.col("reporter_login").replace_strict(accounts, default=""),
        pl.when(pl.col("defect") == "missing_required_field").then(blank).otherwise(_fmt("created_at", _JIRA_CSV_TS)),
        _fmt("updated_at", _JIRA_CSV_TS), blank, resolved.dt.strftime(_JIRA_CSV_TS).fill_null(""),
        pl.col("due_at").dt.strftime("%d/%b/%y 12:00 AM").fill_null(""), pl.lit("0"),
        _description(pl.col("description_length"), pl.col("number") % 89),
        blank, pl.col("reporter_login").replace_strict(names, default=""), blank, blank,
        pl.col("reporter_login").replace_strict(accounts, default=""), blank, blank,
        (pl.col("original_estimate_h") * 3600).cast(pl.Int64).cast(pl.String).fill_null(""),
        pl.when(pl.col("resolved_at").is_null()).then((pl.col("original_estimate_h") * 3600).cast(pl.Int64).cast(pl.String)).otherwise(pl.lit("0")).fill_null(""),
        (pl.col("time_spent_h") * 3600).cast(pl.Int64).cast(pl.String).fill_null(""),
        blank, (pl.col("original_estimate_h") * 3600).cast(pl.Int64).cast(pl.String).fill_null(""), blank,
        (pl.col("time_spent_h") * 3600).cast(pl.Int64).cast(pl.String).fill_null(""), blank, blank, blank, blank,
        pl.concat_str([pl.lit("0|i0"), pl.col("number").cast(pl.String), pl.lit(":")]),
        pl.concat_str([pl.lit(project.key + " Sprint "), ((pl.col("created_at").dt.epoch("d") - 19967) // 14).cast(pl.String)]),
        blank, pl.col("story_points").cast(pl.String).fill_null(""), blank, blank, blank,
        comment(0), comment(1), comment(2), category, last_change.dt.strftime(_JIRA_CSV_TS),
    ]  # fmt: skip
    frame = t.select([c.alias(f"c{i}") for i, c in enumerate(cols)])
    path = out / f"{project.key}{tag}-all-fields.csv"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(_JIRA_CSV_HEADER)
    with path.open("wb") as fh:
        fh.write(buffer.getvalue().encode("utf-8"))
        frame.write_csv(fh, include_header=False)
    return [path]
