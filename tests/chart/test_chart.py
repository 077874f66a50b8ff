"""What breaks silently in production, asserted on the rendered chart: KEDA watching another
stream than the worker reads, Deployments selecting each other's pods, probes on paths nobody
serves, pods killed before they drain, env names the app never reads."""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.api.server import serve_api
from app.config import Settings
from app.keys import AGENTS, Keys
from tests.chart.conftest import CHART, ROOT, SCENARIOS, Manifest, RenderFn, by_kind, named

pytestmark = pytest.mark.chart

WORKLOADS = ("Deployment", "StatefulSet")


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "<from secret>") for e in container.get("env", [])}


def config_of(manifests: list[Manifest]) -> dict[str, str]:
    return dict(named(manifests, "ConfigMap", "agentic-config")["data"])


def worker(manifests: list[Manifest], agent: str) -> Manifest:
    return named(manifests, "Deployment", f"agentic-worker-{agent}")


@pytest.mark.parametrize("scenario", ["default", "keda-off", "ingress-nginx", "redis-internal"])
def test_helm_lint_strict(helm: Any, scenario: str) -> None:
    from tests.chart.conftest import set_args

    proc = helm("lint", str(CHART), "--strict", *set_args(SCENARIOS[scenario]))
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("prefix", ["agentic", "prod.q-1"])
def test_scaledobjects_watch_the_stream_and_group_the_worker_reads(
    render: RenderFn, prefix: str
) -> None:
    manifests = render({"config.AGENTIC_PREFIX": prefix})
    keys = Keys(prefix)
    assert config_of(manifests)["AGENTIC_PREFIX"] == prefix  # what the workers get
    scaled = {so["spec"]["scaleTargetRef"]["name"]: so for so in by_kind(manifests, "ScaledObject")}
    assert set(scaled) == {f"agentic-worker-{a}" for a in AGENTS}
    for agent in AGENTS:
        deployment = worker(manifests, agent)
        assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == [
            "worker",
            "--agents",
            agent,
        ]
        triggers = scaled[deployment["metadata"]["name"]]["spec"]["triggers"]
        assert {t["type"] for t in triggers} == {"redis-streams"}
        for t in triggers:
            assert t["metadata"]["stream"] == keys.agent_stream(agent)
            assert t["metadata"]["consumerGroup"] == keys.agent_group(agent)


