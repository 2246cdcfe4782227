"""Configuration is read in one place: every environment variable the code reads is listed in lib/settings.py
VARIABLES (default and meaning), and every MLOPS_* one is documented in README's configuration section.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlops_assets.lib import settings

ROOT = Path(__file__).resolve().parents[1]
# A variable name as a string literal in code ("MLOPS_WAREHOUSE", 'JIRA_URL'), as os.environ and env() take it.
LITERAL = re.compile(r"""["']((?:MLOPS|JIRA|GITHUB|MLFLOW)_[A-Z0-9_]*[A-Z0-9])["']""")
# Names the code mentions that are not variables it reads: misspellings the pulls warn about (lib/pulls.py
# ALIASES), GitHub Actions' own variables (ignored by that warning), and the cluster instance's variables
# (MLOPS_PG_*, MLOPS_DAGSTER_*: read by deploy/cluster/dagster.yaml, i.e. by Dagster; README names them as
# patterns, deploy/cluster/cluster.env.example one by one) with scripts/ci_services.sh's MLOPS_REDIS_URL, which
# devtools/cluster_services.py writes into its children's environment.
NOT_READ = re.compile(
    r"^(JIRA_(BASE_URL|HOST|SERVER|SITE|INSTANCE|INSTANCE_URL|ENDPOINT|EMAIL|USERNAME|LOGIN|USER_EMAIL|"
    r"TOKEN|APITOKEN|PASSWORD|PAT|ACCESS_TOKEN|PROJECT|PROJECT_KEY|PROJECT_KEYS|QUERY|FILTER|SINCE|"
    r"START|CSV_HEADER)|GITHUB_(?!TOKEN$|REPOS$|API_URL$|START_DATE$).*|MLFLOW_(?!TRACKING_URI$).*|"
    r"MLOPS_(PG|DAGSTER)_.*|MLOPS_REDIS_URL)$"
)


def _read_in_code() -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for path in sorted((ROOT / "mlops_assets").rglob("*.py")):
        for name in LITERAL.findall(path.read_text()):
            if not NOT_READ.match(name):
                names.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return names


def _readme_configuration() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Configuration\n")
    return text[start : text.index("\n## ", start + 1)]


def _documented(section: str) -> tuple[set[str], list[str]]:
    """Names in the section, and its wildcard patterns (MLOPS_PG_*) as regular expressions."""
    tokens = set(re.findall(r"\b(?:MLOPS|JIRA|GITHUB|MLFLOW)_[A-Z0-9_]*\*?", section))
    return {t for t in tokens if not t.endswith("*")}, [
        re.escape(t[:-1]) + ".*" for t in tokens if t.endswith("*")
    ]


def test_every_variable_the_code_reads_is_listed_in_settings():
    unlisted = {
        name: sorted(where) for name, where in _read_in_code().items() if name not in settings.VARIABLES
    }
    assert unlisted == {}, (
        "list these in mlops_assets/lib/settings.py VARIABLES (default, meaning) and README"
    )


def test_every_mlops_variable_is_in_readmes_configuration_section_and_no_other_is_there():
    names, patterns = _documented(_readme_configuration())
    listed = {n for n in settings.VARIABLES if n.startswith("MLOPS_")}
    undocumented = sorted(
        n
        for n in listed | {n for n in _read_in_code() if n.startswith("MLOPS_")}
        if n not in names and not any(re.fullmatch(p, n) for p in patterns)
    )
    assert undocumented == [], "add a row to README's configuration table"
    # the deployment's own variables (MLOPS_PG_*, MLOPS_DAGSTER_*) are patterns: docs/SCALING.md lists them
    stale = sorted(n for n in names if n.startswith("MLOPS_") and n not in listed)
    assert stale == [], "README documents variables nothing reads"


# Rows whose default is said in words, not as the listed value.
DEFAULT_IN_WORDS = {
    "MLOPS_RETRAIN_TRIALS": "unset means TrainingConfig's budget; 0 reads the same",
    "MLOPS_TELEMETRY_CRON": "said as 'every 15 min' in the MLOPS_SERVE_URL row",
}


def test_readme_states_each_listed_default():
    rows = [line for line in _readme_configuration().splitlines() if line.startswith("| `")]
    wrong = {}
    for name, variable in settings.VARIABLES.items():
        if not name.startswith("MLOPS_") or not variable.default or name in DEFAULT_IN_WORDS:
            continue
        row = next((r for r in rows if f"`{name}`" in r.split("|")[1]), "")
        if f"`{variable.default}`" not in row:
            wrong[name] = variable.default
    assert wrong == {}, "README's default differs from settings.VARIABLES"


def test_env_reads_only_listed_variables_and_gives_their_defaults():
    assert settings.env("MLOPS_SERVE_PORT", {}) == "8000"
    assert settings.env("MLOPS_SERVE_PORT", {"MLOPS_SERVE_PORT": " 9000 "}) == "9000"
    assert settings.env("MLOPS_SERVE_PORT", {"MLOPS_SERVE_PORT": "  "}) == "8000"
    assert not settings.is_set("MLOPS_ALERT_WEBHOOK", {"MLOPS_ALERT_WEBHOOK": " "})
    with pytest.raises(KeyError, match="MLOPS_NOT_A_SETTING is not in mlops_assets.lib.settings.VARIABLES"):
        settings.env("MLOPS_NOT_A_SETTING", {})
