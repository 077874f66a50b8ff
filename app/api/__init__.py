"""HTTP API: routes, SSE fan-out, drain."""
