"""HTML to text for fetched pages, with trafilatura: the main content, boilerplate removed
(``extract``), or, for pages it finds no main content in (very short ones), all visible text
(``html2txt``; scripts and styles dropped).

CPU-bound: callers run it in a thread (``asyncio.to_thread``) so a large page does not stall
the worker's event loop (and with it the lease renewals of other steps).
"""

from __future__ import annotations

import html
import re

import trafilatura

_TITLE_RE = re.compile(rb"<title[^>]*>(.*?)</title", re.I | re.S)
_TAG_RE = re.compile(r"<[^>]*>")


def html_to_text(page: bytes) -> tuple[str, str]:
    """(title, text) of an HTML page; either may be empty."""
    text = trafilatura.extract(
        page, include_comments=False, include_tables=True, favor_recall=True, deduplicate=True
    )
    if not text:
        text = trafilatura.html2txt(page)
    return _title(page), _squeeze(text or "")


def _title(page: bytes) -> str:
    match = _TITLE_RE.search(page[:65536])
    if not match:
        return ""
    raw = match.group(1).decode("utf-8", errors="replace")
    return _squeeze(html.unescape(_TAG_RE.sub("", raw)))[:200]


def _squeeze(text: str) -> str:
    lines = (re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
