"""Text as a signal (issue 13 item 4): do title and description help late_risk and cycle_time, measured?

On the same data and splits as scripts/asof_quality.py (the embedded sample, and the 501 real Apache Jira
issues of ../shared/data/jira-apache-ase2015 when present; ingestion and cleaning into a temporary
warehouse, ``features.task_snapshots``, ``splits.time_split`` by task and prediction time), each
snapshot model is trained three times with the same TrainConfig and seed:

- **none**: the features as today (every column of ``features.FEATURE_COLUMNS``);
- **title**: plus the title as known at the row's prediction time;
- **title+desc**: plus the title and the description as known at the row's prediction time,

the text through a scikit-learn ``TfidfVectorizer`` (word 1-2 grams, sublinear tf, min_df 2) and a
``TruncatedSVD`` to ``--components`` columns, both fit on the TRAIN split's texts only, appended as
numeric features. Nothing is downloaded (no embeddings, no pretrained vocabulary).

Where the text comes from, and leakage. ``clean.tasks.title`` is the *final* title; the description
does not survive cleaning (only ``description_length``): it lives in the raw record, the ``payload``
column of ``raw.<source>_tasks`` (Jira ``fields.description``, GitHub ``body``, Asana ``Notes``, Trello
``desc``, the CSV mapping's ``Description``), the version cleaning kept (joined on ``record_hash``). Both
are the text as last edited, which can postdate the prediction time. Jira changelogs record ``summary``
and ``description`` edits with the old text (``fromString``), but ingestion keeps only the changelog
fields of ``sources.jira.EVENT_FIELDS``, so this script reads those edits from the landing files and
rolls every edit after the row's ``predicted_at`` back: the text is the text as known at the prediction
time. The sample's changelogs edit neither field, so there its text is the same at every point.

Reported: test ROC-AUC (late_risk) and test MAE in days (cycle_time) on all test rows and on the
creation rows, each with a 95% interval, and the paired difference with text minus without (for MAE:
without minus with, so positive always means text helps) with a 95% interval from a paired bootstrap
that resamples test *tasks* (a task's rows together) and scores both models on the same resample.

    .venv/bin/python scripts/text_signal.py                 # sample 2,000 tasks + real Jira, ~5 min on 2 cores
    .venv/bin/python scripts/text_signal.py --no-write      # print only

Writes the ``text-signal`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import asof_quality  # noqa: E402  (the same ingestion + cleaning path and real-data location)

BOOTSTRAP = 1000
VARIANTS = ("none", "title", "title+desc")
MODELS = ("late_risk", "cycle_time")
# where each source's raw payload keeps the description (the sample's CSV mapping names it Description)
DESCRIPTION_KEYS = {"jira": ("fields", "description"), "github": ("body",), "asana": ("Notes",),
                    "trello": ("desc",), "csv": ("Description",)}  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Text as known at each row's prediction time
# ------------------------------------------------------------------------------------------------


def _flatten(value) -> str:
    """Plain text of a description: a string, or Atlassian Document Format (Jira v3) text nodes."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(filter(None, [value.get("text") if isinstance(value.get("text"), str) else "",
                                      *(_flatten(c) for c in value.get("content") or [])]))  # fmt: skip
    if isinstance(value, list):
        return " ".join(_flatten(v) for v in value)
    return str(value)


def raw_descriptions(work: Path, tasks) -> dict[str, str]:
    """task_id -> description of the raw record cleaning kept (``record_hash`` of clean.tasks)."""
    from mlops_assets.lib.warehouse import Warehouse

    wh = Warehouse(work / "wh.duckdb")
    kept = set(tasks["record_hash"].to_list())
    out: dict[str, str] = {}
    for source, path in DESCRIPTION_KEYS.items():
        if not wh.table_exists(f"raw.{source}_tasks"):
            continue
        for task_id, record_hash, payload in wh.query(
            f"SELECT task_id, record_hash, payload FROM raw.{source}_tasks"
        ).iter_rows():
            if record_hash not in kept or payload is None:
                continue
            value = json.loads(payload)
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            out[task_id] = _flatten(value)
    return out


def _read_json(path: Path):
    raw = path.read_bytes()
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return json.loads(raw.decode("latin-1"))  # 11 of the real files are Latin-1


