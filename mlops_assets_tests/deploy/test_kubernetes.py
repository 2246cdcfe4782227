"""deploy/kubernetes/ validated offline against the Kubernetes schemas (kubernetes-validate ships them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="pip install -e '.[dev]' (kubernetes-validate)"
)

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
VALUES = K8S / "dagster-values.yaml"
# the oldest minor still in support at the time of writing, and the newest the package ships
VERSIONS = ("1.31.0", kubernetes_validate.latest_version())


def _manifests() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path != VALUES:
            docs += [
                (f"{path.name}:{d['kind']}/{d['metadata']['name']}", d)
                for d in yaml.safe_load_all(path.read_text())
                if d
            ]
    return docs


def _by_kind(kind: str) -> dict:
    [doc] = [
        d for _, d in _manifests() if d["kind"] == kind and d["metadata"]["name"].startswith("mlops-scoring")
    ]
    return doc


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_strictly_against_the_kubernetes_schemas(version):
    manifests = _manifests()
    assert {d["kind"] for _, d in manifests} >= {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "PersistentVolumeClaim",
    }
    for name, doc in manifests:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{name} is not a valid {doc['kind']} for Kubernetes {version}: {exc.message} at {list(exc.path)}"
            )


def test_a_misspelled_field_is_caught_by_the_validation():
    deployment = _by_kind("Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_the_scoring_deployment_probes_ready_and_health_and_shares_the_model_cache():
    deployment = _by_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    cache = env["MLOPS_MODEL_CACHE"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    [cache_volume] = [name for name, path in mounts.items() if cache.startswith(path + "/")]
    claim = volumes[cache_volume]["persistentVolumeClaim"]["claimName"]
    pvcs = {d["metadata"]["name"]: d for _, d in _manifests() if d["kind"] == "PersistentVolumeClaim"}
    assert "ReadWriteMany" in pvcs[claim]["spec"]["accessModes"]  # one compile per version for every replica
    assert (
        pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == _dockerfile_user()
    )
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        doc = _by_kind(kind)
        selector = doc["spec"]["selector"].get("matchLabels", doc["spec"]["selector"])
        assert selector.items() <= labels.items(), f"the {kind} selects no pod of the Deployment"
    assert _by_kind("PodDisruptionBudget")["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    assert container["ports"][0]["containerPort"] == int(env["MLOPS_SERVE_PORT"])


def _dockerfile_user() -> int:
    return int(re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.M).group(1))


def test_the_helm_values_deploy_this_image_on_the_cluster_postgresql_with_valid_kubernetes_parts():
    values = yaml.safe_load(VALUES.read_text())
    assert (
        values["postgresql"]["enabled"] is False and values["postgresql"]["postgresqlDatabase"] == "dagster"
    )
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "mlops_assets.definitions"]
    assert f"{deployment['port']}" in re.search(
        r"^EXPOSE (.*)$", (ROOT / "Dockerfile").read_text(), re.M
    ).group(1)
    # every variable the values set is one the project reads (a typo would be silently ignored)
    known = set(
        re.findall(
            r"\b(MLOPS_[A-Z_]+|MLFLOW_[A-Z_]+)\b",
            (ROOT / "README.md").read_text()
            + (ROOT / "deploy" / "cluster" / "cluster.env.example").read_text(),
        )
    )
    assert {e["name"] for e in deployment["env"]} <= known
    # the chart copies these Kubernetes objects into its pods verbatim: validate them inside a Pod
    container = {
        "name": "user-code",
        "image": f"{deployment['image']['repository']}:{deployment['image']['tag']}",
        "env": deployment["env"],
        "envFrom": [{"secretRef": s} for s in deployment["envSecrets"]],
        "resources": deployment["resources"],
        "securityContext": deployment["securityContext"],
        "volumeMounts": deployment["volumeMounts"],
    }
    run_container = {
        "name": "run",
        "image": container["image"],
        **values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["containerConfig"],
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "chart-parts"},
        "spec": {
            "containers": [container, run_container],
            "volumes": deployment["volumes"],
            "securityContext": deployment["podSecurityContext"],
        },
    }
    kubernetes_validate.validate(pod, VERSIONS[-1], strict=True)
