"""`mlops-assets rollback`: --help lists the registered versions, --to VERSION picks one, --dry-run changes nothing."""

from __future__ import annotations

import pytest

from mlops_assets import cli
from mlops_assets.lib import registry


@pytest.fixture
def client(mlflow_uri: str, tmp_path):
    """late_risk v1 (first champion), v2 (champion before), v3 (champion now), v4 (failed floors), v5 (challenger)."""
    client = registry.get_client(mlflow_uri)
    client.create_registered_model("late_risk")
    gates = [
        ("promoted", "first champion: test_roc_auc=0.8100 passes every floor", None),
        ("promoted", "test_roc_auc=0.8300 beats champion v1", "1"),
        ("promoted", "test_roc_auc=0.8500 beats champion v2", "2"),
        ("rejected", "fails floors: test_roc_auc=0.5100 < 0.65", None),
        ("rejected", "test_roc_auc=0.8490 does not beat champion v3", None),
    ]
    for decision, reason, previous in gates:
        version = client.create_model_version("late_risk", source=str(tmp_path / "model")).version
        client.set_model_version_tag("late_risk", version, "gate.decision", decision)
        client.set_model_version_tag("late_risk", version, "gate.reason", reason)
        if previous:
            client.set_model_version_tag("late_risk", version, "previous_champion", previous)
    client.set_registered_model_alias("late_risk", "champion", "3")
    client.set_registered_model_alias("late_risk", "challenger", "5")
    return client


def test_help_lists_every_version_with_its_alias_and_gate_decision(client, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["rollback", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--to VERSION" in out and "--dry-run" in out
    assert "late_risk:" in out and "cycle_time: none registered" in out
    lines = [
        line.split()
        for line in out.splitlines()
        if line.strip().startswith("v") and line.split()[0][1:].isdigit()
    ]
    assert [(w[0], w[1]) for w in lines] == [
        ("v5", "challenger"),
        ("v4", "-"),
        ("v3", "champion"),
        ("v2", "-"),
        ("v1", "-"),
    ]
    assert "fails floors" in out


def test_dry_run_says_what_would_happen_and_changes_nothing(client, capsys):
    assert cli.main(["rollback", "late_risk", "--dry-run"]) == 0
    assert "would move the champion from version 3 to version 2" in capsys.readouterr().out
    assert cli.main(["rollback", "late_risk", "--to", "v1", "--dry-run"]) == 0
    assert "from version 3 to version 1" in capsys.readouterr().out
    assert registry.champion_version("late_risk", client) == "3"
    assert "rolled_back_at" not in client.get_model_version("late_risk", "3").tags


def test_to_version_moves_the_champion_there_and_tags_both(client, capsys):
    assert cli.main(["rollback", "late_risk", "--to", "1"]) == 0
    assert "champion moved from version 3 back to version 1" in capsys.readouterr().out
    assert registry.champion_version("late_risk", client) == "1"
    assert client.get_model_version("late_risk", "3").tags["rolled_back_to"] == "1"
    assert client.get_model_version("late_risk", "1").tags["restored_from"] == "3"
    assert (
        cli.main(["rollback", "late_risk", "--to", "5"]) == 0
    )  # a challenger that passed the floors may serve
    assert registry.champion_version("late_risk", client) == "5"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("9", "has no version '9' (registered: v5, v4, v3, v2, v1)"),
        ("3", "v3 is already the champion"),
        ("4", "v4 failed the gate's floors"),
    ],
)
def test_a_target_that_cannot_serve_is_refused_in_one_line(client, capsys, target, message):
    assert cli.main(["rollback", "late_risk", "--to", target]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert registry.champion_version("late_risk", client) == "3"


def test_help_without_a_store_says_so_and_creates_none(tmp_path, monkeypatch, capsys):
    store = tmp_path / "nowhere" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    with pytest.raises(SystemExit):
        cli.main(["rollback", "-h"])
    assert f"no MLflow store at {store} yet" in capsys.readouterr().out
    assert not store.exists()
