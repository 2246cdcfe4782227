"""The synthetic sample: deterministic, realistic enough to learn from, and in each tool's native shape."""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from mlops_assets import cli
from mlops_assets.lib import synthetic
from mlops_assets.lib.sources.base import TASK_COLUMNS
from mlops_assets_tests.conftest import shared_data

N = 1500


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("landing")
    return out, synthetic.generate(out, n_tasks=N, seed=7)


@pytest.fixture(scope="module")
def truth() -> pl.DataFrame:
    return synthetic.synthetic_tasks(N, seed=7)


@pytest.fixture(scope="module")
def big() -> pl.DataFrame:
    return synthetic.synthetic_tasks(40_000, seed=7)


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_writes_byte_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    synthetic.generate(tmp_path / "a", n_tasks=400, seed=3)
    synthetic.generate(tmp_path / "b", n_tasks=400, seed=3)
    synthetic.generate(tmp_path / "c", n_tasks=400, seed=4)
    a, b, c = (_digests(tmp_path / x) for x in "abc")
    assert a == b
    assert a != c


def test_truth_table_has_the_clean_task_columns_and_plausible_proportions(truth: pl.DataFrame) -> None:
    missing = set(TASK_COLUMNS) - set(truth.columns)
    assert not missing
    assert truth["assignee_id"].is_null().to_list() == truth["assignee_login"].is_null().to_list()
    assert truth["task_id"].n_unique() == N
    assert truth["created_at"].min() >= synthetic.MAIN_START
    assert truth["created_at"].max() <= synthetic.MAIN_EXPORT
    assert 0.12 <= truth["resolved_at"].is_null().mean() <= 0.28  # still open at the export
    assert truth["deadline_at"].is_not_null().mean() >= 0.65
    assert truth["created_at"].dt.weekday().is_in([6, 7]).mean() < 0.05  # weekends are quiet
    assert set(truth["source"].unique()) == {"jira", "github", "asana", "trello", "csv"}
    assert truth.group_by("team").agg(pl.col("assignee_login").n_unique())["assignee_login"].min() >= 5
    done = truth.filter(pl.col("resolved_at").is_not_null() & pl.col("defect").is_null())
    assert (done["resolved_at"] > done["created_at"]).all()
    assert 0.001 <= truth["defect"].is_not_null().mean() <= 0.01


def _late_rate(df: pl.DataFrame, by: str) -> list[float]:
    return (
        df.filter(pl.col("is_late").is_not_null())
        .group_by(by)
        .agg(pl.col("is_late").mean())
        .sort(by)["is_late"]
        .to_list()
    )


def test_lateness_and_cycle_time_follow_creation_time_drivers(big: pl.DataFrame) -> None:
    late_by_priority = _late_rate(big, "priority_ordinal")
    assert late_by_priority == sorted(late_by_priority, reverse=True)  # urgent work is late less often
    loaded = big.filter(pl.col("workload_at_creation").is_not_null()).with_columns(
        pl.col("workload_at_creation")
        .rank("ordinal")
        .truediv(pl.len())
        .mul(4)
        .floor()
        .clip(0, 3)
        .alias("load_q")
    )
    late_by_load = _late_rate(loaded, "load_q")
    assert late_by_load == sorted(late_by_load)  # more open work at creation, more lateness
    assert late_by_load[-1] > 1.5 * late_by_load[0]
    cycle = big.group_by("type_canonical").agg(pl.col("cycle_time_days").median()).to_dict(as_series=False)
    median = dict(zip(cycle["type_canonical"], cycle["cycle_time_days"], strict=True))
    assert median["bug"] < median["story"] < median["epic"]
    month = big.with_columns(pl.col("created_at").dt.month().alias("m")).group_by(pl.col("m") == 12).agg(
        pl.col("cycle_time_days").median()).sort("m")["cycle_time_days"].to_list()  # fmt: skip
    assert month[1] > 1.2 * month[0]  # December is slow


def test_the_planted_workload_reaches_the_assignee_features(truth: pl.DataFrame) -> None:
    """Lateness is driven by the assignee's open workload; the features see the same number."""
    from mlops_assets.lib import features

    both = features.task_features(truth).join(truth.select("task_id", "workload_at_creation"), on="task_id")
    assigned = both.filter(pl.col("workload_at_creation").is_not_null())
    assert assigned.height > 0.8 * truth.height
    assert assigned["assignee_open_tasks"].null_count() == 0
    assert (assigned["assignee_open_tasks"] == assigned["workload_at_creation"]).mean() > 0.99
    assert assigned["assignee_open_tasks"].max() >= 5