def test_keda_triggers_scale_on_lag_and_hold_in_flight_work(render: RenderFn) -> None:
    manifests = render({"workers.agents.analyzer.concurrency": 4})
    so = named(manifests, "ScaledObject", "agentic-worker-analyzer")["spec"]
    backlog, in_flight = so["triggers"]
    assert backlog["metadata"]["lagCount"] == "4"  # one pod per `concurrency` waiting entries
    assert backlog["metadata"]["activationLagCount"] == "0"  # first entry activates
    assert "lagCount" not in in_flight["metadata"]  # KEDA's pending-entries mode
    assert in_flight["metadata"]["pendingEntriesCount"] == "4"
    assert (so["minReplicaCount"], so["maxReplicaCount"]) == (1, 10)
    down = so["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] > 0 and down["policies"][0]["value"] == 1
    for t in so["triggers"]:
        assert t["authenticationRef"]["name"] == "agentic-redis"
    auth = named(manifests, "TriggerAuthentication", "agentic-redis")
    secret = named(manifests, "Secret", "agentic-redis")
    ref = auth["spec"]["secretTargetRef"][0]
    assert (ref["parameter"], ref["name"]) == ("password", "agentic-redis")
    assert ref["key"] in secret["data"]


def test_keda_on_leaves_replicas_to_the_hpa_and_off_renders_plain_replicas(
    render: RenderFn,
) -> None:
    on = render()
    assert all("replicas" not in worker(on, a)["spec"] for a in AGENTS)
    off = render(SCENARIOS["keda-off"])
    assert not by_kind(off, "ScaledObject") and not by_kind(off, "TriggerAuthentication")
    assert worker(off, "writer")["spec"]["replicas"] == 3
    assert worker(off, "retriever")["spec"]["replicas"] == 1


def test_all_agents_at_zero_is_refused_unless_asked(helm: Any, render: RenderFn) -> None:
    from tests.chart.conftest import set_args

    zero = {f"workers.agents.{a}.keda.minReplicas": 0 for a in AGENTS}
    proc = helm("template", "x", str(CHART), *set_args(zero), check=False)
    assert proc.returncode != 0 and "delayed retries" in proc.stderr
    manifests = render(SCENARIOS["one-agent-scale-to-zero"])
    assert [so["spec"]["minReplicaCount"] for so in by_kind(manifests, "ScaledObject")] == [0]


@pytest.mark.parametrize("scenario", ["default", "redis-internal", "keda-off"])
def test_workload_selectors_do_not_overlap(render: RenderFn, scenario: str) -> None:
    workloads = [m for m in render(SCENARIOS[scenario]) if m["kind"] in WORKLOADS]
    assert len(workloads) >= 4
    for a in workloads:
        selector = a["spec"]["selector"]["matchLabels"]
        assert set(selector.items()) <= set(a["spec"]["template"]["metadata"]["labels"].items())
        for b in workloads:
            if b is not a:
                labels = b["spec"]["template"]["metadata"]["labels"]
                assert not set(selector.items()) <= set(labels.items()), (
                    f"{a['metadata']['name']} selects the pods of {b['metadata']['name']}"
                )


def test_services_and_pdbs_select_exactly_their_workload(render: RenderFn) -> None:
    manifests = render(SCENARIOS["redis-internal"])
    pods = {
        m["metadata"]["name"]: m["spec"]["template"]["metadata"]["labels"]
        for m in manifests
        if m["kind"] in WORKLOADS
    }
    selectors = [
        (m["metadata"]["name"], m["spec"]["selector"]) for m in by_kind(manifests, "Service")
    ]
    selectors += [
        (m["metadata"]["name"], m["spec"]["selector"]["matchLabels"])
        for m in by_kind(manifests, "PodDisruptionBudget")
    ]
    for name, selector in selectors:
        chosen = [w for w, labels in pods.items() if set(selector.items()) <= set(labels.items())]
        assert chosen == [name], f"{name} selects {chosen}"


def test_api_probes_hit_what_a_real_api_process_serves(
    render: RenderFn, settings: Settings, tmp_path: Path
) -> None:
    from tests.integration.procs import start_api

    container = named(render(), "Deployment", "agentic-api")["spec"]["template"]["spec"][
        "containers"
    ][0]
    port = container["ports"][0]
    assert port["containerPort"] == int(env_of(container)["AGENTIC_PORT"])
    probes = {
        k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert (probes["livenessProbe"]["path"], probes["readinessProbe"]["path"]) == (
        "/healthz",
        "/readyz",
    )
    api = start_api(settings, tmp_path)
    try:
        for probe in probes.values():
            assert probe["port"] == port["name"]
            assert httpx.get(api.url + probe["path"], timeout=5).status_code == 200
    finally:
        api.terminate()


async def test_worker_probes_hit_the_worker_health_endpoint(render: RenderFn) -> None:
    from tests.integration.procs import free_port
    from worker.health import serve_health

    container = worker(render(), "retriever")["spec"]["template"]["spec"]["containers"][0]
    port = int(env_of(container)["AGENTIC_WORKER_METRICS_PORT"])
    assert container["ports"][0]["containerPort"] == port
    real_port = free_port()
    server = await serve_health(real_port, host="127.0.0.1")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{real_port}") as client:
            for kind in ("livenessProbe", "readinessProbe"):
                probe = container[kind]["httpGet"]
                assert probe["port"] == container["ports"][0]["name"]
                assert (await client.get(probe["path"])).status_code == 200
            assert "# TYPE" in (await client.get("/metrics")).text
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


def test_drain_timings_add_up(render: RenderFn) -> None:
    manifests = render()
    graceful_s = inspect.signature(serve_api).parameters["graceful_s"].default
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    chart_graceful = re.search(r'"agentic.uvicornGracefulSeconds" -}}(\d+)', helpers)
    assert chart_graceful and int(chart_graceful.group(1)) == graceful_s
    api = named(manifests, "Deployment", "agentic-api")["spec"]["template"]["spec"]
    container = api["containers"][0]
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    drain_s = float(env_of(container)["AGENTIC_DRAIN_S"])
    assert float(sleep[1]) + drain_s + graceful_s < api["terminationGracePeriodSeconds"]
    for agent in AGENTS:
        spec = worker(manifests, agent)["spec"]["template"]["spec"]
        env = env_of(spec["containers"][0])
        stop_s = float(env["AGENTIC_WORKER_GRACE_S"]) + float(env["AGENTIC_BLOCK_MS"]) / 1000
        assert stop_s < spec["terminationGracePeriodSeconds"]


@pytest.mark.parametrize(
    "values",
    [
        {"api.env.AGENTIC_DRAIN_S": "20"},
        {"api.preStopSleepSeconds": 30},
        {"workers.env.AGENTIC_WORKER_GRACE_S": "40"},
    ],
)
def test_render_refuses_timings_that_cut_the_drain(helm: Any, values: dict[str, Any]) -> None:
    from tests.chart.conftest import set_args

    proc = helm("template", "x", str(CHART), *set_args(values), check=False)
    assert proc.returncode != 0 and "terminationGracePeriodSeconds" in proc.stderr


@pytest.mark.parametrize("scenario", ["default", "redis-internal", "external-acl-tls"])
def test_every_agentic_env_name_is_a_setting(render: RenderFn, scenario: str) -> None:
    fields = {f"AGENTIC_{name.upper()}" for name in Settings.model_fields}
    manifests = render(SCENARIOS[scenario])
    names = set(config_of(manifests))
    for m in manifests:
        if m["kind"] in (*WORKLOADS, "Pod"):
            for c in m["spec"].get("template", m)["spec"]["containers"]:
                names |= {n for n in env_of(c) if n.startswith("AGENTIC_")}
    assert names - fields == set(), "env names app/config.py does not read"
    assert {"AGENTIC_REDIS_URL", "AGENTIC_PREFIX", "AGENTIC_WORKER_CONCURRENCY"} <= names


def test_pods_run_hardened(render: RenderFn) -> None:
    for m in render(SCENARIOS["redis-internal"]):
        if m["kind"] not in (*WORKLOADS, "Pod"):
            continue
        pod = m["spec"].get("template", m)["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        mounts_tmp = any(v["name"] == "tmp" for v in pod["volumes"])
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert c["resources"]["limits"] and c["resources"]["requests"]
            assert mounts_tmp and any(v["mountPath"] == "/tmp" for v in c["volumeMounts"])


def test_redis_url_comes_from_a_secret_and_keda_gets_the_same_server(render: RenderFn) -> None:
    import base64

    manifests = render(SCENARIOS["external-acl-tls"])
    secret = named(manifests, "Secret", "agentic-redis")["data"]
    decoded = {k: base64.b64decode(v).decode() for k, v in secret.items()}
    assert decoded == {
        "redis-url": "rediss://app:s3cret@redis.prod.example:6380/2",
        "redis-password": "s3cret",
        "redis-username": "app",
    }
    for agent in AGENTS:
        env = worker(manifests, agent)["spec"]["template"]["spec"]["containers"][0]["env"]
        url = next(e for e in env if e["name"] == "AGENTIC_REDIS_URL")
        assert url["valueFrom"]["secretKeyRef"] == {"name": "agentic-redis", "key": "redis-url"}
        assert (
            worker(manifests, agent)["spec"]["template"]["spec"]["containers"][0]["image"]
            == "agentic@sha256:" + "a" * 64
        )
    meta = by_kind(manifests, "ScaledObject")[0]["spec"]["triggers"][0]["metadata"]
    assert (meta["address"], meta["databaseIndex"], meta["enableTLS"]) == (
        "redis.prod.example:6380",
        "2",
        "true",
    )
    params = {
        r["parameter"]
        for r in by_kind(manifests, "TriggerAuthentication")[0]["spec"]["secretTargetRef"]
    }
    assert params == {"password", "username"}


def test_llm_api_key_comes_from_a_secret_never_a_value(render: RenderFn) -> None:
    values = {
        "llm": {"existingSecret": "agentic-llm"},
        "config": {"AGENTIC_LLM_PROVIDER": "openai"},
    }
    manifests = render(values)
    containers = [
        worker(manifests, agent)["spec"]["template"]["spec"]["containers"][0] for agent in AGENTS
    ]
    containers.append(
        named(manifests, "Deployment", "agentic-api")["spec"]["template"]["spec"]["containers"][0]
    )
    for container in containers:
        key = next(e for e in container["env"] if e["name"] == "AGENTIC_OPENAI_API_KEY")
        assert key["valueFrom"]["secretKeyRef"] == {"name": "agentic-llm", "key": "api-key"}
    configmaps = " ".join(str(m["data"]) for m in by_kind(manifests, "ConfigMap"))
    assert "OPENAI_API_KEY" not in configmaps
    default = render()
    assert "AGENTIC_OPENAI_API_KEY" not in str(default)


def test_default_external_redis_is_qualified_for_kedas_namespace(render: RenderFn) -> None:
    meta = by_kind(render(), "ScaledObject")[0]["spec"]["triggers"][0]["metadata"]
    assert meta["address"] == "redis.agentic.svc:6379"
    existing = render(SCENARIOS["existing-secret"])
    assert not by_kind(existing, "Secret")
    ref = by_kind(existing, "TriggerAuthentication")[0]["spec"]["secretTargetRef"][0]
    assert ref["name"] == "my-redis"


def test_in_chart_redis_is_durable_and_never_evicts(render: RenderFn) -> None:
    manifests = render(SCENARIOS["redis-internal"])
    conf = named(manifests, "ConfigMap", "agentic-redis")["data"]["redis.conf"]
    settings = dict(line.split(" ", 1) for line in conf.strip().splitlines())
    assert settings["appendonly"] == "yes" and settings["appendfsync"] in ("always", "everysec")
    assert settings["maxmemory-policy"] == "noeviction"
    sts = named(manifests, "StatefulSet", "agentic-redis")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("redis:7.")
    assert "requirepass" not in " ".join(container.get("args", []))  # no password in argv
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    import base64

    url = base64.b64decode(
        named(manifests, "Secret", "agentic-redis")["data"]["redis-url"]
    ).decode()
    assert re.fullmatch(r"redis://:[A-Za-z0-9]{32}@agentic-redis\.agentic\.svc:6379/0", url)
    meta = by_kind(manifests, "ScaledObject")[0]["spec"]["triggers"][0]["metadata"]
    assert meta["address"] == "agentic-redis.agentic.svc:6379"
    policies = {m["metadata"]["name"] for m in by_kind(manifests, "NetworkPolicy")}
    assert "agentic-redis" in policies


def test_ingress_carries_the_sse_settings_of_its_controller(render: RenderFn) -> None:
    nginx = named(render(SCENARIOS["ingress-nginx"]), "Ingress", "agentic-api")
    notes = nginx["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert nginx["spec"]["ingressClassName"] == "nginx"
    backend = nginx["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "agentic-api", "port": {"name": "http"}}
    haproxy = named(render(SCENARIOS["ingress-haproxy"]), "Ingress", "agentic-api")
    assert haproxy["metadata"]["annotations"]["haproxy.org/timeout-server"] == "1h"
    route = named(render(SCENARIOS["httproute"]), "HTTPRoute", "agentic-api")
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "agentic-api", "port": 8000}]


def test_servicemonitors_scrape_api_and_every_worker(render: RenderFn) -> None:
    manifests = render(SCENARIOS["servicemonitor"])
    monitors = {m["metadata"]["name"]: m for m in by_kind(manifests, "ServiceMonitor")}
    services = by_kind(manifests, "Service")
    for name, port in (("agentic-api", "http"), ("agentic-workers", "metrics")):
        sm = monitors[name]
        assert sm["metadata"]["labels"]["release"] == "prom"
        chosen = [
            s
            for s in services
            if set(sm["spec"]["selector"]["matchLabels"].items())
            <= set(s["metadata"]["labels"].items())
        ]
        assert chosen and all(port in [p["name"] for p in s["spec"]["ports"]] for s in chosen)
        assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    assert len([s for s in services if "worker" in s["metadata"]["name"]]) == len(AGENTS)


def test_checksums_roll_pods_when_config_changes(render: RenderFn) -> None:
    def checksum(manifests: list[Manifest]) -> str:
        ann = named(manifests, "Deployment", "agentic-api")["spec"]["template"]["metadata"][
            "annotations"
        ]
        return str(ann["checksum/config"])

    assert checksum(render()) == checksum(render())
    assert checksum(render()) != checksum(render({"config.AGENTIC_LOG_LEVEL": "DEBUG"}))


def test_helm_test_hook_checks_readyz_then_runs_a_task(render: RenderFn) -> None:
    pod = next(m for m in render() if m["kind"] == "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    init = pod["spec"]["initContainers"][0]
    assert "/readyz" in init["args"][0] and "agentic-api:8000" in init["args"][0]
    run = pod["spec"]["containers"][0]["args"]
    assert run[0] == "run" and run[run.index("--url") + 1] == "http://agentic-api:8000"


def test_image_entrypoint_matches_the_args_the_chart_passes() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    entry = yaml.safe_load(re.search(r"^ENTRYPOINT (.+)$", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    cmd = yaml.safe_load(re.search(r"^CMD (.+)$", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    assert entry[-1] == "agentic" and cmd == ["api"]
    assert re.search(r"^USER 10001", dockerfile, re.M)
    from typer.main import get_command

    from app.cli import cli

    commands = get_command(cli).commands  # type: ignore[attr-defined]
    assert {"api", "worker", "run", "loadtest"} <= set(commands)
