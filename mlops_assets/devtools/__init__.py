"""Developer tools, not the pipeline: what `make` targets, the tests and scripts/ use to show and exercise it.

- :mod:`.bench`: `mlops-assets bench` (`make bench`), the whole graph timed at a size, or each asset alone.
- :mod:`.demo`: `mlops-assets drift-demo` (`make drift-demo`), the drift -> retrain loop end to end.
- :mod:`.screenshots`: `mlops-assets screenshots`, the UI pages of docs/ in a real browser.
- :mod:`.graph`: `mlops-assets graph`, the asset graph diagram in docs/ARCHITECTURE.md.
- :mod:`.cluster_services`: real cluster-profile services (PostgreSQL + Redis via scripts/ci_services.sh, an MLflow
  server, Celery workers) for the cluster tests and scripts/bench_cluster.py; :mod:`.cluster_launch` submits
  a run to the cluster's queue as the UI does.
- :mod:`.ports`: free loopback ports below the kernel's ephemeral range for the servers the tests and scripts
  start, and the log line that says a server lost its port (it is then started again on another).

Nothing under mlops_assets/defs or mlops_assets/lib imports these.
"""
