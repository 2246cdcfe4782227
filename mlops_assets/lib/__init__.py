"""Pure Python computation for mlops_assets; nothing here imports dagster."""
