"""Dagster objects, one sub-package per asset group, autoloaded by `dg.load_from_defs_folder`.

Every asset, check, job, sensor and schedule at module level in a module under this folder is part of
the code location (mlops_assets/definitions.py adds the resources and the executor); a group's
`__init__.py` may gather them in a `defs` object too, which is how a group brings its own resources.
"""

# Order is the order of the pipeline (the ARCHITECTURE diagram's order of groups).
GROUPS = ("ingestion", "cleaning", "features", "training", "evaluation", "monitoring", "serving")
