"""`python -m mlops_assets.serving`: the scoring service on 127.0.0.1:$MLOPS_SERVE_PORT (default 8000)."""

from mlops_assets.serving.app import main

if __name__ == "__main__":
    raise SystemExit(main())
