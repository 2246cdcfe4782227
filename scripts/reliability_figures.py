"""Reliability figures for hostile input, the online service and security (issue 12, "The suite").

    .venv/bin/python scripts/reliability_figures.py            # print the markdown table
    .venv/bin/python scripts/reliability_figures.py --write    # also update docs/RELIABILITY.md

Parts (each can be skipped: --skip corpus,materialize,real,service):
- corpus: every hostile case of mlops_assets.reliability.corpus ingested alone beside the good
  files (ingest_source for each source, then cleaning and its blocking checks), then all together;
- materialize: the whole corpus through `dg.materialize` of the raw/* and clean/* assets with fake
  JIRA_API_TOKEN / GITHUB_TOKEN / MLOPS_ALERT_WEBHOOK set: no secret in the event log, run config,
  raw.rejects, raw.ingested_files or clean.quarantine;
- real: ../shared/data (Apache Jira issues and the exports) through raw/*, clean/* and features/*:
  no e-mail address or person name in a table outside raw.* (skipped if the folder is absent);
- service: the scoring service started for real on 127.0.0.1 with trained champions, >= 500
  malformed requests: no 5xx; it listens on loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "RELIABILITY.md"
START, END = "<!-- reliability:figures:start -->", "<!-- reliability:figures:end -->"
SHARED = ROOT.parent / "shared" / "data"
COMMAND = ".venv/bin/python scripts/reliability_figures.py --write"
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")


INTRO = """\
Issue 12's suite, the parts about bad input, the online service and security. The corpus
(`mlops_assets/reliability/corpus.py`) writes hostile files for all five sources and the mapped CSV
beside good files; each case records the task keys that must reach `clean.tasks`, the keys that
must not, and how many quarantine rows (each with a reason) it must at least produce. The script
runs ingestion (`ingest_source`, every source) and cleaning (`build_clean` and the blocking checks
the cleaning asset runs before it publishes) once per hostile file beside the good files, then
once with everything together; a second pass runs the whole corpus through `dg.materialize` of the
raw/* and clean/* assets with fake credentials in `JIRA_API_TOKEN`, `GITHUB_TOKEN` and
`MLOPS_ALERT_WEBHOOK` (also in a file outside the landing zone that a symlink points to). The
service fuzz starts `python -m mlops_assets.serving` on a free 127.0.0.1 port with two champions
trained on the sandbox's synthetic tasks (`mlops_assets/reliability/service.py`) and sends malformed
requests from `mlops_assets/reliability/fuzz.py` with 4 clients at once.

Fast tests (23-35 s on the shared 2-core machine, most of it MLflow and the service starting): the corpus at 3 records per good file in one landing zone (no crash, every
good record present except the known limit below, no bad record in `clean.tasks`, every expected
quarantine row present with a reason, the symlink named and never read), the four wrong-typed
records that used to take their whole file down, each alone, and 50 of the malformed requests
(sampled with a fixed seed) to a real service on 800 tasks: no 5xx, no dropped connection, a good
request still answered 200, the service listening on 127.0.0.1 only.

```console
.venv/bin/python -m pytest -q mlops_assets_tests/reliability/test_corpus.py
```

Fixed on the way (found by this corpus, the fix in the parser): a Jira issue with `fields.labels: 123`
(or `fixVersions: true`), a Trello card with `id: []` or `idLabels: [[1]]`, and a Trello board whose
`actions` is a number each made the whole file unreadable, so its sound records were lost (issue
19 item 1 had made such a crash cost only the file). Now `jira._guarded_issue_rows` rejects the one
issue (its partial rows undone) with its locator and the exception, a Trello card that raises is
rejected alone, and a board with a non-list `actions` keeps its cards with a reject row saying the
actions were ignored.

Known limit (counted in the figures, not fixed): a JSON file nested deeper than 1,000 levels
*inside one record* is refused as a whole by the decoder before any record is seen, so the sound
records of that file are quarantined with it ("nested too deeply to read"); splitting such a file
needs a streaming decoder with its own depth limit. Not a figure but worth knowing: a short row in a mapped
CSV is padded with empty values (the corpus's `MRG-3` reaches `clean.tasks` without title or
points), while a short Asana row is rejected; the corpus treats padding as the parser's choice. A date
without a time zone (`2024-03-01T10:00:00`) is read as UTC by the Jira and GitHub parsers with no
flag (a mapped CSV reads it in the mapping's `timezone`, as documented)."""


def say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- corpus, one case at a time


def corpus_figures(work: Path, n_good: int) -> dict:
    from mlops_assets.reliability import corpus, outcomes

    staging = work / "corpus" / "landing"
    staging.mkdir(parents=True)
    cases = corpus.write_corpus(staging, n_good, outside=work / "corpus" / "outside")
    good_cases = [c for c in cases if not c.hostile]
    hostile = [c for c in cases if c.hostile]
    say(f"corpus: {len(hostile)} hostile files, {len(good_cases)} good files; one run per hostile file")
    results, crashes = [], []
    started = time.perf_counter()
    for i, case in enumerate(hostile):
        landing = work / "runs" / f"{i:03d}" / "landing"
        for c in [*good_cases, case]:
            _copy_case(staging, landing, c)
        run = outcomes.run_pipeline(landing, landing.parent / "warehouse.duckdb")
        judged = outcomes.judge([*good_cases, case], run, landing)
        crashes += [f"{case.path} ({case.name}): {c.splitlines()[0]}" for c in run.crashes]
        results.append((case, judged, run))
        shutil.rmtree(landing.parent, ignore_errors=True)
    isolated_s = time.perf_counter() - started
    # all together: the good files and every hostile file in one landing zone
    run = outcomes.run_pipeline(staging, work / "corpus" / "warehouse.duckdb")
    together = outcomes.judge(cases, run, staging)
    crashes += [f"all together: {c.splitlines()[0]}" for c in run.crashes]
    categories = defaultdict(
        lambda: {"files": 0, "ok": 0, "lost": 0, "leaked": 0, "unexplained": 0, "crashed": 0}
    )
    lost_files, leaked, unexplained, reasonless = [], [], [], outcomes.reasonless_rows(run)
    for case, judged, one in results:
        row = categories[case.category]
        row["files"] += 1
        row["crashed"] += one.crashed
        reasonless += outcomes.reasonless_rows(one)
        lost = set().union(
            *(j.lost for j in judged)
        )  # the good files' records too: a hostile file must not cost them
        bad = set().union(*(j.leaked for j in judged))
        missing = sum(j.unexplained for j in judged)
        row["lost"] += bool(lost)
        row["leaked"] += len(bad)
        row["unexplained"] += missing
        row["ok"] += not (lost or bad or missing or one.crashed)
        if lost:
            limit = f" (known limit: {case.known_limit})" if case.known_limit else ""
            lost_files.append(
                f"{case.path} ({case.name}): {len(lost)} good record(s) lost: {sorted(lost)[:4]}{limit}"
            )
        if bad:
            leaked.append(f"{case.path} ({case.name}): {sorted(bad)} reached clean.tasks")
        if missing:
            unexplained.append(f"{case.path} ({case.name}): {missing} bad record(s) without a quarantine row")
    together_lost = [j for j in together if j.lost]
    return {
        "hostile_files": len(hostile),
        "good_files": len(good_cases),
        "n_good": n_good,
        "sources": sorted({c.source for c in hostile}),
        "runs": len(hostile) + 1,
        "crashes": crashes,
        "lost_files": lost_files,
        "leaked": leaked,
        "unexplained": unexplained,
        "reasonless_rows": reasonless,
        "categories": dict(sorted(categories.items())),
        "together_lost_files": [f"{j.case.path}: {sorted(j.lost)[:4]}" for j in together_lost],
        "together_leaked": sum(len(j.leaked) for j in together),
        "together_unexplained": sum(j.unexplained for j in together),
        "isolated_s": round(isolated_s, 1),
        "symlink_message": any("environ.json: not read" in m for m in run.messages),
        "notes": {c.name: c.note for c in hostile if c.note},
        "known_limits": sum(
            1 for case, judged, _ in results if case.known_limit and any(j.lost for j in judged)
        ),
    }


def _copy_case(src_root: Path, dest_root: Path, case) -> None:
    src = src_root / case.path
    dest = dest_root / case.path
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        dest.symlink_to(os.readlink(src))
        return
    shutil.copyfile(src, dest)
    for mapping in (src.with_suffix(".yaml"), src.with_suffix(".yml")):
        if case.source == "csv" and mapping.exists():
            shutil.copyfile(mapping, dest.with_suffix(mapping.suffix))


# ---------------------------------------------------------------- dg.materialize and secrets


def _materialize(landing: Path, warehouse: Path, groups: tuple[str, ...]):
    import dagster as dg

    from mlops_assets.definitions import build_resources, defs

    raw = dg.AssetSelection.key_prefixes(["raw"])
    selection = raw | dg.AssetSelection.groups(*groups) if groups else raw
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        list(defs.assets),
        selection=selection,
        instance=instance,
        raise_on_error=False,
        resources=build_resources(str(warehouse), str(landing), str(warehouse.parent / "reports")),
    )
    logs = instance.all_logs(result.run_id)
    text = "\n".join(
        f"{e.user_message} {e.dagster_event.event_specific_data if e.dagster_event else ''}" for e in logs
    )
    return result, text


def secrets_figures(work: Path, n_good: int) -> dict:
    from mlops_assets.lib.warehouse import Warehouse
    from mlops_assets.reliability import corpus, outcomes

    landing = work / "secrets" / "landing"
    landing.mkdir(parents=True)
    cases = corpus.write_corpus(landing, n_good, outside=work / "secrets" / "outside")
    secrets = corpus.FAKE_SECRETS
    before = {k: os.environ.get(k) for k in secrets}
    os.environ.update(secrets)
    try:
        result, log_text = _materialize(landing, work / "secrets" / "warehouse.duckdb", ("cleaning",))
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    run_config = json.dumps(result.dagster_run.run_config, default=str)
    tags = json.dumps(result.dagster_run.tags, default=str)
    places = {"event log": log_text, "run config": run_config, "run tags": tags}
    wh = Warehouse(work / "secrets" / "warehouse.duckdb")
    for table in ("raw.rejects", "raw.ingested_files", "clean.quarantine"):
        try:
            places[table] = wh.read_table(table).write_csv()
        except Exception as exc:  # noqa: BLE001 - a missing table is reported, not fatal
            places[table] = f"<unreadable: {exc}>"
    needles = set()
    for value in secrets.values():
        needles.add(value)
        needles.update(m for m in re.split(r"[:/@]", value) if len(m) >= 12)  # parts: token path, password
    needles.add("alert-pa55w0rd")
    found = {place: sorted(n for n in needles if n in text) for place, text in places.items()}
    run = outcomes.PipelineRun()
    try:
        run.tasks, run.quarantine = wh.read_table("clean.tasks"), wh.read_table("clean.quarantine")
    except Exception as exc:  # noqa: BLE001
        run.crashes.append(str(exc))
    judged = outcomes.judge(cases, run, landing)
    failures = [
        f"{e.step_key}: {e.step_failure_data.error.message[:300]}" for e in result.get_step_failure_events()
    ]
    return {
        "success": result.success,
        "step_failures": failures,
        "leaks": {p: f for p, f in found.items() if f},
        "places": sorted(places),
        "lost_files": [f"{j.case.path}: {sorted(j.lost)[:3]}" for j in judged if j.lost],
        "leaked_bad": sum(len(j.leaked) for j in judged),
        "unexplained": sum(j.unexplained for j in judged),
    }


# ---------------------------------------------------------------- real data: personal data past raw


def real_data_figures(work: Path) -> dict:
    if not SHARED.is_dir():
        return {"skipped": f"{SHARED} is absent"}
    import duckdb

    landing = work / "real" / "landing"
    layout = {
        "jira": [SHARED / "jira-apache-ase2015" / "issues", SHARED / "exports" / "jira-csv"],
        "github": [SHARED / "exports" / "github"],
        "trello": [SHARED / "exports" / "trello"],
        "asana": [SHARED / "exports" / "asana"],
    }
    n_files = 0
    for source, folders in layout.items():
        (landing / source).mkdir(parents=True, exist_ok=True)
        for folder in folders:
            for f in sorted(folder.glob("*")):
                if f.is_file() and f.suffix in (".json", ".csv"):
                    shutil.copyfile(f, landing / source / f.name)
                    n_files += 1
    people, emails = _people(landing)
    warehouse = work / "real" / "warehouse.duckdb"
    result, _ = _materialize(landing, warehouse, ("cleaning", "features"))
    con = duckdb.connect(str(warehouse), read_only=True)
    tables = con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema NOT IN ('raw', 'information_schema', 'pg_catalog')"
    ).fetchall()
    raw_tables = con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = 'raw'"
    ).fetchall()
    hits, cells = _scan(con, tables, people)
    control, _ = _scan(con, raw_tables, people)  # the same scan finds them in raw.*: the needles work
    con.close()
    return {
        "files": n_files,
        "people": len(people),
        "emails_in_input": len(emails),
        "tables": len(tables),
        "distinct_text_values": cells,
        "success": result.success,
        "step_failures": [
            f"{e.step_key}: {e.step_failure_data.error.message[:200]}"
            for e in result.get_step_failure_events()
        ],
        "hits": {k: (len(v), v[:5]) for k, v in hits.items()},
        "raw_control_hits": sum(len(v) for v in control.values()),
        "tables_checked": sorted(f"{s}.{t}" for s, t in tables),
    }


def _scan(con, tables: list[tuple[str, str]], people: set[str]) -> tuple[dict[str, list[str]], int]:
    """Text cells of `tables` holding an e-mail address or one of `people` (whole value, or a full name in text)."""
    full_names = sorted({p for p in people if " " in p.strip() and len(p) >= 6})
    name_re = re.compile("|".join(rf"\b{re.escape(n)}\b" for n in full_names)) if full_names else None
    exact = {p.strip().lower() for p in people if len(p.strip()) >= 3}
    hits: dict[str, list[str]] = defaultdict(list)
    cells = 0
    for schema, table in tables:
        cols = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
                "AND data_type = 'VARCHAR'",
                [schema, table],
            ).fetchall()
        ]
        for col in cols:
            values = [
                v
                for (v,) in con.execute(
                    f'SELECT DISTINCT "{col}" FROM "{schema}"."{table}" WHERE "{col}" IS NOT NULL'
                ).fetchall()
            ]
            cells += len(values)
            for v in values:
                what = None
                if EMAIL.search(v):
                    what = "e-mail " + EMAIL.search(v).group(0)
                elif v.strip().lower() in exact:
                    what = "name (whole value)"
                elif name_re is not None and (m := name_re.search(v)):
                    what = f"name {m.group(0)!r} in text"
                if what:
                    hits[f"{schema}.{table}.{col}"].append(f"{what}: {v[:80]!r}")
    return hits, cells


_PERSON_KEYS = {"displayName", "fullName", "emailAddress", "email", "name", "login", "username"}
_PERSON_PARENTS = {
    "assignee",
    "reporter",
    "creator",
    "author",
    "user",
    "updateAuthor",
    "memberCreator",
    "member",
    "members",
    "assignees",
    "closed_by",
    "watchers",
}
_PERSON_COLUMNS = re.compile(r"assignee|reporter|creator|author|e-?mail|watcher|user", re.I)


def _people(landing: Path) -> tuple[set[str], set[str]]:
    """Person names, logins and e-mail addresses found in the real files (the needles to look for)."""
    import csv

    people: set[str] = set()

    def walk(obj, parent: str = "") -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                if isinstance(v, str) and (
                    k in ("displayName", "fullName", "emailAddress", "email")
                    or (k in _PERSON_KEYS and parent in _PERSON_PARENTS)
                ):
                    people.add(v)
                else:
                    walk(v, k)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, parent)

    for f in landing.rglob("*"):
        if f.suffix == ".json":
            try:
                walk(json.loads(f.read_bytes()))
            except ValueError:
                continue
        elif f.suffix == ".csv":
            with f.open(newline="", encoding="utf-8", errors="replace") as fh:
                reader = csv.reader(fh)
                header = next(reader, [])
                idx = [i for i, h in enumerate(header) if _PERSON_COLUMNS.search(h)]
                for row in reader:
                    people.update(row[i] for i in idx if i < len(row) and row[i].strip())
    people = {p for p in people if p.strip() and p.lower() not in ("unassigned", "none", "null")}
    emails = {p for p in people if EMAIL.search(p)}
    return people, emails


# ---------------------------------------------------------------- the online service


def service_figures(work: Path, n_requests: int, n_tasks: int) -> dict:
    import polars as pl

    from mlops_assets.lib import scoring
    from mlops_assets.lib.warehouse import Warehouse
    from mlops_assets.reliability import fuzz
    from mlops_assets.reliability.service import ServiceProcess
    from mlops_assets.serving import sandbox
    from mlops_assets.serving.app import Settings

    started = time.perf_counter()
    box = sandbox.build_sandbox(work / "service", n_tasks=n_tasks)
    say(
        f"service: sandbox with two champions trained on {n_tasks} tasks in {time.perf_counter() - started:.0f} s"
    )
    tasks = Warehouse(box.warehouse).read_table("clean.tasks")
    base = scoring.task_records(
        scoring.open_tasks(tasks).filter(pl.col("deadline_at").is_not_null()).head(1)
    )[0]
    base = {k: v for k, v in base.items() if k in fuzz.FIELDS}
    batch = fuzz.requests(base, n_requests)
    with ServiceProcess(box, work / "service.log") as service:
        service.wait_ready()
        hosts = service.listening_hosts()
        import httpx

        good = httpx.post(f"{service.url}/predict", json=base, timeout=30)
        started = time.perf_counter()
        result = fuzz.send(service.url, batch)
        elapsed = time.perf_counter() - started
        health = httpx.get(f"{service.url}/health", timeout=10).status_code
        again = httpx.post(f"{service.url}/predict", json=base, timeout=30).status_code
        log = service.log_tail(200_000)
    return {
        "requests": result.sent,
        "by_status": result.by_status,
        "server_errors": result.server_errors[:20],
        "n_server_errors": len(result.server_errors),
        "transport_errors": result.transport_errors[:10],
        "n_transport_errors": len(result.transport_errors),
        "seconds": round(elapsed, 1),
        "good_before": good.status_code,
        "good_after": again,
        "health_after": health,
        "listening": sorted(hosts),
        "accepted": result.accepted,
        "default_host": Settings.from_env({}).host,
        "tracebacks_in_log": log.count("Traceback"),
    }


def loopback_figures() -> dict:
    makefile = (ROOT / "Makefile").read_text()
    servers = {
        line.strip()[:120]
        for line in makefile.splitlines()
        if re.search(r"dagster dev|mlflow ui|mlflow server", line)
    }
    return {
        "make_servers": sorted(servers),
        "make_not_loopback": sorted(s for s in servers if "--host 127.0.0.1" not in s),
    }


# ---------------------------------------------------------------- report


def table(fig: dict) -> str:
    rows = ["| figure | target | measured |", "|---|---|---|"]
    c = fig.get("corpus")
    if c:
        rows += [
            f"| hostile files (all five sources and the mapped CSV, beside {c['good_files']} good files of {c['n_good']} records) | >= 60 | {c['hostile_files']} |",
            f"| runs crashed (one run per hostile file + one with all together; a failed blocking check counts) | 0 | {len(c['crashes'])} of {c['runs']} |",
            f"| files whose good records were lost (file run alone beside the good files) | 0 | {len(c['lost_files'])}"
            + (f" ({c['known_limits']} a known limit, below)" if c["known_limits"] else "")
            + " |",
            f"| bad records without a quarantine reason (expected rows missing, plus rows with a blank reason) | 0 | {sum(int(x.split(': ')[1].split()[0]) for x in c['unexplained']) + c['reasonless_rows']} |",
            f"| bad records that reached clean.tasks | 0 | {sum(v['leaked'] for v in c['categories'].values())} |",
            f"| all together: files with good records lost / bad records in clean.tasks / missing quarantine rows | 0 / 0 / 0 | {len(c['together_lost_files'])} / {c['together_leaked']} / {c['together_unexplained']} |",
        ]
    s = fig.get("secrets")
    if s:
        rows += [
            f"| `dg.materialize` of raw/* and clean/* over the whole corpus succeeds | yes | {'yes' if s['success'] else 'no: ' + '; '.join(s['step_failures'])[:200]} |",
            f"| fake secrets (JIRA_API_TOKEN, GITHUB_TOKEN, MLOPS_ALERT_WEBHOOK, and a symlinked file holding them) found in {', '.join(s['places'])} | 0 | {sum(len(v) for v in s['leaks'].values())} |",
        ]
    r = fig.get("real")
    if r and "skipped" not in r:
        rows += [
            f"| e-mail addresses or person names in tables outside raw.* after ingesting ../shared/data ({r['files']} files, {r['people']} names/logins/addresses, {r['tables']} tables, {r['distinct_text_values']:,} distinct text values; the same scan finds {r['raw_control_hits']:,} in raw.*) | 0 | {sum(n for n, _ in r['hits'].values())} |"
        ]
    elif r:
        rows += [f"| personal data outside raw.* (shared real data) | 0 | skipped: {r['skipped']} |"]
    v = fig.get("service")
    if v:
        rows += [
            f"| malformed requests to the running service | >= 500 | {v['requests']} |",
            f"| 5xx answers (and requests with no answer) | 0 | {v['n_server_errors']} ({v['n_transport_errors']}) |",
            f"| service still healthy and scoring afterwards | 200 / 200 | {v['health_after']} / {v['good_after']} |",
            f"| service listens on (default `MLOPS_SERVE_HOST`: {v['default_host']}) | loopback | {', '.join(v['listening'])} |",
        ]
    lb = fig.get("loopback")
    if lb:
        rows += [
            f"| `make` servers (dagster dev, mlflow ui) not bound to 127.0.0.1 | 0 | {len(lb['make_not_loopback'])} |"
        ]
    return "\n".join(rows)


def details(fig: dict) -> str:
    out = []
    c = fig.get("corpus")
    if c:
        out += [
            "Per category (one run per hostile file, beside the good files):",
            "",
            "| category | files | all promises held | crashed | good records lost (files) | bad records in clean.tasks | quarantine rows missing |",
            "|---|---|---|---|---|---|---|",
        ]
        out += [
            f"| {k} | {v['files']} | {v['ok']} | {v['crashed']} | {v['lost']} | {v['leaked']} | {v['unexplained']} |"
            for k, v in c["categories"].items()
        ]
        for title, items in (
            ("Crashes", c["crashes"]),
            ("Good records lost", c["lost_files"]),
            ("Bad records in clean.tasks", c["leaked"]),
            ("Bad records without a quarantine row", c["unexplained"]),
        ):
            if items:
                out += ["", f"{title}:", ""] + [f"- `{x}`" for x in items]
    v = fig.get("service")
    if v:
        out += ["", f"Service answers by status: {v['by_status']} ({v['seconds']} s, 4 clients)."]
        odd_dates = [
            x for x in v["accepted"] if x.startswith(("due_at=", "deadline_at=")) and "None" not in x
        ]
        ctypes = [x for x in v["accepted"] if x.startswith("content type")]
        out += [
            f"Answered 200 although odd (not errors, but worth knowing): {len(ctypes)} requests with a "
            "JSON body under another Content-Type (the body is read as JSON whatever the header says); "
            f"{', '.join(f'`{x}`' for x in odd_dates) or 'no odd due/deadline dates'} (no range rule for "
            "these dates, unlike `created_at`); any text in text fields (task_id, title, labels, assignee_id)."
        ]
        if v["server_errors"]:
            out += ["5xx:"] + [
                f"- `{label}`: {status} {body[:120]!r}" for label, status, body in v["server_errors"]
            ]
    r = fig.get("real")
    if r and r.get("hits"):
        out += ["", "Personal data found outside raw.*:"] + [
            f"- `{k}`: {n}, e.g. {ex[:2]}" for k, (n, ex) in r["hits"].items()
        ]
    s = fig.get("secrets")
    if s and s["leaks"]:
        out += ["", "Secrets found:"] + [f"- {p}: {len(f)} value(s)" for p, f in s["leaks"].items()]
    return "\n".join(out)


def write_doc(markdown: str) -> None:
    text = DOC.read_text()
    section = f"{START}\n{markdown}\n{END}"
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write", action="store_true", help="update the figures section of docs/RELIABILITY.md"
    )
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to skip: corpus,materialize,real,service"
    )
    parser.add_argument("--good", type=int, default=50, help="records per good file (default 50)")
    parser.add_argument("--requests", type=int, default=600, help="malformed requests (default 600)")
    parser.add_argument("--tasks", type=int, default=1500, help="tasks the service's champions train on")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    fig: dict = {}
    failures: dict[str, str] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        work = Path(tmp)
        parts = {
            "corpus": ("corpus", lambda: corpus_figures(work, args.good)),
            "materialize": ("secrets", lambda: secrets_figures(work, args.good)),
            "real": ("real", lambda: real_data_figures(work)),
            "service": ("service", lambda: service_figures(work, args.requests, args.tasks)),
        }
        for part, (key, measure) in parts.items():
            if part in skip:
                continue
            say(f"{part}: measuring")
            try:
                fig[key] = measure()
            except Exception as exc:  # noqa: BLE001 - a part that cannot be measured is reported, the rest still run
                failures[part] = f"{type(exc).__name__}: {exc}"[:500]
                say(f"{part} failed: {failures[part]}")
        fig["loopback"] = loopback_figures()
    if args.json:
        args.json.write_text(json.dumps(fig, indent=1, default=str))
    markdown = "\n".join(
        [
            "## Hostile input, the service and security: figures",
            "",
            INTRO,
            "",
            f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} on the shared 2-core machine by `{COMMAND}`"
            + (f" (parts skipped: {', '.join(sorted(skip))})" if skip else "")
            + f", {time.perf_counter() - started:.0f} s wall in all (load average {os.getloadavg()[0]:.1f} at the end).",
            "",
            table(fig),
            *(f"\n**{part} could not be measured**: `{why}`" for part, why in failures.items()),
            "",
            details(fig),
        ]
    )
    print(markdown)
    if args.write:
        write_doc(markdown)
        say(f"updated {DOC.relative_to(ROOT)}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
