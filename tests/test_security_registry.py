"""Security review of the registry client against hostile registries (fault injection).

Each test starts a tiny misbehaving HTTP server on loopback: endless bodies, pagination that never
ends or loops, Link/Location headers and redirects naming another host, a token server that
floods, manifests nested past Python's recursion limit. Every test fails without its fix.
"""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import pytest

from trustkit.config import Settings
from trustkit.errors import (
    AuthenticationError,
    BadInputError,
    InputTooLargeError,
    RegistryError,
    TrustkitError,
    UntrustedError,
)
from trustkit.registry.client import RegistryClient
from trustkit.registry.credentials import Credentials
from trustkit.registry.model import sha256_digest

MiB = 1024 * 1024
FLOOD = 64 * MiB  # what an "endless" body sends at most, so every test stops by itself
USER, PASSWORD = "alice", "s3cret-password"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Iterable[bytes] = b""


Route = Callable[[str, str, dict[str, str]], Reply]


class Hostile:
    """An HTTP/1.0 server on 127.0.0.1 answering with ``route(method, path, headers)``.

    Bodies without a length are sent until the connection closes; ``sent`` counts the bytes the
    client actually took, so a test can show that reading stopped early.
    """

    def __init__(self, route: Route) -> None:
        self.route = route
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.sent = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                length = int(headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                outer.requests.append((self.command, self.path, headers))
                reply = outer.route(self.command, self.path, headers)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if isinstance(reply.body, bytes):
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                chunks = [reply.body] if isinstance(reply.body, bytes) else reply.body
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        outer.sent += len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile() -> Iterator[Callable[[Route], Hostile]]:
    started: list[Hostile] = []

    def start(route: Route) -> Hostile:
        server = Hostile(route)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def flood(total: int = FLOOD, chunk: bytes = b"x" * MiB) -> Iterator[bytes]:
    for _ in range(total // len(chunk)):
        yield chunk


def basic_protected(inner: Route) -> Route:
    """``/v2/...`` needs Basic credentials; everything else is ``inner``'s."""

    def route(method: str, path: str, headers: dict[str, str]) -> Reply:
        if headers.get("authorization") != BASIC:
            return Reply(401, {"WWW-Authenticate": 'Basic realm="hostile"'})
        return inner(method, path, headers)

    return route


def client_for(settings: Settings, server: Hostile, *, creds: bool = True) -> RegistryClient:
    client = RegistryClient(settings, server.host)
    if creds:
        client.set_credentials(Credentials(USER, PASSWORD))
    return client


def no_credentials_reached(server: Hostile) -> bool:
    return all("authorization" not in headers for _, _, headers in server.requests)


# --- credentials stay with the registry's origin -------------------------------------------------
def test_link_header_to_another_host_gets_no_credentials(
    settings: Settings, hostile: Callable[[Route], Hostile]
) -> None:
    other = hostile(lambda m, p, h: Reply(200, body=b'{"tags": ["b"]}'))

    def registry(method: str, path: str, headers: dict[str, str]) -> Reply:
        if path.startswith("/v2/repo/tags/list"):
            link = f'<http://{other.host}/v2/repo/tags/list?last=a>; rel="next"'
            return Reply(200, {"Link": link}, b'{"tags": ["a"]}')
        return Reply(200, body=b"{}")

    server = hostile(basic_protected(registry))
    with client_for(settings, server) as client:
        assert client.list_tags("repo") == ["a", "b"]
    assert other.requests, "the next page was asked for"
    assert no_credentials_reached(other)


def test_a_401_from_another_host_is_not_answered_with_credentials(
    settings: Settings, hostile: Callable[[Route], Hostile]
) -> None:
    other = hostile(basic_protected(lambda m, p, h: Reply(200, body=b'{"tags": []}')))

    def registry(method: str, path: str, headers: dict[str, str]) -> Reply:
        if path.startswith("/v2/repo/tags/list"):
            link = f'<http://{other.host}/v2/repo/tags/list?last=a>; rel="next"'
            return Reply(200, {"Link": link}, b'{"tags": ["a"]}')
        return Reply(200, body=b"{}")

    server = hostile(basic_protected(registry))
    with client_for(settings, server) as client, pytest.raises(AuthenticationError) as info:
        client.list_tags("repo")
    assert "not sent" in str(info.value)
    assert no_credentials_reached(other)


def test_upload_location_on_another_host_gets_no_credentials(
    settings: Settings, hostile: Callable[[Route], Hostile]
) -> None:
    other = hostile(lambda m, p, h: Reply(201))

    def registry(method: str, path: str, headers: dict[str, str]) -> Reply:
        if method == "POST" and "/blobs/uploads/" in path:
            return Reply(202, {"Location": f"http://{other.host}/upload/1"})
        return Reply(200, body=b"{}")

    server = hostile(basic_protected(registry))
    data = b"layer bytes"
    with client_for(settings, server) as client:
        client.upload_blob("repo", data, sha256_digest(data))
    assert [m for m, _, _ in other.requests] == ["PUT"]
    assert no_credentials_reached(other)


def test_blob_redirect_to_another_host_drops_authorization(
    settings: Settings, hostile: Callable[[Route], Hostile]
) -> None:
    """Registries redirect blob GETs to storage: the storage host never sees our credentials
    (httpx drops Authorization on a cross-origin redirect; this pins that behaviour)."""
    blob = b"blob from storage"
    storage = hostile(lambda m, p, h: Reply(200, body=blob))

    def registry(method: str, path: str, headers: dict[str, str]) -> Reply:
        if "/blobs/" in path:
            return Reply(307, {"Location": f"http://{storage.host}/bucket/x"})
        return Reply(200, body=b"{}")

    server = hostile(basic_protected(registry))
    with client_for(settings, server) as client:
        assert client.get_blob("repo", sha256_digest(blob), max_size=1024) == blob
    assert storage.requests
    assert no_credentials_reached(storage)


# --- every body the registry sends is bounded --------------------------------------------------
def test_token_server_flood_is_bounded(
    settings: Settings, hostile: Callable[[Route], Hostile]
) -> None:
    holder: dict[str, Hostile] = {}

    def registry(method: str, path: str, headers: dict[str, str]) -> Reply:
        if path.startswith("/token"):
            return Reply(200, {"Content-Type": "application/json"}, flood())
        if not headers.get("authorization"):
            realm = f"http://{holder['s'].host}/token"
            return Reply(401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="x"'})
        return Reply(200, body=b'{"tags": []}')

    holder["s"] = server = hostile(registry)
    with client_for(settings, server) as client, pytest.raises(InputTooLargeError):
        client.list_tags("repo")
    assert server.sent < FLOOD // 2


def test_ping_body_flood_is_bounded(
    settings: Settings, hostile: Callable[[Route], Hostile]
) -> None:
    server = hostile(lambda m, p, h: Reply(200, body=flood()))
    with client_for(settings, server, creds=False) as client:
        client.ping()
    assert server.sent < FLOOD // 2


def test_error_body_flood_is_bounded(
    settings: Settings, hostile: Callable[[Route], Hostile]
) -> None:
    def registry(method: str, path: str, headers: dict[str, str]) -> Reply:
        if method == "PUT":
            return Reply(500, body=flood())
        return Reply(200, body=b"{}")

    server = hostile(registry)
    manifest = b'{"schemaVersion": 2, "layers": []}'
    with client_for(settings, server, creds=False) as client, pytest.raises(RegistryError):
        client.put_manifest("repo", "v1", manifest, "application/vnd.oci.image.manifest.v1+json")
    assert server.sent < FLOOD // 2


def test_upload_answer_flood_is_bounded(
    settings: Settings, hostile: Callable[[Route], Hostile]
) -> None:
    def registry(method: str, path: str, headers: dict[str, str]) -> Reply:
        if method == "POST":
            return Reply(202, {"Location": "/v2/repo/blobs/uploads/1"}, flood())
        return Reply(201)

    server = hostile(registry)
    data = b"x"
    with client_for(settings, server, creds=False) as client, pytest.raises(InputTooLargeError):
        client.upload_blob("repo", data, sha256_digest(data))
    assert server.sent < FLOOD // 2


def test_pagination_loop_is_refused_at_once(
    settings: Settings, hostile: Callable[[Route], Hostile]
) -> None:
    def registry(method: str, path: str, headers: dict[str, str]) -> Reply:
        if path.startswith("/v2/repo/tags/list"):
            link = '</v2/repo/tags/list?last=a&n=1>; rel="next"'
            return Reply(200, {"Link": link}, b'{"tags": ["a"]}')
        return Reply(200, body=b"{}")

    server = hostile(registry)
    with client_for(settings, server, creds=False) as client, pytest.raises(RegistryError) as info:
        client.list_tags("repo")
    assert "loop" in str(info.value)
    assert len([p for _, p, _ in server.requests if "tags" in p]) <= 3


def test_endless_pagination_is_bounded_by_total_entries(
    settings: Settings, hostile: Callable[[Route], Hostile]
) -> None:
    page = ('{"tags": [' + ",".join(f'"t{i}"' for i in range(25_000)) + "]}").encode()

    def registry(method: str, path: str, headers: dict[str, str]) -> Reply:
        if path.startswith("/v2/repo/tags/list"):
            served = len(server.requests)
            if served > 60:  # without the bound the client takes 1.5 million names
                return Reply(200, body=page)
            link = f'</v2/repo/tags/list?last=p{served}>; rel="next"'
            return Reply(200, {"Link": link}, page)
        return Reply(200, body=b"{}")

    server = hostile(registry)
    with client_for(settings, server, creds=False) as client, pytest.raises(InputTooLargeError):
        client.list_tags("repo")
    assert len(server.requests) <= 8


# --- JSON nested past the recursion limit is a clear error, not a RecursionError -----------------
DEEP = b"[" * 200_000


def test_deeply_nested_manifest_is_bad_input(
    settings: Settings, hostile: Callable[[Route], Hostile]
) -> None:
    def registry(method: str, path: str, headers: dict[str, str]) -> Reply:
        if "/manifests/" in path:
            return Reply(200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, DEEP)
        return Reply(200, body=b"{}")

    server = hostile(registry)
    with client_for(settings, server, creds=False) as client, pytest.raises(BadInputError):
        client.get_manifest("repo", "v1")


@pytest.mark.parametrize("where", ["tags", "referrers", "error"])
def test_deeply_nested_registry_json_is_a_registry_error(
    settings: Settings, hostile: Callable[[Route], Hostile], where: str
) -> None:
    digest = sha256_digest(b"subject")

    def registry(method: str, path: str, headers: dict[str, str]) -> Reply:
        if path == "/v2/":
            return Reply(200, body=b"{}")
        if where == "error":
            return Reply(500, {"Content-Type": "application/json"}, DEEP[:60_000])
        return Reply(200, {"Content-Type": "application/json"}, DEEP)

    server = hostile(registry)
    with client_for(settings, server, creds=False) as client, pytest.raises(TrustkitError):
        if where == "referrers":
            client.referrers("repo", digest)
        else:
            client.list_tags("repo")


# --- no password over plain HTTP to a host that is neither loopback nor marked insecure ---
def test_basic_password_not_sent_over_plain_http_to_a_remote_host(
    settings: Settings, hostile: Callable[[Route], Hostile], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ``http://`` mirror URL forces plain HTTP; the loopback test server stands in for a
    remote host (fault injection: the loopback check is told it is not loopback)."""
    import trustkit.registry.client as client_module

    server = hostile(basic_protected(lambda m, p, h: Reply(200, body=b'{"tags": []}')))
    monkeypatch.setattr(client_module, "is_loopback", lambda host: False)
    client = RegistryClient(settings, server.host, scheme="http")
    client.set_credentials(Credentials(USER, PASSWORD))
    with client, pytest.raises(UntrustedError, match="plain HTTP"):
        client.list_tags("repo")
    assert no_credentials_reached(server)


def test_basic_password_over_plain_http_to_loopback_still_works(
    settings: Settings, hostile: Callable[[Route], Hostile]
) -> None:
    server = hostile(basic_protected(lambda m, p, h: Reply(200, body=b'{"tags": ["a"]}')))
    with client_for(settings, server) as client:
        assert client.list_tags("repo") == ["a"]


# --- compressed bodies are never inflated ---------------------------------------------------------
def test_a_gzip_bomb_is_refused_without_inflating(
    settings: Settings, hostile: Callable[[Route], Hostile]
) -> None:
    """64 MiB of zeros compress to ~64 KiB: httpx would inflate them before any size check. We
    ask for identity and read raw, so a compressed manifest is refused as it arrives."""
    import gzip

    bomb = gzip.compress(b"\0" * FLOOD, compresslevel=9)
    assert len(bomb) < MiB

    def registry(method: str, path: str, headers: dict[str, str]) -> Reply:
        assert headers.get("accept-encoding") == "identity"
        media = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        return Reply(200, {**media, "Content-Encoding": "gzip"}, bomb)

    server = hostile(registry)
    with (
        client_for(settings, server, creds=False) as client,
        pytest.raises(RegistryError, match="Content-Encoding 'gzip'"),
    ):
        client.get_manifest("repo", "v1")