def test_drift_batch_is_shifted_and_its_keys_continue_after_the_main_batch() -> None:
    main = synthetic.synthetic_tasks(4000, seed=7)
    drift = synthetic.synthetic_tasks(4000, seed=7, drift=True, main_tasks=4000)
    assert drift["created_at"].min() >= synthetic.DRIFT_START
    assert set(drift["team"].unique()) - set(main["team"].unique()) == {"growth"}
    assert "GROW" in set(drift["project"]) and "GROW" not in set(main["project"])
    new_people = set(drift.filter(pl.col("team") == "growth")["assignee_login"].drop_nulls())
    assert new_people and not new_people & set(main["assignee_login"].drop_nulls())
    urgent = lambda df: df["priority_ordinal"].is_in([4, 5]).mean()  # noqa: E731
    assert urgent(drift) > urgent(main) + 0.15

    def done_in_two_weeks(df: pl.DataFrame, export: object) -> float:
        # like for like (same teams, medium priority, old enough to have had two weeks)
        old = df.filter(pl.col("team") != "growth", pl.col("priority_canonical") == "medium",
                        pl.col("created_at") < pl.lit(export) - pl.duration(days=21))  # fmt: skip
        return (old["cycle_time_days"] <= 14).fill_null(False).mean()

    assert (
        done_in_two_weeks(drift, synthetic.DRIFT_EXPORT)
        < done_in_two_weeks(main, synthetic.MAIN_EXPORT) - 0.05
    )
    assert drift["is_late"].mean() > main["is_late"].mean() + 0.02
    assert not set(drift["task_id"]) & set(main["task_id"])
    for project in ("PLAT", "acme/mobile-app", "helpdesk", "Campaigns"):
        assert (
            drift.filter(pl.col("project") == project)["number"].min()
            > main.filter(pl.col("project") == project)["number"].max()
        )


def test_drift_files_sit_beside_the_main_batch(tmp_path: Path) -> None:
    main = synthetic.generate(tmp_path, n_tasks=300, seed=7)
    drift = synthetic.generate(tmp_path, n_tasks=200, seed=7, drift=True, main_tasks=300)
    files = lambda s: {f for e in s["sources"].values() for f in e["files"]}  # noqa: E731
    assert not files(main) & files(drift)
    assert all("drift" in Path(f).name for f in files(drift))
    assert sum(1 for p in tmp_path.rglob("*") if p.is_file()) == len(files(main)) + len(files(drift))


def test_jira_search_pages_look_like_the_rest_api(landing: tuple[Path, dict]) -> None:
    out, summary = landing
    pages = sorted((out / "jira").glob("PLAT-search-*.json"))
    issues = []
    for page in pages:
        body = json.loads(page.read_text(encoding="utf-8"))
        assert {"expand", "startAt", "maxResults", "total", "issues"} <= set(body)
        assert body["maxResults"] == 100 and len(body["issues"]) <= 100
        issues += body["issues"]
    assert body["total"] == len(issues)
    issue = next(i for i in issues if i["fields"]["resolutiondate"] and i["changelog"]["histories"])
    fields = issue["fields"]
    assert fields["priority"]["name"] in ("Blocker", "Critical", "Major", "Minor", "Trivial")
    assert fields["status"]["statusCategory"]["key"] == "done"
    assert len(fields["created"]) == len("2012-07-12T18:30:05.123+0000") and fields["created"].endswith(
        "+0000"
    )
    assert issue["changelog"]["histories"][-1]["items"][0]["field"] == "status"
    assert any(i["fields"]["fixVersions"] and i["fields"]["fixVersions"][0]["releaseDate"] for i in issues)
    keys = [i["key"] for i in issues]
    assert len(keys) - len(set(keys)) == 1  # one issue repeated across a page boundary
    assert summary["sources"]["jira"]["duplicates"] == 1


def test_jira_csv_has_the_all_fields_header_of_a_real_export(landing: tuple[Path, dict]) -> None:
    out, _ = landing
    with (out / "jira" / "OPS-all-fields.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    with shared_data("exports", "jira-csv", "testautogen-all-fields.csv").open(
        encoding="utf-8-sig", newline=""
    ) as fh:
        real_header = next(csv.reader(fh))
    assert rows[0] == real_header
    created = rows[1][rows[0].index("Created")]
    assert created[2] == "/" and created[6] == "/" and created.endswith(("AM", "PM"))  # 22/Sep/25 9:26 AM
    assert all(len(row) == len(real_header) for row in rows)


def test_github_pages_are_issue_lists_with_pull_requests_mixed_in(landing: tuple[Path, dict]) -> None:
    out, summary = landing
    items = []
    for page in sorted((out / "github").glob("*.json")):
        body = json.loads(page.read_text(encoding="utf-8"))
        assert isinstance(body, list) and len(body) <= 100
        items += body
    prs = [i for i in items if "pull_request" in i]
    assert len(prs) == summary["sources"]["github"]["pull_requests"] > 0
    issue = next(i for i in items if "pull_request" not in i and i["milestone"])
    assert issue["milestone"]["due_on"].endswith("T07:00:00Z")
    assert {"url", "number", "user", "labels", "state", "assignee", "created_at", "closed_at"} <= set(issue)
    assert any(lab["name"].startswith("priority: ") for i in items for lab in i["labels"])


