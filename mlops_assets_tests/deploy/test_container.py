"""The Dockerfile: hadolint-clean, and its install steps, run into a fresh virtual environment, give an
installation whose two entry points start (no container engine here: the steps are run as the builder
stage runs them, from a copy of the build context the .dockerignore admits).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mlops_assets.devtools.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: pip install -e '.[dev]'")
    return path


def test_the_dockerfile_passes_hadolint():
    out = subprocess.run([_tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_would_catch_a_regression(tmp_path):
    bad = tmp_path / "Dockerfile"
    text = re.sub(
        r"libgomp1=\S+",
        "libgomp1",
        re.sub(r"^FROM python:\S+", "FROM python", DOCKERFILE.read_text(), flags=re.M),
    )
    bad.write_text(text)
    out = subprocess.run([_tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True)
    assert (
        out.returncode != 0 and "DL3006" in out.stdout and "DL3008" in out.stdout
    )  # untagged base, unpinned apt


def test_the_image_is_multi_stage_slim_non_root_with_a_healthcheck_and_the_lock():
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(stages) == 2 and all("-slim" in s for s in stages)
    assert re.search(r"^USER 10001", text, re.M) and re.search(r"^HEALTHCHECK .*/health", text, re.M | re.S)
    assert "--require-hashes" in text and "[dev]" not in text
    lock = (ROOT / "deploy" / "requirements.lock").read_text()
    pinned = re.findall(r"^([a-z0-9_.\-]+)==", lock, re.M)
    assert {"dagster", "duckdb", "lightgbm", "mlflow", "prometheus-client", "dagster-k8s"} <= set(pinned)
    assert not {"pytest", "ruff", "playwright"} & set(pinned)  # no dev extras in the image


def _install_steps() -> list[str]:
    """The builder stage's RUN commands that follow an `# install:` comment."""
    builder = DOCKERFILE.read_text().split("\nFROM ")[1]  # [0]: the comments above the first stage
    return re.findall(r"^# install:.*\nRUN (.+)$", builder, re.M)


def _build_context(dest: Path) -> Path:
    """What `COPY` sees: the .dockerignore's allow-list, copied."""
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        if line.startswith("!"):
            src = ROOT / line[1:]
            target = dest / line[1:]
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(src, target)
    return dest


@pytest.mark.slow
def test_the_install_steps_give_a_venv_whose_service_and_code_server_start(tmp_path):
    uv = _tool("uv")
    pinned_uv = re.search(r"pip install --no-cache-dir uv==(\S+)", DOCKERFILE.read_text()).group(1)
    assert subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.split()[1] == pinned_uv
    steps = _install_steps()
    assert len(steps) == 2, steps
    context = _build_context(tmp_path / "context")
    venv = tmp_path / "venv"
    env = {
        **os.environ,
        "VENV": str(venv),
        "PATH": f"{Path(uv).parent}:{os.environ['PATH']}",
    }  # uv links from its cache (the image copies: UV_LINK_MODE)
    env.pop("VIRTUAL_ENV", None)
    for step in steps:
        done = subprocess.run(
            ["bash", "-ec", step], cwd=context, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{step}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    python = venv / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import mlops_assets; print(mlops_assets.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "site-packages" in where  # installed as a wheel, not the checkout

    home = tmp_path / "home"
    home.mkdir()
    run_env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "MLOPS_HOME": str(home),
        "DAGSTER_HOME": str(home),
        "MLOPS_WAREHOUSE": str(home / "warehouse.duckdb"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "MLOPS_MODEL_CACHE": str(home / "cache"),
    }
    serve_port, grpc_port = free_port(), free_port()
    service = subprocess.Popen(
        [str(python), "-m", "mlops_assets.serving"],
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=(home / "service.log").open("wb"),
        env={**run_env, "MLOPS_SERVE_PORT": str(serve_port)},
    )
    code_server = subprocess.Popen(
        [
            str(venv / "bin" / "dagster"),
            "api",
            "grpc",
            "-h",
            "127.0.0.1",
            "-p",
            str(grpc_port),
            "-m",
            "mlops_assets.definitions",
        ],
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=(home / "grpc.log").open("wb"),
        env=run_env,
    )
    try:
        deadline = time.monotonic() + 120
        health = None
        while time.monotonic() < deadline and service.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{serve_port}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert health is not None and health.status_code == 200, (home / "service.log").read_text()[-3000:]
        ready = httpx.get(f"http://127.0.0.1:{serve_port}/ready", timeout=5)
        assert ready.status_code == 503  # no champion in an empty store: alive, not ready
        assert httpx.get(f"http://127.0.0.1:{serve_port}/metrics", timeout=5).status_code == 200
        ok = False
        while time.monotonic() < deadline and code_server.poll() is None and not ok:
            ok = (
                subprocess.run(
                    [str(venv / "bin" / "dagster"), "api", "grpc-health-check", "-p", str(grpc_port)],
                    capture_output=True,
                    env=run_env,
                ).returncode
                == 0
            )
            time.sleep(0.5)
        assert ok, (home / "grpc.log").read_text()[-3000:]
    finally:
        for process in (service, code_server):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def test_the_lock_pins_every_runtime_dependency_of_pyproject():
    """A dependency added to pyproject.toml without `make lock` would be missing from the image."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["cluster"]]
    wanted += [
        line
        for line in (ROOT / "deploy" / "requirements-image.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    lock = (ROOT / "deploy" / "requirements.lock").read_text()
    pinned = {
        canonicalize_name(name): version
        for name, version in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", lock, re.M)
    }
    missing, outside = [], []
    for text in wanted:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"python_version": "3.11"}):
            continue
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None:
            missing.append(requirement.name)
        elif not requirement.specifier.contains(version, prereleases=True):
            outside.append(f"{requirement.name}=={version} (pyproject: {requirement.specifier})")
    assert not missing and not outside, (
        f"deploy/requirements.lock is stale, run `make lock`: missing {missing}, {outside}"
    )
