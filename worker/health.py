"""The worker's HTTP endpoint: ``/metrics`` (Prometheus) and ``/healthz``.

Served by the worker's own event loop on purpose: if the loop is wedged, /healthz stops
answering and the liveness probe restarts the pod (a thread-served endpoint would keep saying
"ok"). Small enough that a web framework would be all overhead.
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

MAX_REQUEST_BYTES = 8192


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        writer.close()
        return
    parts = request.split(b" ", 2)
    method, path = (parts[0], parts[1].split(b"?")[0]) if len(parts) == 3 else (b"", b"")
    if method != b"GET":
        reply = _response("405 Method Not Allowed", "text/plain", b"method not allowed\n")
    elif path == b"/healthz":
        reply = _response("200 OK", "application/json", b'{"status":"ok"}')
    elif path == b"/metrics":
        reply = _response("200 OK", CONTENT_TYPE_LATEST, generate_latest())
    else:
        reply = _response("404 Not Found", "text/plain", b"not found\n")
    writer.write(reply)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


async def serve_health(port: int, host: str = "0.0.0.0") -> asyncio.Server:
    return await asyncio.start_server(_handle, host, port, limit=MAX_REQUEST_BYTES)
