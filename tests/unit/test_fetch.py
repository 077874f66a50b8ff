"""SSRF guard and guarded fetcher: hostile URLs and redirect chains never reach a listener.

Everything runs on loopback. A "public" server listens on 127.0.0.2:P and is made public for
the guard through its test seam (``Guard(allow={(127.0.0.2, P)})``); a watcher listens on
127.0.0.1:P and [::1]:P and records every connection. Hostnames resolve through a fake
resolver, so no DNS query leaves the machine. Private, link-local and metadata addresses are
only ever *checked* here (``Guard.check`` never connects), never fetched.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
import pytest

from app.agents.fetch import GuardedFetcher
from app.agents.netguard import Blocked, Guard, IPAddress, blocked_reason, parse_ip_literal
from tests.fakes.http_servers import PublicServer, Watcher, start_pair

PUBLIC_IP = ipaddress.ip_address("127.0.0.2")


@dataclass
class FakeResolver:
    """Host name -> a list of answers, given in turn (the last one repeats)."""

    answers: dict[str, list[list[str]]]
    calls: list[str] = field(default_factory=list)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        if host not in self.answers:
            raise OSError(f"[fake] unknown host {host}")
        turns = self.answers[host]
        n = sum(1 for c in self.calls if c == host) - 1
        return [ipaddress.ip_address(a) for a in turns[min(n, len(turns) - 1)]]


@dataclass
class Net:
    public: PublicServer
    watcher: Watcher
    resolver: FakeResolver
    fetcher: GuardedFetcher

    @property
    def port(self) -> int:
        return self.public.port

    def pub(self, path: str) -> str:
        return f"http://public.test:{self.port}{path}"


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    public, watcher = await start_pair()
    resolver = FakeResolver(
        {
            "public.test": [["127.0.0.2"]],
            "evil.test": [["127.0.0.1"]],
            "mixed.test": [["127.0.0.2", "127.0.0.1"]],
            "v6.test": [["::1"]],
            "mapped.test": [["::ffff:127.0.0.1"]],
            "rebind.test": [["127.0.0.2"], ["127.0.0.1"]],
        }
    )
    guard = Guard(resolver=resolver, allow=frozenset({(PUBLIC_IP, public.port)}))
    fetcher = GuardedFetcher(guard, timeout_s=2.0, max_bytes=100_000, max_redirects=5)
    try:
        yield Net(public, watcher, resolver, fetcher)
    finally:
        await public.close()
        await watcher.close()


# --- hostile URLs aimed at the watcher ------------------------------------------------------

HOSTILE = [
    "http://127.0.0.1:{w}/",
    "http://localhost:{w}/",
    "http://LOCALHOST.:{w}/",
    "http://127.0.0.1.:{w}/",
    "http://2130706433:{w}/",  # decimal
    "http://0x7f000001:{w}/",  # hex
    "http://0177.0.0.1:{w}/",  # octal
    "http://017700000001:{w}/",  # octal integer
    "http://0x7f.0.0.1:{w}/",  # mixed
    "http://127.1:{w}/",  # short form
    "http://127.000.000.001:{w}/",
    "http://１２７.０.０.１:{w}/",  # fullwidth digits (IDNA maps them to ASCII)
    "http://0.0.0.0:{w}/",  # reaches localhost on Linux
    "http://0:{w}/",
    "http://[::1]:{w}/",
    "http://[::]:{w}/",
    "http://[::ffff:127.0.0.1]:{w}/",  # IPv4-mapped
    "http://[0:0:0:0:0:ffff:7f00:1]:{w}/",
    "http://[::127.0.0.1]:{w}/",  # IPv4-compatible
    "http://[64:ff9b::7f00:1]:{w}/",  # NAT64
    "http://[2002:7f00:1::1]:{w}/",  # 6to4
    "http://good@127.0.0.1:{w}/",  # userinfo
    "http://public.test:{w}@127.0.0.1:{w}/",
    "http://127.0.0.1:{w}\\@public.test:{w}/",  # backslash parser confusion
    "http://127.0.0.1:{w}#@public.test:{w}/",
    "http://%31%32%37.0.0.1:{w}/",  # percent-encoded host
    "http://evil.test:{w}/",  # name -> 127.0.0.1
    "http://mixed.test:{w}/",  # one good and one bad address: every address is checked
    "http://v6.test:{w}/",  # name -> ::1
    "http://mapped.test:{w}/",  # name -> ::ffff:127.0.0.1
    "gopher://127.0.0.1:{w}/_GET%20/",
    "ftp://127.0.0.1:{w}/",
    "file:///etc/passwd",
    "dict://127.0.0.1:{w}/info",
    "//127.0.0.1:{w}/",
]

REDIRECTS = [
    "/redirect?to={u}",
    "/redirect307?to={u}",
    "/chain/3?to={u}",  # three public hops first
]
REDIRECT_TARGETS = [
    "http://127.0.0.1:{w}/",
    "http://localhost:{w}/",
    "http://2130706433:{w}/",
    "http://[::1]:{w}/",
    "http://[::ffff:127.0.0.1]:{w}/",
    "http://evil.test:{w}/",
    "//127.0.0.1:{w}/",  # scheme-relative
    "file:///etc/passwd",
    "http://good@127.0.0.1:{w}/",
]


@pytest.mark.parametrize("template", HOSTILE)
async def test_hostile_url_never_reaches_the_listener(net: Net, template: str) -> None:
    url = template.format(w=net.port)
    result = await net.fetcher.fetch(url)
    assert result.status == "blocked", (url, result)
    assert net.watcher.connections == 0
    assert net.public.connections == 0


@pytest.mark.parametrize("target", REDIRECT_TARGETS)
@pytest.mark.parametrize("route", REDIRECTS)
async def test_redirect_to_hostile_target_is_blocked(net: Net, route: str, target: str) -> None:
    hostile = target.format(w=net.port)
    url = net.pub(route.format(u=quote(hostile, safe="")))
    result = await net.fetcher.fetch(url)
    assert result.status == "blocked", (url, result)
    assert result.redirects and result.http_status in (301, 302, 307)
    assert net.watcher.connections == 0
    assert net.public.connections >= 1


async def test_control_the_watcher_sees_a_fetch_the_guard_lets_through(net: Net) -> None:
    """The assertions above can fail: allow the watcher's endpoint and it is reached."""
    allow = frozenset({(ipaddress.ip_address("127.0.0.1"), net.port)})
    fetcher = GuardedFetcher(Guard(resolver=net.resolver, allow=allow), timeout_s=2.0)
    result = await fetcher.fetch(f"http://2130706433:{net.port}/")
    assert result.status == "fetched" and result.text == "watched listener reached"
    assert net.watcher.connections == 1


