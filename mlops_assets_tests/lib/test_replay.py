"""Replaying the real exports: the real parsers read every file, every record is new, dates and sizes hold."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from mlops_assets import cli
from mlops_assets.lib import ingestion, replay
from mlops_assets.lib.replay import jira as replay_jira
from mlops_assets.lib.warehouse import Warehouse

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ISSUES = DATA / "jira-apache-ase2015" / "issues"
pytestmark = pytest.mark.skipif(
    not ISSUES.is_dir(), reason=f"the real data folder {DATA} is absent (it is not part of the repository)"
)
N_TASKS = 200  # 74 Jira issues (222 files), 16 Jira CSV rows, 40 GitHub issues, 30 Asana, 20 Trello, 20 CSV


def _ts(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


@pytest.fixture(scope="module")
def landed(tmp_path_factory) -> tuple[Path, dict, Warehouse]:
    out = tmp_path_factory.mktemp("like") / "landing"
    summary = replay.generate_like(DATA, out, N_TASKS, seed=11)
    wh = Warehouse(out.parent / "warehouse.duckdb")
    reports = {source: ingestion.ingest_source(wh, out, source) for source in ingestion.SOURCES}
    return out, {"summary": summary, "reports": reports}, wh


def test_the_real_parsers_read_every_replayed_file_and_find_every_task(landed):
    out, info, wh = landed
    counts = replay.task_counts(N_TASKS)
    assert sum(counts.values()) == N_TASKS
    for source, report in info["reports"].items():
        assert report.files_unreadable == 0, (source, report.messages)
        assert report.rejects == 0, (source, report.messages)
    tasks = {s: r.records_new["tasks"] for s, r in info["reports"].items()}
    assert tasks == {"jira": counts["jira"] + counts["jira_csv"], "github": counts["github"],
                     "asana": counts["asana"], "trello": counts["trello"], "csv": counts["csv"]}  # fmt: skip
    assert {s: e["tasks"] for s, e in info["summary"]["sources"].items()} == counts
    # One file per issue, as the real folder: the issue, its changelog and its comments.
    assert len(list((out / "jira" / "issues").glob("*.json"))) == 3 * counts["jira"]
    assert (
        info["reports"]["jira"].records_new["comments"] > 0
        and info["reports"]["jira"].records_new["events"] > 0
    )


def test_every_task_is_new_and_distinct(landed):
    _, _, wh = landed
    ids = [
        r[0] for s in ingestion.SOURCES for r in wh.query(f"SELECT task_id FROM raw.{s}_tasks").iter_rows()
    ]
    assert len(ids) == len(set(ids)) == N_TASKS
    real_keys = {f"jira:{p.stem}" for p in ISSUES.glob("*.json") if not p.stem.endswith(("_CL", "_Comment"))}
    real_cards = {
        c["id"] for c in json.loads(next((DATA / "exports" / "trello").glob("*.json")).read_text())["cards"]
    }
    assert not real_keys & set(ids)
    assert not any(i.startswith("github:matomo-org/matomo#") for i in ids)
    assert not {f"trello:{c}" for c in real_cards} & set(ids)
    assert not any(i.startswith(("jira:TES-", "csv:jira-export:TES-")) for i in ids)
    assert not any(i in {f"asana:{n}" for n in range(1234, 1245)} for i in ids)


def test_dates_move_by_whole_days_keeping_each_issue_consistent_and_stay_in_the_past(landed):
    out, _, wh = landed
    latest = max(r[0] for s in ingestion.SOURCES
                 for r in wh.query(f"SELECT max(greatest(created_at, updated_at, resolved_at)) FROM raw.{s}_tasks").iter_rows())  # fmt: skip
    assert latest < datetime.fromisoformat("2026-12-01T00:00:00+00:00")
    for path in sorted((out / "jira" / "issues").glob("*_CL.json"))[:40]:
        new = json.loads(path.read_bytes().decode("latin-1"))
        project, number = new["key"].rsplit("-", 1)
        real = json.loads((ISSUES / f"{project[:-4]}-{number}_CL.json").read_bytes().decode("latin-1"))
        nf, rf = new["fields"], real["fields"]
        shift = _ts(nf["created"]) - _ts(rf["created"])
        assert shift.seconds == 0 and shift.microseconds == 0  # whole days
        for field in ("updated", "resolutiondate"):
            if rf[field]:
                assert _ts(nf[field]) - _ts(rf[field]) == shift
        for new_h, real_h in zip(new["changelog"]["histories"], real["changelog"]["histories"], strict=True):
            assert _ts(new_h["created"]) - _ts(real_h["created"]) == shift
            assert new_h["id"] != real_h["id"]
        assert nf["project"]["key"] == project and new["id"] != real["id"]


def test_each_issue_keeps_the_size_of_the_real_one(landed):
    out, _, _ = landed
    t = replay.load_templates(DATA.resolve())["jira"]
    folder = out / "jira" / "issues"
    for path in sorted(folder.glob("*_CL.json")):
        key = path.name[: -len("_CL.json")]
        size = sum((folder / f"{key}{s}.json").stat().st_size for s in ("", "_CL", "_Comment"))
        project, number = key.rsplit("-", 1)
        real = t.sizes[t.keys.index(f"{project[:-4]}-{number}")]
        # Keys gain four letters, ids a digit or three, people other names: within 6% of the real size.
        assert abs(size - real) < 0.06 * real, key
        assert min(t.sizes) * 0.94 <= size <= max(t.sizes) * 1.06


def test_latin1_files_stay_latin1():
    t = replay.load_templates(DATA.resolve())["jira"]
    latin = [i for i, issue in enumerate(t.issues) if any(x.encoding == "latin-1" for x in issue)]
    assert latin
    maps = replay_jira.round_maps(t, 3, 5)
    for template in t.issues[latin[0]]:
        data = template.render(maps).encode(template.encoding)
        if template.encoding == "latin-1":
            with pytest.raises(UnicodeDecodeError):
                data.decode("utf-8")


def test_search_pages_hold_the_issues_with_their_changelog_and_comments(tmp_path):
    summary = replay.generate_like(DATA, tmp_path / "landing", 400, seed=5, jira_layout="pages")
    pages = sorted((tmp_path / "landing" / "jira" / "search").glob("*.json"))
    assert [json.loads(p.read_text())["startAt"] for p in pages] == [0, 100]
    n_jira = summary["sources"]["jira"]["tasks"]
    wh = Warehouse(tmp_path / "wh.duckdb")
    report = ingestion.ingest_source(wh, tmp_path / "landing", "jira")
    assert report.files_unreadable == 0 and report.rejects == 0
    assert report.records_new["tasks"] == n_jira + summary["sources"]["jira_csv"]["tasks"]
    assert report.records_new["events"] > 0 and report.records_new["comments"] > 0
    shapes = {r[0] for r in wh.query("SELECT shape FROM raw.ingested_files").iter_rows()}
    assert "jira-search-page" in shapes


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_same_seed_writes_the_same_bytes_and_another_seed_other_records(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        replay.generate_like(DATA, tmp_path / name, 60, seed=seed)
    a, b, c = _tree(tmp_path / "a"), _tree(tmp_path / "b"), _tree(tmp_path / "c")
    assert a == b
    jira_a = {k for k in a if k.startswith("jira/issues/")}
    jira_c = {k for k in c if k.startswith("jira/issues/")}
    assert len(jira_a) == len(jira_c) and not jira_a & jira_c
    # Every issue file differs, but for the empty comment pages ("total": 0), which hold no key at all.
    issues_a = {v for k, v in a.items() if k.startswith("jira/issues/") and b'"total": 0' not in v}
    assert issues_a and not issues_a & set(c.values())


def test_a_wrong_like_folder_names_what_was_expected(tmp_path, capsys):
    with pytest.raises(replay.LikeDataError, match="jira-apache-ase2015/issues"):
        replay.generate_like(tmp_path, tmp_path / "out", 10)
    assert (
        cli.main(
            ["generate", "--like", str(tmp_path / "nowhere"), "--tasks", "10", "--out", str(tmp_path / "o")]
        )
        == 1
    )
    assert "no such folder" in capsys.readouterr().err
