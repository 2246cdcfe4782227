# The README's commands. Everything runs from the repository root inside .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster
export MLOPS_LANDING_DIR ?= data/landing
export MLOPS_WAREHOUSE ?= data/warehouse.duckdb
SAMPLE_TASKS ?= 6000

.PHONY: run test ui serve mlflow-ui bench screenshots drift-demo lint clean-data instance mlflow-store lock

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found " + sys.version.split()[0] + ")")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

instance: $(DAGSTER_HOME)/dagster.yaml
$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

## mlflow-store: create and migrate the MLflow store (MLFLOW_TRACKING_URI, default data/mlflow/mlflow.db) once,
## under its lock, before anything opens it (a no-op for a tracking server; docs/RELIABILITY.md)
mlflow-store: $(STAMP)
	@$(BIN)/python -c 'from mlops_assets.lib import registry; registry.ensure_store()'

## run: the main job: install, land the embedded sample (if the landing zone is empty), materialize every asset
run: $(STAMP) instance mlflow-store
	$(BIN)/mlops-assets generate --tasks $(SAMPLE_TASKS) --out $(MLOPS_LANDING_DIR) --if-empty
	$(BIN)/dagster asset materialize -m mlops_assets.definitions --select '*'

## test: the whole suite, on TEST_WORKERS pytest-xdist processes (default 2; TEST_WORKERS=0 runs it in one
## process). A test file stays on one worker (--dist loadfile), so module fixtures are built once.
## pytest's exit code 5 ("no tests collected") means the suite went missing: it fails here with a
## message rather than passing silently.
TEST_WORKERS ?= 2
test: $(STAMP)
	@rc=0; $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5): is mlops_assets_tests/ there?" >&2; fi; \
	exit $$rc

## ui: the Dagster UI on http://127.0.0.1:3000 against the same instance (daemon included); the code location is
## named mlops_assets as with `dg dev` (workspace.yaml), so sensor cursors and schedule states are shared
ui: $(STAMP) instance mlflow-store
	$(BIN)/dagster dev -w workspace.yaml --host 127.0.0.1 --port $${DAGSTER_PORT:-3000}

bench: $(STAMP)
	$(BIN)/mlops-assets bench --tasks $${BENCH_TASKS:-100000,1000000}

## lock: regenerate deploy/requirements.lock, the container image's pinned dependencies (see Dockerfile)
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml deploy/requirements-image.in --extra cluster --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes --no-header --custom-compile-command "make lock" \
		-o deploy/requirements.lock

lint: $(STAMP)
	$(BIN)/ruff check mlops_assets mlops_assets_tests scripts
	$(BIN)/ruff format --check mlops_assets mlops_assets_tests scripts

clean-data:
	rm -rf data/landing data/warehouse.duckdb data/warehouse.duckdb.wal data/mlflow data/reports data/exports .dagster

## serve: the online prediction service on http://127.0.0.1:$${MLOPS_SERVE_PORT:-8000} (champions from MLflow)
serve: $(STAMP)
	$(BIN)/python -m mlops_assets.serving

## mlflow-ui: the MLflow UI on the project's tracking store, http://127.0.0.1:5000
mlflow-ui: $(STAMP) mlflow-store
	$(BIN)/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///data/mlflow/mlflow.db} --host 127.0.0.1 --port $${MLFLOW_PORT:-5000}

## drift-demo: after `make run`, land a drifted batch and watch detection, retraining and the gate (same instance)
drift-demo: $(STAMP) instance
	$(BIN)/mlops-assets drift-demo --main-tasks $(SAMPLE_TASKS) --tasks $${DRIFT_TASKS:-1500}

## screenshots: regenerate the README's pictures in docs/images/ (a fresh 1,500-task sandbox, headless /usr/bin/chromium)
screenshots: $(STAMP)
	$(BIN)/mlops-assets screenshots --out docs/images
