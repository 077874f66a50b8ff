"""URL fetch tool of the retriever, guarded against SSRF (``app.agents.netguard``).

``await GuardedFetcher(...).fetch(url)`` never raises: it returns a :class:`FetchResult` whose
``status`` is ``fetched``, ``blocked`` (the guard said no), ``unsupported`` (content type) or
``error`` (HTTP error, timeout, too many redirects, connection failure).

How one fetch goes:

1. :meth:`Guard.check` parses the URL, resolves the host once and checks every address.
2. The request goes to the checked address itself (``Target.pinned_url``, e.g.
   ``https://93.184.216.34:443/path``) with ``Host: example.com`` and, for https, the
   ``sni_hostname`` extension, so TLS still verifies the certificate for the name. No DNS
   lookup happens at connect time: a rebinding answer cannot move the connection elsewhere.
   ``trust_env=False``: no proxy from the environment can take the request either.
3. Redirects are not followed by httpx: each ``Location`` is resolved against the current URL
   and goes through step 1 again, at most ``max_redirects`` times. A redirect may lead to
   another public host: the page's server could serve that content itself, so this gives a
   page no reach the user did not grant; what is refused is any non-public address.
4. Only ``text/html``, ``application/xhtml+xml``, ``text/plain`` and Markdown are read, with
   ``Accept-Encoding: identity``, streamed and cut at ``max_bytes`` (``truncated: true``).
   The whole fetch, redirects included, is bounded by ``timeout_s``.
5. HTML becomes text with trafilatura (``app.agents.extract``), in a thread; the text is cut
   at ``max_chars``.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin

import httpx

from app.agents.extract import html_to_text
from app.agents.netguard import Blocked, Guard, Target, Unresolvable

if TYPE_CHECKING:
    from app.config import Settings

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_BYTES = 2_000_000
DEFAULT_MAX_REDIRECTS = 5
DEFAULT_MAX_CHARS = 20_000
USER_AGENT = "agentic-retriever/0.1"
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/x-markdown"})
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})

FetchStatus = Literal["fetched", "blocked", "unsupported", "error"]


@dataclass(slots=True)
class FetchResult:
    url: str
    status: FetchStatus
    reason: str = ""
    final_url: str = ""
    http_status: int | None = None
    content_type: str = ""
    title: str = ""
    text: str = ""
    bytes_read: int = 0
    truncated: bool = False
    redirects: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The result without its text: what goes into the retriever's ``urls`` list."""
        out = asdict(self)
        out.pop("text")
        return {k: v for k, v in out.items() if v not in ("", None, [])}


class _Stop(Exception):  # internal control signal: end the fetch with this result
    def __init__(self, status: FetchStatus, reason: str, http_status: int | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.http_status = status, reason, http_status


class GuardedFetcher:
    def __init__(
        self,
        guard: Guard | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        max_chars: int = DEFAULT_MAX_CHARS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.guard = guard or Guard()
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.max_chars = max_chars
        self.transport = transport  # tests only; None: a fresh AsyncHTTPTransport per fetch

    @classmethod
    def from_settings(cls, settings: Settings) -> GuardedFetcher:
        return cls(
            timeout_s=settings.fetch_timeout_s,
            max_bytes=settings.fetch_max_bytes,
            max_redirects=settings.fetch_max_redirects,
            max_chars=settings.fetch_max_chars,
        )

    async def fetch(self, url: str) -> FetchResult:
        result = FetchResult(url=url, status="error")
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._fetch(url, result)
        except Unresolvable as exc:
            result.status, result.reason = "error", str(exc)
        except Blocked as exc:
            result.status, result.reason = "blocked", str(exc)
        except _Stop as stop:
            result.status, result.reason, result.http_status = (
                stop.status,
                stop.reason,
                stop.http_status,
            )
        except TimeoutError:
            result.status, result.reason = "error", f"timed out after {self.timeout_s:g} s"
        except httpx.HTTPError as exc:
            result.status, result.reason = "error", f"{type(exc).__name__}: {exc}"[:300]
        return result

    async def _fetch(self, url: str, result: FetchResult) -> None:
        async with httpx.AsyncClient(
            transport=self.transport,
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(self.timeout_s),
        ) as client:
            current = url
            for _hop in range(self.max_redirects + 1):
                target = await self.guard.check(current)
                result.final_url = current
                location = await self._get(client, target, result)
                if location is None:
                    return
                current = urljoin(current, location)
                result.redirects.append(current)
            raise _Stop("error", f"more than {self.max_redirects} redirects")

    async def _get(
        self, client: httpx.AsyncClient, target: Target, result: FetchResult
    ) -> str | None:
        """Fill ``result`` from one response; the next URL if it is a redirect."""
        async with client.stream(
            "GET", target.pinned_url, headers=_headers(target), extensions=_extensions(target)
        ) as resp:
            result.http_status = resp.status_code
            if resp.status_code in REDIRECT_CODES:
                location = str(resp.headers.get("location") or "")
                if not location:
                    raise _Stop("error", "redirect without a Location", resp.status_code)
                return location
            if resp.status_code != 200:
                raise _Stop("error", f"HTTP {resp.status_code}", resp.status_code)
            ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            result.content_type = ctype
            if ctype not in HTML_TYPES | TEXT_TYPES:
                raise _Stop("unsupported", f"content type {ctype or 'missing'!r}", 200)
            body = await self._read(resp, result)
            charset = resp.charset_encoding or "utf-8"
        await self._to_text(body, ctype, charset, result)
        return None

    async def _read(self, resp: httpx.Response, result: FetchResult) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= self.max_bytes:
                result.truncated = True
                break
        body = b"".join(chunks)[: self.max_bytes]
        result.bytes_read = len(body)
        return body

    async def _to_text(self, body: bytes, ctype: str, charset: str, result: FetchResult) -> None:
        if ctype in HTML_TYPES:
            title, text = await asyncio.to_thread(html_to_text, body)
        else:
            title, text = "", _decode(body, charset)
        if len(text) > self.max_chars:
            text, result.truncated = text[: self.max_chars], True
        result.title, result.text, result.status = title, text, "fetched"


def _headers(target: Target) -> dict[str, str]:
    return {
        "Host": target.host_header,
        "User-Agent": USER_AGENT,
        "Accept": "text/html, application/xhtml+xml, text/plain, text/markdown;q=0.9",
        "Accept-Encoding": "identity",
    }


def _extensions(target: Target) -> dict[str, Any]:
    """For https to a name: TLS server name (SNI and certificate check) is the name, not the IP."""
    if target.scheme == "https" and target.host != str(target.ip):
        return {"sni_hostname": target.host}
    return {}


def _decode(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")
