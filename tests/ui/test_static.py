"""The page's files and headers, without a browser: what the CSP relies on, checked at source."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api.ui import CONTENT_SECURITY_POLICY, STATIC_DIR, router

OWN_MODULES = sorted(
    p
    for p in STATIC_DIR.glob("*.js")
    if p.name not in {"dagre.min.js", "marked.umd.js", "purify.min.js"}
)


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data.strip()


def test_index_has_the_security_headers(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    directives = dict(d.split(" ", 1) for d in csp.split("; "))
    assert directives["script-src"] == "'self'" and "unsafe" not in csp
    assert directives["default-src"] == "'none'" and directives["base-uri"] == "'none'"
    assert directives["require-trusted-types-for"] == "'script'"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"


def test_index_has_no_inline_script_and_loads_only_local_files(client: TestClient) -> None:
    parser = Tags()
    parser.feed(client.get("/").text)
    assert parser.script_text == ""
    for tag, attrs in parser.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        assert "style" not in attrs, (tag, attrs)
        for key in ("src", "href"):
            value = attrs.get(key)
            if value and tag in ("script", "link", "img"):
                assert value.startswith("/static/"), value
                name = value.removeprefix("/static/")
                served = client.get(value)
                assert served.status_code == 200, value
                assert served.headers["x-content-type-options"] == "nosniff"
                if name.endswith(".js"):
                    assert served.headers["content-type"].startswith("text/javascript")


def test_own_modules_never_write_html_strings_or_eval() -> None:
    sinks = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function"
    )
    for path in OWN_MODULES:
        code = re.sub(r"^\s*//.*$", "", path.read_text(), flags=re.M)  # comments may name them
        assert not sinks.findall(code), path.name
    imported = {m for p in OWN_MODULES for m in re.findall(r"from '\./([\w.]+)'", p.read_text())}
    assert imported <= {p.name for p in OWN_MODULES}


def test_vendored_files_match_vendored_md() -> None:
    table = (STATIC_DIR / "VENDORED.md").read_text()
    rows = re.findall(r"^\| `([\w.]+)` \|.*\| `([0-9a-f]{64})` \|$", table, re.M)
    assert {name for name, _ in rows} == {"dagre.min.js", "marked.umd.js", "purify.min.js"}
    for name, digest in rows:
        assert hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest() == digest, name
    for licence in ("dagre", "graphlib", "marked", "dompurify"):
        assert (STATIC_DIR / f"{licence}.LICENSE.txt").stat().st_size > 500


def test_only_files_of_the_folder_are_served(client: TestClient) -> None:
    for path in ("/static/nope.js", "/static/..%2fui.py", "/static/%2e%2e/ui.py", "/static/"):
        assert client.get(path).status_code == 404, path
    r = client.get("/static/app.js")
    again = client.get("/static/app.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