def test_asana_trello_and_csv_files_have_their_tools_layout(landing: tuple[Path, dict]) -> None:
    out, _ = landing
    with shared_data("exports", "asana", "format-sample.csv").open(encoding="utf-8-sig", newline="") as fh:
        asana_header = next(csv.reader(fh))
    with (out / "asana" / "website-relaunch.csv").open(encoding="utf-8", newline="") as fh:
        assert next(csv.reader(fh)) == asana_header
    board = json.loads((out / "trello" / "campaigns-board.json").read_text(encoding="utf-8"))
    assert {"cards", "lists", "members", "labels", "actions"} <= set(board)
    assert [lst["name"] for lst in board["lists"]] == ["Backlog", "To Do", "Doing", "Review", "Done"]
    kinds = {a["type"] for a in board["actions"]}
    assert kinds == {"createCard", "updateCard"}
    assert all(
        "listBefore" in a["data"] and "listAfter" in a["data"]
        for a in board["actions"]
        if a["type"] == "updateCard"
    )
    assert any(c["due"] and c["dueComplete"] for c in board["cards"])
    mapping = yaml.safe_load((out / "csv" / "helpdesk.yaml").read_text(encoding="utf-8"))
    assert {"key", "created_at"} <= set(mapping) and mapping["source_name"] == "helpdesk"
    header = (out / "csv" / "helpdesk.csv").read_text(encoding="utf-8").splitlines()[0].split(";")
    assert mapping["key"]["column"] in header and mapping["created_at"]["column"] in header


PARSERS = {"jira": "jira", "github": "github", "asana": "asana", "trello": "trello", "csv": "csv_mapped"}


@pytest.mark.parametrize("source", list(PARSERS))
def test_each_parser_reads_every_written_task_and_rejects_the_broken_ones(
    source: str, landing: tuple[Path, dict], truth: pl.DataFrame
) -> None:
    module = importlib.import_module(f"mlops_assets.lib.sources.{PARSERS[source]}")
    out, summary = landing
    parsed, rejects = [], []
    for path in sorted((out / source).iterdir()):
        if path.suffix in (".yaml", ".yml"):
            continue
        result = module.parse(path)
        parsed += result.records["tasks"]
        rejects += result.rejects
    mine = truth.filter(pl.col("source") == source)
    broken = mine.filter(pl.col("defect") == "missing_required_field")
    entry = summary["sources"][source]
    assert len(rejects) == len(broken)
    assert len(parsed) == entry["records"] - len(broken)  # records = tasks + deliberate duplicates
    assert {row["task_id"] for row in parsed} == set(mine["task_id"]) - set(broken["task_id"])
    # the truth table names people with the same pseudonymous ids, so history features built on it
    # (assignee open workload, late rate) are the ones clean.tasks gives
    people = {r["task_id"]: (r["assignee_id"], r["reporter_id"]) for r in parsed}
    expected = {t["task_id"]: (t["assignee_id"], t["reporter_id"]) for t in mine.iter_rows(named=True)}
    assert {k: expected[k] for k in people} == people
    assert sum(a is not None for a, _ in people.values()) > 0.8 * len(people)
    # impossible dates are parsed as written; the clean layer quarantines them
    impossible = set(mine.filter(pl.col("defect") == "resolved_before_created")["task_id"])
    backwards = {
        r["task_id"]
        for r in parsed
        if r["resolved_at"] and r["created_at"] and r["resolved_at"] < r["created_at"]
    }
    assert backwards == impossible


def test_parsed_values_match_the_truth(landing: tuple[Path, dict], truth: pl.DataFrame) -> None:
    from mlops_assets.lib.sources import jira

    out, _ = landing
    rows = [
        r for p in sorted((out / "jira").glob("PAY-search-*.json")) for r in jira.parse(p).records["tasks"]
    ]
    got = {r["task_id"]: r for r in rows}
    for t in truth.filter(pl.col("project") == "PAY", pl.col("defect").is_null()).iter_rows(named=True):
        r = got[t["task_id"]]
        assert (r["priority"], r["status_category"], r["story_points"]) == (
            t["priority"],
            t["status_category"],
            t["story_points"],
        )
        assert abs((r["created_at"] - t["created_at"]).total_seconds()) < 0.001
        assert (r["deadline_at"] is None) == (t["deadline_at"] is None)
        if t["deadline_at"] is not None:
            assert r["deadline_at"].date() == t["deadline_at"].date()


def test_cli_generates_once_and_if_empty_leaves_a_filled_landing_zone_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "landing"
    assert cli.main(["generate", "--out", str(out), "--tasks", "300", "--if-empty"]) == 0
    first = _digests(out)
    assert first and "jira" in capsys.readouterr().out
    assert cli.main(["generate", "--out", str(out), "--tasks", "500", "--seed", "9", "--if-empty"]) == 0
    assert "nothing generated" in capsys.readouterr().out
    assert _digests(out) == first


def test_too_few_tasks_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="n_tasks must be at least 1"):
        synthetic.synthetic_tasks(0)
