# syntax=docker/dockerfile:1.7
# One image, two entrypoints: `agentic api` (the default) and `agentic worker --agents NAME`,
# chosen by the container's args (the Helm chart sets `args: ["worker", "--agents", "retriever"]`).
#
#   docker build -t agentic:dev .
#   docker run --rm -p 8000:8000 -e AGENTIC_REDIS_URL=redis://host:6379/0 agentic:dev
#   docker run --rm -e AGENTIC_REDIS_URL=... agentic:dev worker --agents retriever
#
# The final stage has no compiler, no pip cache and no wheels; it runs as uid 10001 and only
# needs a writable /tmp (the chart mounts an emptyDir there under readOnlyRootFilesystem).
# --- builder: every wheel the app needs, compiled here if no binary wheel exists ------------
FROM python:3.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY worker ./worker
# `loadtest` extra: the load-test Job (k8s/loadtest) runs `agentic loadtest` from this image.
RUN pip wheel --wheel-dir /wheels ".[loadtest]"

# --- runtime ---------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime
# tini as PID 1: forwards SIGTERM to the app (which drains) and reaps zombies. No -g: the
# `agentic up` supervisor forwards signals to its children itself, and a second SIGTERM would
# skip the API's drain.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 agentic \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin agentic
# The wheels are bind-mounted from the builder, so they never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels "agentic[loadtest]"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    AGENTIC_HOST=0.0.0.0 \
    AGENTIC_PORT=8000 \
    AGENTIC_WORKER_METRICS_PORT=9100 \
    AGENTIC_LOG_FORMAT=json
WORKDIR /tmp
USER 10001:10001
# 8000: API (/healthz, /readyz, /metrics); 9100: worker (/healthz, /metrics).
EXPOSE 8000 9100
# Whichever entrypoint runs, one of the two ports answers /healthz. (Kubernetes ignores
# HEALTHCHECK; the chart has its own probes.)
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os,sys,urllib.request as u\nfor p in (os.environ.get('AGENTIC_PORT','8000'), os.environ.get('AGENTIC_WORKER_METRICS_PORT','9100')):\n    try:\n        u.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=2); sys.exit(0)\n    except Exception: pass\nsys.exit(1)"]
ENTRYPOINT ["/usr/bin/tini", "--", "agentic"]
CMD ["api"]