def text_edits(landing: Path) -> dict[tuple[str, str], list[tuple[datetime, str]]]:
    """(task_id, "summary" | "description") -> [(changed_at, text before the edit)] from Jira changelogs."""
    edits: dict[tuple[str, str], list[tuple[datetime, str]]] = defaultdict(list)
    for path in sorted((landing / "jira").glob("*.json")):
        try:
            doc = _read_json(path)
        except ValueError:
            continue  # a broken file: ingestion quarantines it
        issues = doc.get("issues", [doc]) if isinstance(doc, dict) else doc if isinstance(doc, list) else []
        for issue in issues:
            if (
                not isinstance(issue, dict)
                or not isinstance(issue.get("changelog"), dict)
                or not issue.get("key")
            ):
                continue
            task_id = f"jira:{issue['key']}"
            for history in issue["changelog"].get("histories") or []:
                for item in history.get("items") or []:
                    field = item.get("fieldId") or item.get("field")
                    if field not in ("summary", "description"):
                        continue
                    at = datetime.strptime(history["created"], "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)
                    key = (task_id, field)
                    entry = (at, item.get("fromString") or "")
                    if entry not in edits[key]:  # the same issue may be in several files
                        edits[key].append(entry)
    return {k: sorted(v) for k, v in edits.items()}


def text_as_of(
    frame, final_title: dict[str, str], final_desc: dict[str, str], edits
) -> tuple[list[str], list[str]]:
    """Title and description of each row as known at its predicted_at (edits after it rolled back)."""
    titles, descs = [], []
    for task_id, at in frame.select("task_id", "predicted_at").iter_rows():
        for field, final, out in (("summary", final_title, titles), ("description", final_desc, descs)):
            text = final.get(task_id) or ""
            for changed_at, before in reversed(edits.get((task_id, field), [])):
                if changed_at <= at:
                    break
                text = before
            out.append(text)
    return titles, descs


def add_text_columns(parts: dict, texts: dict, components: int, seed: int) -> tuple[dict, list[str], dict]:
    """TF-IDF + TruncatedSVD fit on the train split's texts, applied to every split; returns (parts, cols, info)."""
    import polars as pl
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    train_texts = sorted(set(texts["train"]))
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=50_000,
                                 dtype=np.float32)  # fmt: skip
    matrix = vectorizer.fit_transform(train_texts)
    k = max(1, min(components, matrix.shape[1] - 1, matrix.shape[0] - 1))
    svd = TruncatedSVD(n_components=k, random_state=seed).fit(matrix)
    cols = [f"text_svd_{i:02d}" for i in range(k)]
    out = {}
    for name, frame in parts.items():
        values = svd.transform(vectorizer.transform(texts[name])) if frame.height else np.empty((0, k))
        out[name] = frame.with_columns([pl.Series(c, values[:, i]) for i, c in enumerate(cols)])
    info = {"vocabulary": len(vectorizer.vocabulary_), "components": k,
            "explained": float(svd.explained_variance_ratio_.sum()), "train_texts": len(train_texts)}  # fmt: skip
    return out, cols, info


# ------------------------------------------------------------------------------------------------
# Metrics with a paired, task-clustered bootstrap
# ------------------------------------------------------------------------------------------------


def _metric(kind: str, y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if kind == "binary":
        return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    return float(np.mean(np.abs(y - p)))


def paired(kind: str, task_ids: np.ndarray, y: np.ndarray, preds: dict[str, np.ndarray], seed: int) -> dict:
    """Each variant's metric with its 95% interval, and (variant - none) paired, resampling tasks."""
    _, inverse = np.unique(task_ids, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == t) for t in range(inverse.max() + 1)] if len(y) else []
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = defaultdict(list)
    sign = 1.0 if kind == "binary" else -1.0  # positive difference = text helps
    for _ in range(BOOTSTRAP):
        idx = np.concatenate([rows_of[t] for t in rng.integers(0, len(rows_of), len(rows_of))])
        values = {v: _metric(kind, y[idx], p[idx]) for v, p in preds.items()}
        if any(np.isnan(x) for x in values.values()):
            continue
        for v, x in values.items():
            samples[v].append(x)
            if v != "none":
                samples[f"diff:{v}"].append(sign * (x - values["none"]))
    out: dict = {"n": len(y), "tasks": len(rows_of)}
    point = {v: _metric(kind, y, p) for v, p in preds.items()}
    for v in preds:
        out[v] = (
            (point[v], *np.percentile(samples[v], [2.5, 97.5])) if samples[v] else (point[v], np.nan, np.nan)
        )
        if v != "none":
            d = samples[f"diff:{v}"]
            out[f"diff:{v}"] = (
                (sign * (point[v] - point["none"]), *np.percentile(d, [2.5, 97.5])) if d else None
            )
    return out


