"""Dagster objects, one sub-package per asset group; each exposes a module-level `defs`."""


import importlib

import dagster as dg

# Order is the order of the pipeline; a group that is not written yet is simply absent.
GROUPS = ("ingestion", "cleaning", "features", "training", "evaluation", "monitoring", "serving")


def all_group_defs() -> list[dg.Definitions]:
    """Import each group's `defs` (mlops_assets.defs.<group>.defs)."""
    found = []
    for group in GROUPS:
        try:
            module = importlib.import_module(f"mlops_assets.defs.{group}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mlops_assets.defs.{group}":
                continue
            raise
        found.append(module.defs)
    return found