async def test_unresolvable_host_is_an_error_without_connection(net: Net) -> None:
    result = await net.fetcher.fetch(f"http://unknown.test:{net.port}/")
    assert result.status == "error" and "cannot resolve" in result.reason
    assert net.watcher.connections == 0


def test_the_table_is_big_enough() -> None:
    assert len(HOSTILE) + len(REDIRECTS) * len(REDIRECT_TARGETS) >= 20


async def test_dns_rebinding_is_defeated_by_pinning(net: Net) -> None:
    """First answer public, second 127.0.0.1: the connection goes to the checked address."""
    result = await net.fetcher.fetch(f"http://rebind.test:{net.port}/echo-host")
    assert result.status == "fetched", result
    assert result.text == f"rebind.test:{net.port}"  # the name went in the Host header
    assert net.resolver.calls.count("rebind.test") == 1  # resolved once, connected to that
    assert net.watcher.connections == 0
    # "rebind.test" does not exist in real DNS: the fetch could only succeed by connecting to
    # the pinned address. A second resolution now gives the blocked answer:
    again = await net.fetcher.fetch(f"http://rebind.test:{net.port}/echo-host")
    assert again.status == "blocked" and net.watcher.connections == 0


async def test_redirect_loop_stops(net: Net) -> None:
    result = await net.fetcher.fetch(net.pub("/loop"))
    assert result.status == "error" and "more than 5 redirects" in result.reason
    assert len(result.redirects) == 6 and net.public.connections == 6


# --- what a public page gives --------------------------------------------------------------


async def test_html_page_becomes_text(net: Net) -> None:
    result = await net.fetcher.fetch(net.pub("/page"))
    assert result.status == "fetched" and result.content_type == "text/html"
    assert result.title == "Streams & queues"
    assert "at least once" in result.text and "XAUTOCLAIM" in result.text
    assert "<p>" not in result.text and "Home | About" not in result.text


