"""Source of docs/architecture.png (diagrams-as-code, with the Kubernetes icons of `diagrams`).

    make diagram                         # = python docs/architecture.py
    python docs/architecture.py OUT      # writes OUT.png

Needs Graphviz (`apt-get install graphviz`) and the `diagrams` package (in the `dev` extra).
Stream and group names come from app.keys, the module the workers and the chart's KEDA
ScaledObjects are checked against, so the picture cannot name a stream the code does not use.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diagrams import Cluster, Diagram, Edge  # noqa: E402
from diagrams.k8s.clusterconfig import HPA  # noqa: E402
from diagrams.k8s.compute import Deployment, Pod  # noqa: E402
from diagrams.k8s.network import Ingress, Service  # noqa: E402
from diagrams.onprem.client import Users  # noqa: E402
from diagrams.onprem.inmemory import Redis  # noqa: E402

from app.keys import AGENTS, Keys  # noqa: E402

KEYS = Keys("agentic")
DEFAULT_OUT = ROOT / "docs" / "architecture"
GRAPH = {"fontsize": "22", "pad": "0.4", "nodesep": "0.55", "ranksep": "1.1", "splines": "spline"}
NODE = {"fontsize": "12"}
SSE = {"color": "darkgreen", "fontcolor": "darkgreen", "style": "bold"}
#: Edges that run against the left-to-right flow must not pull the layout (Graphviz ranks).
BACK = {"constraint": "false"}


def _workers(agent: str, stream: Redis) -> Deployment:
    """An agent's worker Deployment, scaled by its KEDA ScaledObject on its stream's lag."""
    with Cluster(f"{agent} workers"):
        deployment = Deployment(f"Deployment\nworker-{agent}")
        scaler = HPA(f"KEDA ScaledObject\nredis-streams lag of\n{KEYS.agent_stream(agent)}")
    stream >> Edge(label="XREADGROUP", color="steelblue") >> deployment
    stream >> Edge(label="lag", style="dashed", color="gray") >> scaler
    scaler >> Edge(label="scales 0..N", style="dashed", color="gray") >> deployment
    return deployment


def build(out: Path = DEFAULT_OUT, formats: tuple[str, ...] = ("png",)) -> Path:
    """Render the diagram to ``out`` + ``.png`` (and any other ``formats``, e.g. ``dot``)."""
    with Diagram(
        "agentic on Kubernetes: API, Redis Streams, KEDA-scaled agent workers, SSE",
        filename=str(out),
        outformat=list(formats),
        show=False,
        direction="LR",
        graph_attr=GRAPH,
        node_attr=NODE,
    ):
        users = Users("browser (GET /)\nagentic run / tasks / dlq")
        with Cluster("namespace agentic (Helm chart charts/agentic)"):
            ingress = Ingress("Ingress\n(SSE: no buffering)")
            service = Service("Service api")
            with Cluster("Deployment api (2+ replicas, PDB)"):
                api = [Pod("api pod\nplanner + SSE hub"), Pod("api pod\nplanner + SSE hub")]
            with Cluster("Redis 7: one stream per agent (AOF, noeviction)"):
                streams = {
                    agent: Redis(f"{KEYS.agent_stream(agent)}\ngroup {KEYS.agent_group(agent)}")
                    for agent in AGENTS
                }
            workers = {agent: _workers(agent, streams[agent]) for agent in AGENTS}
            with Cluster("the same Redis: event logs and task state"):
                events = Redis(f"{KEYS.events('<task id>')}\nevent log, one per task")
                state = Redis(f"{KEYS.task('<id>')} hashes\n{KEYS.delayed}, {KEYS.dlq}")

        users >> Edge(label="POST /run-task") >> ingress >> service >> api
        api[0] >> Edge(label="submit.lua: plan, XADD root steps") >> streams[AGENTS[0]]
        api[0] >> Edge(label="HGETALL (tasks, metrics)", style="dotted", **BACK) >> state
        for worker in workers.values():
            worker >> Edge(label="Lua: state, next steps, event", color="gray40") >> events
        events >> Edge(label="XREAD (one shared reader)", **SSE, **BACK) >> api[1]
        sse = "SSE: id = event-log id,\nresume with Last-Event-ID"
        api[1] >> Edge(label=sse, **SSE, **BACK) >> users
    return out.with_suffix(".png")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    print(build(target))
