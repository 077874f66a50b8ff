"""Static security scan with checkov: the rendered chart (defaults, and every optional object
switched on) and the Dockerfile. Nothing may fail unless charts/agentic/.checkov.yaml skips it
with a reason on the same line (or a template carries a `checkov.io/skipN` annotation with one).

checkov pins many libraries of its own, so .ci/run installs it in its own venv (.venv/checkov)
and points CHECKOV_BIN at it; --skip-download keeps it off the network."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chart.conftest import CHART, NAMESPACE, RELEASE, ROOT, set_args
from tests.conftest import missing_tool

pytestmark = pytest.mark.chart

CONFIG = CHART / ".checkov.yaml"
EVERYTHING_ON = {
    "redis.internal.enabled": True,
    "ingress.enabled": True,
    "httpRoute.enabled": True,
    "metrics.serviceMonitor.enabled": True,
}


@pytest.fixture(scope="module")
def checkov() -> Path:
    candidates = [
        os.environ.get("CHECKOV_BIN"),
        str(ROOT / ".venv" / "checkov" / "bin" / "checkov"),
        shutil.which("checkov"),
    ]
    for c in candidates:
        if c and Path(c).exists():
            return Path(c)
    missing_tool("checkov not installed: .ci/run puts it in .venv/checkov (pip install checkov)")


def scan(checkov: Path, *args: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [str(checkov), "--compact", "--quiet", "--skip-download", "-o", "json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stdout.strip(), f"checkov printed nothing:\n{proc.stderr[-3000:]}"
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f for r in reports for f in r.get("results", {}).get("failed_checks", [])]
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports if "summary" in r)
    assert sum(r["summary"]["passed"] for r in reports if "summary" in r) > 20, "scanned nothing"
    return failed


def describe(failed: list[dict[str, Any]]) -> str:
    return "\n".join(f"{f['check_id']} {f['resource']}: {f['check_name']}" for f in failed)


@pytest.mark.parametrize("values", [{}, EVERYTHING_ON], ids=["default", "everything-on"])
def test_rendered_chart_has_no_unexplained_finding(
    checkov: Path, helm: Any, tmp_path: Path, values: dict[str, Any]
) -> None:
    rendered = tmp_path / "rendered.yaml"
    proc = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, *set_args(values))
    rendered.write_text(proc.stdout)
    failed = scan(checkov, "-f", str(rendered), "--config-file", str(CONFIG))
    assert not failed, describe(failed)


def test_dockerfile_has_no_finding(checkov: Path) -> None:
    failed = scan(checkov, "-f", str(ROOT / "Dockerfile"), "--framework", "dockerfile")
    assert not failed, describe(failed)


def test_every_skip_says_why() -> None:
    lines = CONFIG.read_text().splitlines()
    skips = [line for line in lines if re.match(r"\s*-\s*CKV", line)]
    assert skips
    for line in skips:
        reason = line.partition("#")[2].strip()
        assert len(reason) > 30, f"skip without a reason: {line.strip()}"
    for template in (CHART / "templates").rglob("*.yaml"):
        for match in re.finditer(r"checkov\.io/skip\d+: (CKV\w+)=(.*)", template.read_text()):
            assert len(match.group(2).strip()) > 30, (
                f"{template.name}: {match.group(1)} without reason"
            )
