"""The web page at ``GET /`` and its static files, with the security headers that hold it in.

Everything the page needs is in ``app/api/static/`` (flat: the package data glob is
``static/*``), vendored libraries included, so nothing comes from a CDN. The files are read once
into memory (a few hundred kB) and served with a content hash as ``ETag``, so a reload costs a
304. Only names that exist in that folder are served: a request path never reaches the file
system, so there is no traversal to get wrong.

The page renders text from users, documents and models, so the headers are the second line of
defence behind the page's own rules (``textContent`` for text, DOMPurify for Markdown):

- ``script-src 'self'``: no inline script, no ``eval``; an injected ``onerror=`` cannot run.
- ``require-trusted-types-for 'script'``: the browser refuses any string assigned to
  ``innerHTML`` and friends unless it went through the ``dompurify`` policy.
- ``img-src 'self' data:`` and ``connect-src 'self'``: a report cannot beacon out.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Response

STATIC_DIR = Path(__file__).with_name("static")

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types dompurify",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
#: Explicit types for what the folder holds; ES modules need a JavaScript MIME type.
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


@lru_cache(maxsize=1)
def static_files() -> dict[str, StaticFile]:
    """Every file of the static folder by name, read once."""
    files: dict[str, StaticFile] = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        body = path.read_bytes()
        media_type = MEDIA_TYPES.get(path.suffix) or (
            mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        )
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        files[path.name] = StaticFile(body, media_type, etag)
    return files


def _serve(name: str, if_none_match: str | None) -> Response:
    file = static_files().get(name)
    if file is None:
        return Response(status_code=404, headers=SECURITY_HEADERS)
    headers = {**SECURITY_HEADERS, "ETag": file.etag, "Cache-Control": "no-cache"}
    if if_none_match is not None and file.etag in if_none_match:
        return Response(status_code=304, headers=headers)
    return Response(file.body, media_type=file.media_type, headers=headers)


IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match")]


@router.api_route("/", methods=["GET", "HEAD"])
async def index(if_none_match: IfNoneMatch = None) -> Response:
    return _serve("index.html", if_none_match)


@router.api_route("/static/{name}", methods=["GET", "HEAD"])
async def static(name: str, if_none_match: IfNoneMatch = None) -> Response:
    return _serve(name, if_none_match)
