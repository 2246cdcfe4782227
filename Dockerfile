# One image for the Dagster user code (Helm chart: dagster-user-deployments) and the scoring service.
#   docker build -t mlops-assets:$(git rev-parse --short HEAD) .
#   scoring service (the default command):  docker run -p 8000:8000 --env-file cluster.env mlops-assets:TAG
#   Dagster user code: the chart runs `dagster api grpc -h 0.0.0.0 -p 3030 -m mlops_assets.definitions`
# Dependencies come from deploy/requirements.lock (every package pinned with hashes; `make lock` regenerates
# it from pyproject.toml with the cluster extra and deploy/requirements-image.in). No dev extras.
# mlops_assets_tests/deploy/test_container.py runs the builder's install steps into a fresh virtual
# environment and starts both entry points from it; hadolint lints this file there too.

FROM python:3.11.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy VENV=/opt/venv
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /src
COPY deploy/requirements.lock deploy/requirements.lock
# install: the locked dependencies, hashes required, nothing resolved at build time
RUN uv venv --python python3.11 "$VENV" && uv pip install --python "$VENV/bin/python" --require-hashes --no-deps -r deploy/requirements.lock
COPY pyproject.toml README.md ./
COPY mlops_assets mlops_assets
# install: the project itself, as a wheel (not editable), without touching the locked dependencies
RUN uv pip install --python "$VENV/bin/python" --no-deps .

FROM python:3.11.11-slim-bookworm
# libgomp1: LightGBM's OpenMP runtime (the slim image does not have it)
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 mlops \
    && useradd --system --uid 10001 --gid mlops --home-dir /app --create-home mlops \
    && mkdir -p /var/cache/mlops /app/dagster_home \
    && chown -R mlops:mlops /var/cache/mlops /app
COPY --from=builder /opt/venv /opt/venv
# MLOPS_HOME: the project's folder for relative data paths (none is in the image: data lives on mounts);
# MLOPS_MODEL_CACHE: champions compiled for scoring, a volume shared by the replicas in Kubernetes.
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    MLOPS_HOME=/app DAGSTER_HOME=/app/dagster_home MLOPS_SERVE_HOST=0.0.0.0 MLOPS_SERVE_PORT=8000 \
    MLOPS_MODEL_CACHE=/var/cache/mlops/forests
WORKDIR /app
USER 10001:10001
EXPOSE 8000 3030
# Liveness of the scoring service (the default command); Kubernetes uses its own probes (deploy/kubernetes/).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('MLOPS_SERVE_PORT', '8000'), timeout=4)"]
CMD ["python", "-m", "mlops_assets.serving"]
