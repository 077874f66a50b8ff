"""docs/architecture.png is generated from docs/architecture.py (``make diagram``): render it."""

from __future__ import annotations

import importlib.util
import shutil
import struct
from pathlib import Path
from types import ModuleType

from app.keys import AGENTS, Keys
from tests.conftest import missing_tool

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "docs" / "architecture.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("architecture", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC, f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_the_diagram_renders_and_names_what_the_code_uses(tmp_path: Path) -> None:
    if shutil.which("dot") is None:
        missing_tool("Graphviz's `dot` is missing: apt-get install -y graphviz")
    png = load().build(tmp_path / "architecture", formats=("png", "dot"))
    width, height = png_size(png)
    assert width > 1500 and height > 600
    dot = (tmp_path / "architecture.dot").read_text()
    keys = Keys("agentic")
    for agent in AGENTS:  # one stream (with its group) and one scaled worker Deployment per agent
        assert f"{keys.agent_stream(agent)}\ngroup {keys.agent_group(agent)}" in dot
        assert f"worker-{agent}" in dot
    assert dot.count("KEDA ScaledObject") == len(AGENTS)
    for part in ("Ingress", "api pod", keys.events("<task id>"), "SSE", "Last-Event-ID"):
        assert part in dot, part


def test_the_committed_picture_is_there() -> None:
    width, _ = png_size(ROOT / "docs" / "architecture.png")
    assert width > 1500
