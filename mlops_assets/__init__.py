"""mlops_assets: a Dagster asset platform for project-management data."""
