"""The online scoring service: a small FastAPI app over :mod:`mlops_assets.lib.scoring` (see app.py)."""
