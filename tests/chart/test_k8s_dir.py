"""k8s/ and skaffold.yaml: the dev loop's files agree with the chart and with their schemas."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.chart.conftest import CHART, ROOT, Tools, by_kind, named, schemas_dir

pytestmark = pytest.mark.chart

K8S = ROOT / "k8s"
SKAFFOLD = yaml.safe_load((ROOT / "skaffold.yaml").read_text())


def render_files(helm: Any, release: str, namespace: str, files: list[str]) -> list[dict[str, Any]]:
    args = [a for f in files for a in ("-f", str(ROOT / f))]
    proc = helm("template", release, str(CHART), "-n", namespace, *args)
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_skaffold_yaml_matches_the_v4beta13_schema() -> None:
    schema = json.loads(schemas_dir("skaffold", "v4beta13.json").read_text())
    assert SKAFFOLD["apiVersion"] == "skaffold/v4beta13"
    jsonschema.validate(SKAFFOLD, schema)
    assert SKAFFOLD["build"]["local"]["push"] is False


def test_skaffold_deploys_this_chart_with_the_built_image(helm: Any) -> None:
    image = SKAFFOLD["build"]["artifacts"][0]["image"]
    assert (ROOT / SKAFFOLD["build"]["artifacts"][0]["docker"]["dockerfile"]).exists()
    (release,) = SKAFFOLD["deploy"]["helm"]["releases"]
    assert (ROOT / release["chartPath"]).resolve() == CHART
    assert release["setValueTemplates"] == {
        "image.repository": f"{{{{.IMAGE_REPO_{image}}}}}",
        "image.tag": f"{{{{.IMAGE_TAG_{image}}}}}",
    }
    files = list(release["valuesFiles"])
    for profile in SKAFFOLD["profiles"]:
        files += [p["value"] for p in profile["patches"] if p["path"].endswith("valuesFiles/-")]
    assert all((ROOT / f).exists() for f in files)
    helm("lint", str(CHART), "--strict", *[a for f in files for a in ("-f", str(ROOT / f))])
    manifests = render_files(helm, release["name"], release["namespace"], files)
    (forward,) = SKAFFOLD["portForward"]
    service = named(manifests, "Service", forward["resourceName"])
    assert forward["namespace"] == release["namespace"]
    assert forward["port"] in [p["port"] for p in service["spec"]["ports"]]


@pytest.mark.parametrize(
    "files", [["k8s/values-kind.yaml"], ["k8s/values-kind.yaml", "k8s/values-noop.yaml"]]
)
def test_dev_overlays_render_valid_objects(helm: Any, files: list[str]) -> None:
    manifests = render_files(helm, "agentic", "agentic", files)
    for m in manifests:
        if m["apiVersion"].startswith("keda.sh") or m["kind"] == "ServiceMonitor":
            continue  # validated against their CRDs by test_schemas.py
        kubernetes_validate.validate(m, "1.35.0", strict=True)
    assert by_kind(manifests, "StatefulSet") and by_kind(manifests, "Ingress")


def test_kind_cluster_maps_ingress_ports() -> None:
    cluster = yaml.safe_load((K8S / "kind-cluster.yaml").read_text())
    assert (cluster["kind"], cluster["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    (ingress_node,) = [n for n in cluster["nodes"] if "extraPortMappings" in n]
    assert "ingress-ready=true" in "".join(ingress_node["kubeadmConfigPatches"])
    ports = {(p["containerPort"], p["hostPort"]) for p in ingress_node["extraPortMappings"]}
    assert ports == {(80, 80), (443, 443)}


@pytest.mark.parametrize("overlay", ["base", "burst"])
def test_loadtest_job_is_valid_and_targets_the_api_service(
    tools: Tools, helm: Any, overlay: str
) -> None:
    if tools.kubectl is None:
        pytest.skip("no kubectl binary for kustomize")
    out = subprocess.run(
        [str(tools.kubectl), "kustomize", str(K8S / "loadtest" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    (job,) = [d for d in yaml.safe_load_all(out) if d]
    kubernetes_validate.validate(job, "1.35.0", strict=True)
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] > 0
    args = spec["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "loadtest"

    from typer.main import get_command

    from app.cli import cli

    command = get_command(cli).commands["loadtest"]  # type: ignore[attr-defined]
    params = command.make_context("loadtest", list(args[1:])).params
    assert params["tasks"] > 0 and params["concurrency"] > 0 and params["json_out"]
    api = named(
        render_files(helm, "agentic", "agentic", ["k8s/values-kind.yaml"]), "Service", "agentic-api"
    )
    assert params["url"] == f"http://agentic-api:{api['spec']['ports'][0]['port']}"
