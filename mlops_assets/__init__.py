"""mlops_assets: a Dagster asset platform for project-management data."""

# The one place the version is written (pyproject.toml reads it; CHANGELOG.md says what each one changed).
# Recorded on every MLflow training run (tag mlops_assets_version) and in every serving.task_risk_scores row.
__version__ = "0.2.0.dev0"
