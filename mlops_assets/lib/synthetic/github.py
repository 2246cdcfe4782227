"""GitHub: issue list pages (newest first) with pull requests mixed in."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from mlops_assets.lib.synthetic.common import _description, _fmt, _lookup, _q, _render, _write_pages
from mlops_assets.lib.synthetic.truth import _GITHUB_PRIORITY, _GITHUB_TYPE, _ts_series
from mlops_assets.lib.synthetic.world import _LABELS, DAY, MAIN_START, PAGE_SIZE, US, Person, Project, _us

_GH_TS = "%Y-%m-%dT%H:%M:%SZ"

_GH_LABEL_COLORS = ("d73a4a", "a2eeef", "0e8a16", "fbca04", "5319e7", "1d76db", "b60205", "c5def5")


def _gh_user(login: str, uid: int) -> str:
    api = f"https://api.github.com/users/{login}"
    return json.dumps(
        {
            "login": login, "id": uid, "node_id": f"MDQ6VXNlcj{uid}", "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
            "gravatar_id": "", "url": api, "html_url": f"https://github.com/{login}", "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}", "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}", "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs", "repos_url": f"{api}/repos", "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events", "type": "User", "user_view_type": "public", "site_admin": False,
        },
        separators=(",", ":"),
    )  # fmt: skip


def _gh_labels(repo: str, names: list[str]) -> dict[str, str]:
    return {
        name: json.dumps(
            {"id": 5000000 + i, "node_id": f"LA_kwDOB{i:06d}", "url": f"https://api.github.com/repos/{repo}/labels/{name.replace(' ', '%20').replace(':', '%3A')}",
             "name": name, "color": _GH_LABEL_COLORS[i % len(_GH_LABEL_COLORS)], "default": name in ("bug", "enhancement"), "description": None},
            separators=(",", ":"),
        )
        for i, name in enumerate(names)
    }  # fmt: skip


def _write_github(
    t: pl.DataFrame,
    project: Project,
    project_id: int,
    people: dict[str, Person],
    export: int,
    out: Path,
    tag: str,
    duplicate: bool,
) -> tuple[list[Path], int]:
    repo = project.key
    api = f"https://api.github.com/repos/{repo}"
    uid = {login: 1_000_000 + p.index * 7 for login, p in people.items()}
    users = {login: _gh_user(login, uid[login]) for login in people}
    label_names = list(dict.fromkeys([*_GITHUB_TYPE, *_GITHUB_PRIORITY, "in progress", *_LABELS]))
    labels = _gh_labels(repo, label_names)
    creator = users[min(people.values(), key=lambda p: p.index).login]

    # milestones: one every four weeks, due the Wednesday it ships
    milestones: dict[str, str] = {}
    counts = (
        t.filter(pl.col("release_index").is_not_null())
        .group_by("release_index")
        .agg(
            pl.col("resolved_at").is_not_null().sum().alias("closed"),
            pl.col("resolved_at").is_null().sum().alias("open"),
        )
    )
    anchor = _us(MAIN_START) // DAY + 2
    for idx, closed, opened in counts.iter_rows():
        due = (anchor + idx * 28) * DAY
        due_s = datetime.fromtimestamp(due // US, tz=UTC)
        milestones[str(idx)] = json.dumps(
            {"url": f"{api}/milestones/{idx}", "html_url": f"https://github.com/{repo}/milestone/{idx}",
             "labels_url": f"{api}/milestones/{idx}/labels", "id": 9_000_000 + project_id * 10_000 + idx,
             "node_id": f"MI_kwDOA{idx:05d}", "number": idx, "title": f"v2.{idx}", "description": "", "creator": None,
             "open_issues": opened, "closed_issues": closed, "state": "closed" if due < export and opened == 0 else "open",
             "created_at": datetime.fromtimestamp(due // US - 35 * 86400, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "updated_at": due_s.strftime("%Y-%m-%dT%H:%M:%SZ"), "due_on": due_s.strftime("%Y-%m-%dT07:00:00Z"),
             "closed_at": due_s.strftime("%Y-%m-%dT%H:%M:%SZ") if due < export and opened == 0 else None},
            separators=(",", ":"),
        ).replace('"creator":null', '"creator":' + creator)  # fmt: skip

    common = (
        '{"url":"'
        + api
        + '/issues/@@number@@","repository_url":"'
        + api
        + '","labels_url":"'
        + api
        + '/issues/@@number@@/labels{/name}",'
        '"comments_url":"'
        + api
        + '/issues/@@number@@/comments","events_url":"'
        + api
        + '/issues/@@number@@/events",'
        '"html_url":"https://github.com/'
        + repo
        + '/@@_kind@@/@@number@@","id":@@_id@@,"node_id":"I_kwDOHh@@_id@@","number":@@number@@,'
        '"title":@@_title@@,"user":@@_user@@,"labels":[@@_labels@@],"state":"@@_state@@","locked":false,"assignee":@@_assignee@@,'
        '"assignees":@@_assignees@@,"milestone":@@_milestone@@,"comments":@@n_comments@@,"created_at":@@_created@@,'
        '"updated_at":"@@_updated@@","closed_at":@@_closed@@,"author_association":"MEMBER","active_lock_reason":null,'
    )
    tail = (
        '"body":@@_body@@,"reactions":{"url":"'
        + api
        + '/issues/@@number@@/reactions","total_count":0,"+1":0,"-1":0,"laugh":0,'
        '"hooray":0,"confused":0,"heart":0,"rocket":0,"eyes":0},"timeline_url":"'
        + api
        + '/issues/@@number@@/timeline",'
        '"performed_via_github_app":null,"state_reason":@@_reason@@}'
    )
    issue_tpl = common + tail + ","
    pr_tpl = (
        common
        + (
            '"draft":false,"pull_request":{"url":"'
            + api
            + '/pulls/@@number@@","html_url":"https://github.com/'
            + repo
            + '/pull/@@number@@",'
            '"diff_url":"https://github.com/'
            + repo
            + '/pull/@@number@@.diff","patch_url":"https://github.com/'
            + repo
            + '/pull/@@number@@.patch",'
            '"merged_at":@@_closed@@},'
        )
        + tail
        + ","
    )
    closed = (
        pl.when(pl.col("defect") == "resolved_before_created")
        .then(pl.col("created_at") - pl.duration(days=2, hours=3))
        .otherwise(pl.col("resolved_at"))
    )
    issues = t.with_columns(
        pl.lit("issues").alias("_kind"),
        (pl.col("number") + project_id * 10_000_000 + 2_000_000_000).alias("_id"),
        _q(pl.col("title")).alias("_title"),
        _lookup("reporter_login", users).alias("_user"),
        pl.col("labels").str.split(",").list.eval(pl.element().replace_strict(labels, default=None)).list.drop_nulls().list.join(",").alias("_labels"),
        pl.when(pl.col("resolved_at").is_null()).then(pl.lit("open")).otherwise(pl.lit("closed")).alias("_state"),
        _lookup("assignee_login", users).alias("_assignee"),
        pl.when(pl.col("assignee_login").is_null()).then(pl.lit("[]")).otherwise(
            pl.concat_str([pl.lit("["), _lookup("assignee_login", users), pl.lit("]")])).alias("_assignees"),
        pl.col("release_index").cast(pl.String).replace_strict(milestones, default="null").alias("_milestone"),
        pl.when(pl.col("defect") == "missing_required_field").then(pl.lit("null")).otherwise(_q(_fmt("created_at", _GH_TS))).alias("_created"),
        _fmt("updated_at", _GH_TS).alias("_updated"),
        _q(closed.dt.strftime(_GH_TS)).alias("_closed"),
        pl.when(pl.col("description_length") == 0).then(pl.lit("null"))
        .otherwise(_q(_description(pl.col("description_length"), pl.col("number") % 71))).alias("_body"),
        pl.when(pl.col("resolved_at").is_null()).then(pl.lit("null")).otherwise(pl.lit('"completed"')).alias("_reason"),
    )  # fmt: skip
    rendered_issues = issues.select(pl.col("number"), _render(issue_tpl).alias("r"))

    # pull requests take the numbers the issues left free
    used = t["number"].to_numpy()
    lo = used.min() if len(used) else 1
    hi = used.max() if len(used) else 0
    free = np.setdiff1d(np.arange(lo, hi + 1), used)
    rendered = rendered_issues
    if len(free):
        pos = np.clip(np.searchsorted(used, free) - 1, 0, len(used) - 1)
        issue_created = t["created_at"].dt.epoch("us").to_numpy()
        pr_created = issue_created[pos] + 3_600 * US
        rng = np.random.default_rng(int(free[0]) * 31 + project_id)
        merged = pr_created + (np.exp(rng.normal(0.0, 0.9, len(free))) * DAY).astype(np.int64)
        pr_logins = np.array(sorted(people), dtype=object)[rng.integers(0, len(people), len(free))]
        prs = pl.DataFrame({"number": free, "n_comments": rng.poisson(2.0, len(free)), "login": pr_logins.tolist()}).with_columns(
            _ts_series("created_at", pr_created), _ts_series("merged", np.where(merged < export, merged, -1)),
        ).with_columns(
            pl.lit("pull").alias("_kind"),
            (pl.col("number") + project_id * 10_000_000 + 3_000_000_000).alias("_id"),
            _q(pl.concat_str([pl.lit("Fix #"), (pl.col("number") - 1).cast(pl.String)])).alias("_title"),
            _lookup("login", users).alias("_user"), pl.lit("").alias("_labels"),
            pl.when(pl.col("merged").is_null()).then(pl.lit("open")).otherwise(pl.lit("closed")).alias("_state"),
            pl.lit("null").alias("_assignee"), pl.lit("[]").alias("_assignees"), pl.lit("null").alias("_milestone"),
            _q(_fmt("created_at", _GH_TS)).alias("_created"),
            pl.coalesce(pl.col("merged"), pl.col("created_at")).dt.strftime(_GH_TS).alias("_updated"),
            _q(_fmt("merged", _GH_TS)).alias("_closed"), pl.lit('"Closes the issue above."').alias("_body"),
            pl.when(pl.col("merged").is_null()).then(pl.lit("null")).otherwise(pl.lit('"completed"')).alias("_reason"),
        )  # fmt: skip
        rendered = pl.concat([rendered_issues, prs.select(pl.col("number"), _render(pr_tpl).alias("r"))])
    # the API lists newest first
    rendered = rendered.sort("number", descending=True)["r"]
    stem = f"{repo.replace('/', '-')}{tag}-issues-page"
    paths = _write_pages(rendered, out, stem, PAGE_SIZE, lambda start, total: ("[", "]"),
                         PAGE_SIZE - 1 if duplicate else None)  # fmt: skip
    return paths, len(free)