# ------------------------------------------------------------------------------------------------
# One dataset
# ------------------------------------------------------------------------------------------------


def measure(landing: Path, work: Path, config, components: int) -> dict:
    import polars as pl

    from mlops_assets.lib import snapshots, training
    from mlops_assets.lib import splits as splits_lib
    from mlops_assets.lib.gate import data_as_of

    started = time.perf_counter()
    tasks, events = asof_quality._clean(landing, work)
    final_desc = raw_descriptions(work, tasks)
    final_title = dict(
        zip(tasks["task_id"].to_list(), (t or "" for t in tasks["title"].to_list()), strict=True)
    )
    edits = text_edits(landing)
    as_of = data_as_of(tasks)
    snap = snapshots.task_snapshots(tasks, events, as_of)
    result: dict = {"models": {}, "text": {
        "tasks": tasks.height, "with_description": sum(1 for t in tasks["task_id"] if final_desc.get(t)),
        "title_edited": sum(1 for k in edits if k[1] == "summary"),
        "description_edited": sum(1 for k in edits if k[1] == "description")}}  # fmt: skip
    for name in MODELS:
        spec = training.MODEL_SPECS[name]
        parts = splits_lib.time_split(training.model_input(spec, tasks, snap, as_of))
        texts = {s: text_as_of(f, final_title, final_desc, edits) for s, f in parts.items()}
        # rows whose text at the prediction time differs from the final text (what a leak would have read)
        changed = sum(t != final_title.get(i, "") or d != final_desc.get(i, "")
                      for s, f in parts.items() for i, t, d in zip(f["task_id"], *texts[s], strict=True))  # fmt: skip
        test = parts["test"]
        y = training.original_scale(spec, test["target"].cast(pl.Float64).to_numpy())
        preds, info, seconds = {}, {}, {}
        for variant in VARIANTS:
            t0 = time.perf_counter()
            if variant == "none":
                vparts, vspec = parts, spec
            else:
                joined = {s: [a if variant == "title" else f"{a}\n{b}" for a, b in zip(*texts[s], strict=True)]
                          for s in parts}  # fmt: skip
                vparts, cols, info[variant] = add_text_columns(parts, joined, components, config.seed)
                vspec = training.ModelSpec(**{**spec.__dict__, "features": (*spec.feature_columns(), *cols)})
            trained = training.train_model(vspec, vparts, config)
            preds[variant] = trained.predict(vparts["test"])
            seconds[variant] = time.perf_counter() - t0
        task_ids = test["task_id"].to_numpy()
        creation = (test["point"] == "creation").to_numpy()
        result["models"][name] = {
            "rows": {s: f.height for s, f in parts.items()}, "tasks": {s: f["task_id"].n_unique() for s, f in parts.items()},
            "rows_text_changed": changed, "svd": info, "seconds": seconds,
            "all test rows": paired(spec.kind, task_ids, y, preds, config.seed),
            "creation rows": paired(spec.kind, task_ids[creation], y[creation],
                                    {v: p[creation] for v, p in preds.items()}, config.seed)}  # fmt: skip
    result["seconds"] = time.perf_counter() - started
    return result


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def _cell(v) -> str:
    return "n/a" if v is None or np.isnan(v[0]) else f"**{v[0]:.3f}** ({v[1]:.3f} to {v[2]:.3f})"


def _diff(v) -> str:
    if v is None or np.isnan(v[0]):
        return "n/a"
    sure = " excl. 0" if v[1] > 0 or v[2] < 0 else ""
    return f"**{v[0]:+.3f}** ({v[1]:+.3f} to {v[2]:+.3f}){sure}"


def decision(results: dict) -> tuple[bool, str]:
    real = next((r for d, r in results.items() if d.startswith("real")), None)
    if real is None:
        return False, "not judged: the real data is absent"
    gains = []
    for name, m in real["models"].items():
        for variant in VARIANTS[1:]:
            d = m["all test rows"].get(f"diff:{variant}")
            if d and d[1] > 0:
                gains.append(f"{name} {variant} {d[0]:+.3f} ({d[1]:+.3f} to {d[2]:+.3f})")
    if gains:
        return True, "real-data gain with an interval excluding 0: " + "; ".join(gains)
    return False, "no real-data paired difference (all test rows) is positive with an interval excluding 0"