async def test_public_redirects_are_followed(net: Net) -> None:
    result = await net.fetcher.fetch(net.pub("/chain/2?to=/plain"))
    assert result.status == "fetched", result
    assert result.text == "Plain text about consumer groups. ✓"
    assert result.final_url == net.pub("/plain") and len(result.redirects) == 2


@pytest.mark.parametrize(
    ("path", "status"),
    [("/md", "fetched"), ("/bin", "unsupported"), ("/json", "unsupported"),
     ("/notype", "unsupported"), ("/missing", "error")],
)  # fmt: skip
async def test_content_types_and_http_errors(net: Net, path: str, status: str) -> None:
    result = await net.fetcher.fetch(net.pub(path))
    assert result.status == status, result
    assert result.text == ("" if status != "fetched" else result.text)


async def test_size_limit_stops_reading(net: Net) -> None:
    result = await net.fetcher.fetch(net.pub("/big"))
    assert result.status == "fetched" and result.truncated
    assert result.bytes_read == 100_000


async def test_time_limit(net: Net) -> None:
    net.fetcher.timeout_s = 0.3
    result = await net.fetcher.fetch(net.pub("/slow"))
    assert result.status == "error" and "timed out" in result.reason


# --- pinning over https, without a network -------------------------------------------------


async def test_https_request_is_pinned_with_sni_and_host_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"content-type": "text/plain"}, text="hello")

    resolver = FakeResolver({"www.example.test": [["93.184.216.34"]]})
    fetcher = GuardedFetcher(Guard(resolver=resolver), transport=httpx.MockTransport(handler))
    result = await fetcher.fetch("https://WWW.Example.test./a/b?q=1#frag")
    assert result.status == "fetched" and result.text == "hello"
    (request,) = seen
    assert str(request.url) == "https://93.184.216.34/a/b?q=1"
    assert request.headers["host"] == "www.example.test"
    assert request.extensions["sni_hostname"] == "www.example.test"
    assert request.headers["accept-encoding"] == "identity"


# --- address classification (checked, never connected to) ---------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1", "198.18.0.1", "169.254.169.254",
        "169.254.1.1", "127.255.255.254", "0.1.2.3", "224.0.0.1", "255.255.255.255",
        "240.0.0.1", "192.0.2.1", "100.100.100.200", "::1", "::", "fe80::1", "fc00::1",
        "fd00:ec2::254", "ff02::1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
        "64:ff9b::a00:1", "64:ff9b:1::1", "2002:a00:1::", "2002:c0a8:101::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:db8::1",
    ],
)  # fmt: skip
def test_blocked_addresses(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"]
)
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata.goog/",
        "http://10.0.0.1/",
        "http://0xa000001/",
        "http://192.168.0.1./",
        "http://printer.local/",
        "http://app.localhost/",
        "http://router.home.arpa/",
        "http://[fe80::1%25eth0]/",
        "http://1.2.3.4.5/",
        "http://256.0.0.1/",
        "http://1.2.3.4:0/",
        "http://1.2.3.4:70000/",
        "http:///nohost",
    ],
)
async def test_guard_refuses_without_connecting(url: str) -> None:
    resolver = FakeResolver({"metadata.goog": [["8.8.8.8"]]})
    with pytest.raises(Blocked):
        await Guard(resolver=resolver).check(url)


@pytest.mark.parametrize(
    ("host", "ip"),
    [("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
     ("127.1", "127.0.0.1"), ("10.1", "10.0.0.1"), ("0", "0.0.0.0"), ("8.8.8.8", "8.8.8.8"),
     ("::ffff:1.2.3.4", "::ffff:102:304"), ("example.com", None), ("1.2.3.example", None)],
)  # fmt: skip
def test_ip_literal_forms(host: str, ip: str | None) -> None:
    parsed = parse_ip_literal(host)
    assert (str(parsed) if parsed else None) == ip


async def test_allow_seam_is_per_endpoint() -> None:
    """The test seam makes one (ip, port) public, not the whole address."""
    guard = Guard(resolver=FakeResolver({}), allow=frozenset({(PUBLIC_IP, 8080)}))
    target = await guard.check("http://127.0.0.2:8080/x")
    assert target.pinned_url == "http://127.0.0.2:8080/x"
    with pytest.raises(Blocked):
        await guard.check("http://127.0.0.2:8081/x")
