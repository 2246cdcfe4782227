"""lib/ computes without Dagster: no module under mlops_assets/lib imports it (the assets in defs/ orchestrate)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "mlops_assets" / "lib"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_no_lib_module_imports_dagster():
    offenders = {
        str(path.relative_to(LIB)): sorted(n for n in _imports(path) if n.split(".")[0].startswith("dagster"))
        for path in sorted(LIB.rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_monitoring_and_gate_helpers_load_without_dagster():
    code = (
        "import sys; import mlops_assets.lib.monitoring, mlops_assets.lib.gate, mlops_assets.lib.readable; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
