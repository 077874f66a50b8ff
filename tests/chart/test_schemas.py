"""Every rendered object against real schemas: Kubernetes (kubernetes-validate, strict), KEDA's
CRDs (v2.20.2, made strict: the API server would silently prune unknown fields) and KEDA's
list of scaler parameters; values.schema.json rejects what the templates cannot honour."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.chart.conftest import CHART, SCENARIOS, Manifest, RenderFn, by_kind, schemas_dir

pytestmark = pytest.mark.chart

K8S_VERSIONS = ("1.29.0", "1.35.0")  # Chart.yaml kubeVersion floor, and kind's current node
KEDA_KINDS = {
    "ScaledObject": "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
}


def strict(schema: Any) -> Any:
    """additionalProperties: false wherever the CRD lists properties and allows nothing else."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def _apply_patch(schema: dict[str, Any], patch: list[dict[str, Any]]) -> None:
    """The JSON-patch `add` ops of scaledobject_patch.yaml (what KEDA's release applies)."""
    prefix = "/spec/versions/0/schema/openAPIV3Schema"
    for op in patch:
        assert op["op"] == "add" and op["path"].startswith(prefix)
        *parents, leaf = op["path"][len(prefix) + 1 :].split("/")
        node = schema
        for part in parents:
            node = node[part]
        node[leaf] = op["value"]


def keda_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load(schemas_dir("keda-v2.20.2", KEDA_KINDS[kind]).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
    if kind == "ScaledObject":
        patch = yaml.safe_load(schemas_dir("keda-v2.20.2", "scaledobject_patch.yaml").read_text())
        _apply_patch(schema, patch)
    return dict(strict(schema))


def scaler_parameters(scaler: str) -> set[str]:
    data = json.loads(schemas_dir("keda-v2.20.2", "scalers-schema.json").read_text())
    entry = next(s for s in data["scalers"] if s["type"] == scaler)
    return {p["name"] for p in entry["parameters"]}


def check_custom(m: Manifest) -> None:
    """Kinds with no schema here (ServiceMonitor, HTTPRoute): their required shape."""
    if m["kind"] == "ServiceMonitor":
        assert m["apiVersion"] == "monitoring.coreos.com/v1"
        assert m["spec"]["selector"]["matchLabels"] and m["spec"]["endpoints"]
        for ep in m["spec"]["endpoints"]:
            assert set(ep) <= {"port", "path", "interval", "scrapeTimeout"}
    elif m["kind"] == "HTTPRoute":
        assert m["apiVersion"] == "gateway.networking.k8s.io/v1"
        assert m["spec"]["parentRefs"] and m["spec"]["rules"]
        for rule in m["spec"]["rules"]:
            assert set(rule) <= {"matches", "backendRefs", "timeouts", "filters"}
    else:
        raise AssertionError(f"no schema for {m['apiVersion']} {m['kind']}")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_object_validates(render: RenderFn, scenario: str) -> None:
    manifests = render(SCENARIOS[scenario])
    keda = {kind: keda_schema(kind) for kind in KEDA_KINDS}
    for m in manifests:
        if m["kind"] in keda:
            assert m["apiVersion"] == "keda.sh/v1alpha1"
            jsonschema.validate(m, keda[m["kind"]])
        elif m["kind"] in ("ServiceMonitor", "HTTPRoute"):
            check_custom(m)
        else:
            for version in K8S_VERSIONS:
                kubernetes_validate.validate(m, version, strict=True)
        assert m["metadata"].get("namespace") == "agentic", f"{m['kind']} has no namespace"


@pytest.mark.parametrize("scenario", ["default", "external-acl-tls", "redis-internal"])
def test_trigger_metadata_is_known_to_keda_and_strings(render: RenderFn, scenario: str) -> None:
    manifests = render(SCENARIOS[scenario])
    for so in by_kind(manifests, "ScaledObject"):
        for trigger in so["spec"]["triggers"]:
            known = scaler_parameters(trigger["type"])
            meta = trigger["metadata"]
            assert set(meta) <= known, f"unknown to KEDA: {set(meta) - known}"
            assert all(isinstance(v, str) for v in meta.values()), meta
    for ta in by_kind(manifests, "TriggerAuthentication"):
        for ref in ta["spec"]["secretTargetRef"]:
            assert ref["parameter"] in scaler_parameters("redis-streams")


def test_values_schema_rejects_what_the_chart_cannot_honour(helm: Any) -> None:
    bad = {
        "config.AGENTIC_REDIS_URL": "redis://x",  # must come from the Secret
        "workers.agents.planner": {"enabled": True, "concurrency": 1},  # not an agent
        "config.AGENTIC_PREFIX": "a b",  # not a valid prefix
        "workers.agents.writer.keda.lagCount": 5.5,
        "ingress.controller": "apache",
    }
    from tests.chart.conftest import set_args

    for key, value in bad.items():
        proc = helm("template", "x", str(CHART), *set_args({key: value}), check=False)
        assert proc.returncode != 0, f"{key}={value!r} was accepted"
        assert "values don't meet the specifications" in proc.stderr or "schema" in proc.stderr


def test_values_yaml_is_valid_against_its_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text()), schema)


def test_the_validators_can_fail(render: RenderFn) -> None:
    """A field KEDA would silently prune, a number where KEDA wants a string, a typo in a
    Deployment: each is rejected, so the passes above mean something."""
    manifests = render()
    so = copy.deepcopy(by_kind(manifests, "ScaledObject")[0])
    so["spec"]["triggers"][0]["metadata"]["lagCount"] = 5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(so, keda_schema("ScaledObject"))
    so = copy.deepcopy(by_kind(manifests, "ScaledObject")[0])
    so["spec"]["minReplicas"] = 1  # the field is minReplicaCount
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(so, keda_schema("ScaledObject"))
    deployment = copy.deepcopy(by_kind(manifests, "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(jsonschema.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_install_notes_render(helm: Any) -> None:
    proc = helm("install", "agentic", str(CHART), "-n", "agentic", "--dry-run=client")
    notes = proc.stdout.partition("NOTES:")[2]
    assert "stream agentic:agent:retriever, group retriever" in notes
    assert "helm test agentic -n agentic" in notes
