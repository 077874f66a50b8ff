"""Every error answer is JSON: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import AgenticError, DeadLetterNotFound, PlanError, TaskConflict, TaskNotFound

log = structlog.get_logger("agentic.api")

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    503: "unavailable",
}


def error_response(
    status: int, message: str, details: Any = None, code: str | None = None
) -> JSONResponse:
    body = {
        "error": {
            "code": code or _HTTP_CODES.get(status, "error"),
            "message": message,
            "details": details,
        }
    }
    return JSONResponse(body, status_code=status)


#: Our own errors, as the HTTP answers they become (status, code).
APP_ERRORS: dict[type[AgenticError], tuple[int, str]] = {
    TaskNotFound: (404, "task_not_found"),
    DeadLetterNotFound: (404, "dead_letter_not_found"),
    TaskConflict: (409, "task_finished"),
    PlanError: (422, "plan_error"),
}


def app_error_response(exc: Exception) -> JSONResponse:
    """The answer to an exception a request raised: ours by ``APP_ERRORS``, anything else a
    logged 500. Call it where the exception is being handled (the log takes its traceback).
    Used by the exception handlers and by the /stream fast path, which runs outside them."""
    for kind, (status, code) in APP_ERRORS.items():
        if isinstance(exc, kind):
            return error_response(status, str(exc), code=code)
    log.exception("unhandled error", error=type(exc).__name__)
    return error_response(500, "internal error", code="internal")


def _clean(errors: list[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": err.get("msg", ""), "type": err.get("type", "")})
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = _clean(list(exc.errors()))
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(p for p in first["loc"] if p != "body") or "body"
        return error_response(422, f"{where}: {first['msg']}", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    async def _app_error(_: Request, exc: Exception) -> JSONResponse:
        return app_error_response(exc)

    for kind in (*APP_ERRORS, Exception):
        app.add_exception_handler(kind, _app_error)
