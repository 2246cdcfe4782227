"""`python -m mlops_assets.serving`: the scoring service on 127.0.0.1:$MLOPS_SERVE_PORT (default 8000)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
The online scoring service: POST /predict, /predict/batch, /reload; GET /health, /ready.
Champions come from the MLflow registry, history from the warehouse; both are found from any
folder (relative locations are under the project folder; the project's .env is read).

environment:
  MLOPS_SERVE_HOST, MLOPS_SERVE_PORT   where to listen (127.0.0.1:8000)
  MLOPS_SERVE_WORKERS                  worker processes (1)
  MLOPS_SERVE_CHECK_S                  seconds between champion checks (30)
  MLOPS_SERVE_MAX_TASKS, MLOPS_SERVE_MAX_BYTES   batch limits (1000 tasks, 1 MB)
  MLOPS_WAREHOUSE, MLFLOW_TRACKING_URI, MLOPS_REPORTS_DIR, MLOPS_EXPORTS_DIR   data locations
  MLOPS_HOME                           the project folder, when the package is installed elsewhere
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlops_assets.serving",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)  # --help prints and exits 0; anything else is an error, not a server start
    from mlops_assets.lib import settings

    try:
        settings.load_project_env()
        settings.absolute_environment()
    except settings.ProjectHomeError as exc:
        parser.exit(2, f"{parser.prog}: {exc}\n")
    from mlops_assets.serving.app import main as serve

    return serve()


if __name__ == "__main__":
    raise SystemExit(main())