def to_markdown(results: dict, command: str, config, components: int, load: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"Measured {now}; command: `{command}`; load average before the run {load} (2 shared cores); "
             f"TrainConfig(n_trials={config.n_trials}, seed={config.seed}, cv_folds={config.cv_folds}: CV skipped, "
             "it changes no model or test figure) for every model; text: TF-IDF (word 1-2 grams, min_df 2) + "
             f"TruncatedSVD to {components} columns, both fit on the train split only; text as known at each "
             f"row's prediction time. Intervals: 95%, {BOOTSTRAP} bootstrap resamples of the test *tasks*; "
             "*diff* is paired (same resample for both models), positive = text helps (ROC-AUC up, MAE down).", "",
             "| data | model | test rows | without text | + title | + title & description | diff + title | diff + title & description |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    notes = []
    for data, res in results.items():
        for name, m in res["models"].items():
            metric = "ROC-AUC" if name == "late_risk" else "MAE (days)"
            for subset in ("all test rows", "creation rows"):
                e = m[subset]
                lines.append(f"| {data} | {name} {metric} | {subset}: {e['n']:,} ({e['tasks']:,} tasks) | {_cell(e['none'])} | "
                             f"{_cell(e['title'])} | {_cell(e['title+desc'])} | {_diff(e.get('diff:title'))} | "
                             f"{_diff(e.get('diff:title+desc'))} |")  # fmt: skip
            svd = m["svd"].get("title+desc", {})
            notes.append(
                f"{data}, {name}: rows train / validation / test "
                f"{' / '.join(format(m['rows'][s], ',') for s in ('train', 'validation', 'test'))}; "
                f"{m['rows_text_changed']:,} rows' text at their prediction time differs from the final text; "
                f"title+desc vocabulary {svd.get('vocabulary', 0):,} from {svd.get('train_texts', 0):,} train "
                f"texts, SVD keeps {svd.get('explained', 0):.0%} of its variance; training "
                f"{' / '.join(f'{s:.0f}' for s in m['seconds'].values())} s (none / title / title+desc)"
            )
        t = res["text"]
        notes.append(
            f"{data}: {t['tasks']:,} tasks, {t['with_description']:,} with a description; "
            f"{t['title_edited']} titles and {t['description_edited']} descriptions edited in the changelog; "
            f"whole dataset {res['seconds']:.0f} s"
        )
    keep, reason = decision(results)
    lines += ["", *[f"- {n}" for n in notes], "", f"Decision by the rule (keep text only if the real-data paired "
              f"difference is positive with an interval excluding 0): **{'gain: report to the lead' if keep else 'not kept'}**, {reason}."]  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print, leave docs/BENCHMARKS.md alone")
    parser.add_argument("--tasks", type=int, default=2000, help="sample size (default 2,000)")
    parser.add_argument("--components", type=int, default=24, help="TruncatedSVD components (default 24)")
    parser.add_argument(
        "--trials", type=int, default=15, help="Optuna trials per model (default 15, as asof_quality.py)"
    )
    parser.add_argument("--only", choices=("sample", "real"), default=None, help="one dataset only")
    args = parser.parse_args()
    from mlops_assets.cli import main as cli
    from mlops_assets.devtools import bench
    from mlops_assets.lib import training

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    config = training.TrainConfig(n_trials=args.trials, cv_folds=1, seed=42)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="mlops-text-") as tmp:
        if args.only != "real":
            sample = Path(tmp) / "sample"
            cli(["generate", "--tasks", str(args.tasks), "--out", str(sample / "landing")])
            results[f"sample ({args.tasks:,} tasks)"] = measure(
                sample / "landing", sample, config, args.components
            )
        if args.only != "sample":
            if asof_quality.REAL_JIRA.exists():
                real = Path(tmp) / "apache"
                shutil.copytree(
                    asof_quality.REAL_JIRA, real / "landing" / "jira"
                )  # a temporary copy, never in the repo
                results["real Apache Jira (501 issues)"] = measure(
                    real / "landing", real, config, args.components
                )
            else:
                print(
                    f"real data {asof_quality.REAL_JIRA} is absent: only the sample is measured",
                    file=sys.stderr,
                )
    command = ".venv/bin/python scripts/text_signal.py" + "".join(
        f" {flag} {value}" for flag, value, default in (("--tasks", args.tasks, 2000), ("--components", args.components, 24),
                                                        ("--trials", args.trials, 15), ("--only", args.only, None))
        if value != default)  # fmt: skip
    md = to_markdown(results, command, config, args.components, load)
    print(md)
    if not args.no_write:
        bench.write_section(md, path=ROOT / "docs" / "BENCHMARKS.md", section="text-signal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
