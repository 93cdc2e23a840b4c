"""OCI distribution API client over httpx: one ``RegistryClient`` per registry host.

Everything a registry sends is untrusted: manifests are bounded to 4 MiB and hashed by us (the
``Docker-Content-Digest`` header is never believed), blobs are streamed with a size bound and
hashed, and every failure becomes one trustkit error with a hint about what to do.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from trustkit.config import Settings
from trustkit.errors import (
    AuthenticationError,
    BadInputError,
    DigestMismatchError,
    InputTooLargeError,
    RegistryError,
    TrustkitError,
    UnreachableError,
    UntrustedError,
)
from trustkit.errors import NotFoundError as NotFoundError  # moved; old import path kept
from trustkit.errors import TLSVerificationError as TLSVerificationError
from trustkit.refs import ImageRef, validate_digest
from trustkit.registry.auth import (
    Challenge,
    TokenCache,
    parse_challenge,
    repository_scope,
    scope_key,
)
from trustkit.registry.config import (
    RegistriesConfig,
    RegistryConfig,
    api_host,
    is_loopback,
    load_registries_config,
)
from trustkit.registry.credentials import Credentials, lookup_credentials
from trustkit.registry.deadline import DeadlineTransport
from trustkit.registry.model import (
    MANIFEST_ACCEPT,
    MAX_MANIFEST_SIZE,
    BlobSink,
    Descriptor,
    ManifestBlob,
    detect_media_type,
    sha256_digest,
)

DEFAULT_TIMEOUT = 30.0  # per socket operation
#: one request and the start of its answer, overall; a body then has to keep coming at a minimum
#: rate (trustkit.registry.deadline), so a registry dripping bytes cannot hold a thread for ever
DEFAULT_EXCHANGE_SECONDS = 30.0
#: connections (so exchanges) to one registry host at once; others wait, within their deadline
DEFAULT_MAX_CONNECTIONS = 8
READ_CHUNK = 1024 * 1024
#: blobs up to this size are uploaded in one PUT; larger ones in PATCH chunks
MONOLITHIC_UPLOAD_LIMIT = 256 * 1024 * 1024
UPLOAD_CHUNK_SIZE = 32 * 1024 * 1024
MAX_SMALL_RESPONSE = 4 * 1024 * 1024  # tag pages, tokens, error bodies, referrers
MAX_PAGES = 1000
MAX_LIST_ENTRIES = 100_000  # tags or repositories across all pages of one listing
MAX_ERROR_BODY = 64 * 1024  # only shown in a message: read this much, drop the rest
USER_AGENT = "trustkit/0.1"

PULL = ("pull",)
PUSH = ("pull", "push")


@functools.lru_cache(maxsize=32)
def _ssl_context(
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None
) -> ssl.SSLContext:
    """One verifying context per CA/client-cert set, shared by every client in the process."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert_file and key_file:
        ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


def _is_verify_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class RegistryClient:
    """Talks to one registry (``host[:port]``); repository paths are given per call."""

    def __init__(
        self,
        settings: Settings,
        host: str,
        *,
        registries: RegistriesConfig | None = None,
        scheme: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        exchange_seconds: float = DEFAULT_EXCHANGE_SECONDS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.settings = settings
        self.host = host
        self.api_host = api_host(host)
        self.registries = registries if registries is not None else load_registries_config(settings)
        self.config: RegistryConfig = self.registries.for_host(host)
        self._forced_scheme = scheme
        self._timeout = timeout
        self._exchange_seconds = exchange_seconds
        self._max_connections = max_connections
        self._scheme: str | None = None
        self._http: httpx.Client | None = None
        self._challenge: Challenge | None = None
        self._pinged = False
        self._tokens = TokenCache()
        self._auth_lock = threading.RLock()
        self._creds: Credentials | None = None
        self._creds_loaded = False

    @classmethod
    def for_reference(cls, settings: Settings, ref: ImageRef) -> RegistryClient:
        return cls(settings, ref.domain)

    # --- plumbing ---------------------------------------------------------------------------
    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _config_hint(self) -> str:
        return f"configure registries[{self.host!r}].tls in {self.registries_path}"

    @property
    def registries_path(self) -> str:
        return str(self.registries.source or self.settings.effective_registries_config)

    def _make_http(self, scheme: str, verify: bool) -> httpx.Client:
        tls = self.config.tls
        ctx: ssl.SSLContext | bool = False  # plain HTTP needs no TLS context (they cost ~20 ms)
        if scheme == "https" and verify:
            try:
                ctx = _ssl_context(tls.ca_file, tls.cert_file, tls.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise BadInputError(
                    f"cannot load TLS files for {self.host}: {exc}",
                    hint=f"check tls.ca_file/cert_file/key_file in {self.registries_path}",
                ) from exc
        # identity: bodies are read raw and bounded before anything expands them (a 64 KiB gzip
        # chunk can inflate to 64 MiB), and a digest is always over the bytes as sent
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **self.config.headers}
        transport = DeadlineTransport(
            verify=ctx,
            exchange_seconds=self._exchange_seconds,
            max_connections=self._max_connections,
        )
        return httpx.Client(
            transport=transport,
            timeout=self._timeout,
            headers=headers,
            follow_redirects=False,
        )

    @property
    def base_url(self) -> str:
        self._ensure_connection()
        return f"{self._scheme}://{self.api_host}"

    def _ensure_connection(self) -> None:
        """Pick the scheme (as Docker: loopback and insecure registries may use plain HTTP)."""
        if self._http is not None:
            return
        with self._auth_lock:
            if self._http is None:
                self._connect()

    def _connect(self) -> None:
        tls = self.config.tls
        if self._forced_scheme is not None:
            candidates = [(self._forced_scheme, not tls.insecure)]
        elif tls.insecure:
            candidates = [("https", False), ("http", False)]
        elif is_loopback(self.host) and not tls.configured:
            # As Docker, loopback may be plain HTTP. Try it first (no TLS set-up cost); a TLS
            # server answers that with a 400 and we move on to verified HTTPS.
            candidates = [("http", True), ("https", True)]
        else:
            candidates = [("https", True)]
        last: TrustkitError | None = None
        for scheme, verify in candidates:
            http = self._make_http(scheme, verify)
            try:
                response = http.send(
                    http.build_request("GET", f"{scheme}://{self.api_host}/v2/"), stream=True
                )
                _read_prefix(response, MAX_SMALL_RESPONSE)  # bounded: a ping's body is unused
            except httpx.TransportError as exc:
                http.close()
                if scheme == "https" and verify and _is_verify_failure(exc):
                    raise self._tls_error(exc) from exc
                last = self._transport_error(exc)
                continue
            if scheme == "http" and response.status_code == 400 and len(candidates) > 1:
                http.close()  # "Client sent an HTTP request to an HTTPS server"
                last = RegistryError(f"registry {self.host} refused plain HTTP")
                continue
            self._scheme, self._http = scheme, http
            self._record_ping(response)
            return
        assert last is not None
        raise last

    def _record_ping(self, response: httpx.Response) -> None:
        self._pinged = True
        if response.status_code == 401:
            self._challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
        elif response.status_code >= 500:
            raise RegistryError(f"registry {self.host} answered {response.status_code} on /v2/")

    def _tls_error(self, exc: BaseException) -> TLSVerificationError:
        return TLSVerificationError(
            f"TLS certificate of registry {self.host} is not trusted: {exc}",
            hint=f"add its CA as tls.ca_file for {self.host} in {self.registries_path}",
        )

    def _transport_error(self, exc: httpx.TransportError) -> TrustkitError:
        if _is_verify_failure(exc):
            return self._tls_error(exc)
        if isinstance(exc, httpx.PoolTimeout):
            return UnreachableError(
                f"registry {self.host} is busy: all {self._max_connections} connections to it "
                "stayed in use until the deadline",
                hint="the registry is slow or hanging; retry later",
            )
        if isinstance(exc, httpx.TimeoutException):
            return UnreachableError(
                f"registry {self.host} did not answer in time: {exc or type(exc).__name__}",
                hint="the registry is slow or hanging; retry later",
            )
        return UnreachableError(
            f"registry {self.host} is unreachable: {exc or type(exc).__name__}",
            hint="check the address, that the registry is running, and any mirror settings",
        )

    def _plain_http_allowed(self) -> bool:
        return is_loopback(self.host) or self.config.tls.insecure

    def _credentials(self) -> Credentials | None:
        if not self._creds_loaded:
            self._creds = lookup_credentials(self.settings, self.host, self.config)
            self._creds_loaded = True
        return self._creds

    def set_credentials(self, creds: Credentials | None) -> None:
        """Use these credentials instead of the stored ones (``trustkit login`` checks them)."""
        self._creds, self._creds_loaded = creds, True
        self._tokens.clear()

    def _auth_error(self, detail: str) -> AuthenticationError:
        has_creds = self._credentials() is not None
        what = "failed" if has_creds else "is required"
        return AuthenticationError(
            f"authentication to {self.host} {what}: {detail}",
            hint=f"run trustkit login {self.host}",
        )

    def _basic_header(self) -> str | None:
        creds = self._credentials()
        if creds is None:
            return None
        raw = f"{creds.username}:{creds.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _authorization(self, scopes: list[str], *, fetch: bool) -> str | None:
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            basic = self._basic_header()
            if basic and self._scheme == "http" and not self._plain_http_allowed():
                # e.g. an http:// mirror URL: only loopback or tls.insecure may see a password
                raise UntrustedError(
                    f"refusing to send the password for {self.host} over plain HTTP",
                    hint=f"use https, or mark {self.host} tls.insecure in {self.registries_path}",
                )
            return basic
        key = scope_key(scopes)
        token = self._tokens.get(key)
        if token is None and fetch:
            with self._auth_lock:  # parallel blob transfers share one token per scope set
                token = self._tokens.get(key) or self._fetch_token(challenge, scopes)
        return f"Bearer {token}" if token else None

    def _fetch_token(self, challenge: Challenge, scopes: list[str]) -> str:
        realm = challenge.realm
        if not realm:
            raise RegistryError(f"registry {self.host} sent a Bearer challenge without a realm")
        realm_url = httpx.URL(realm)
        if realm_url.scheme != "https" and not (
            is_loopback(realm_url.host) or self.config.tls.insecure
        ):
            raise UntrustedError(
                f"registry {self.host} asks for credentials over plain HTTP ({realm})",
                hint=f"mark {self.host} tls.insecure in {self.registries_path} if intended",
            )
        params: list[tuple[str, str | int | float | bool | None]] = []
        if challenge.service:
            params.append(("service", challenge.service))
        params.extend(("scope", s) for s in sorted(set(scopes)))
        assert self._http is not None
        creds = self._credentials()
        if creds is not None and creds.identity_token:
            # config.json's identitytoken is an OAuth2 refresh token: docker's grant for it
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "client_id": "trustkit",
                "scope": " ".join(sorted(set(scopes))),
            }
            if challenge.service:
                form["service"] = challenge.service
            request = self._http.build_request("POST", realm_url, data=form)
        else:
            headers = {}
            basic = self._basic_header()
            if basic:
                headers["Authorization"] = basic
            request = self._http.build_request(
                "GET", realm_url.copy_merge_params(params), headers=headers
            )
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code in (401, 403):
            response.close()
            raise self._auth_error(f"the token server refused ({response.status_code})")
        if response.status_code != 200:
            response.close()
            raise RegistryError(f"token server for {self.host} answered {response.status_code}")
        body = self._read_bounded(response, MAX_SMALL_RESPONSE, f"token from {realm_url.host}")
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
            lifetime = doc.get("expires_in")
        except (ValueError, AttributeError, RecursionError) as exc:
            raise RegistryError(f"token server for {self.host} sent malformed JSON") from exc
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token server for {self.host} sent no token")
        self._tokens.put(
            scope_key(scopes), token, float(lifetime) if isinstance(lifetime, int | float) else None
        )
        return token

    def _send(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        scopes: list[str],
        headers: dict[str, str] | None = None,
        content: Callable[[], bytes | Iterator[bytes]] | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """One request with authentication: retried once after a 401 challenge.

        Credentials go only to the registry's own origin (scheme, host and port), as Docker's
        per-host challenge manager does: a Link or Location header naming another host gets no
        Authorization, and a 401 from another host is never answered with our credentials.
        Without ``stream`` the body is read here, bounded, so no caller reads an endless body.
        """
        self._ensure_connection()
        assert self._http is not None
        if isinstance(url, str) and url.startswith("/"):
            url = self.base_url + url
        own_origin = self._is_own_origin(httpx.URL(url))
        for attempt in (1, 2):
            request_headers = dict(headers or {})
            auth = self._authorization(scopes, fetch=True) if own_origin else None
            if auth:
                request_headers["Authorization"] = auth
            request = self._http.build_request(
                method, url, headers=request_headers, content=content() if content else None
            )
            try:
                response = self._http.send(request, stream=True, follow_redirects=follow_redirects)
            except httpx.TransportError as exc:
                raise self._transport_error(exc) from exc
            if response.status_code != 401:
                return response if stream else self._buffered(response, method)
            response.close()
            if not (own_origin and self._is_own_origin(response.url)):
                raise self._auth_error(
                    f"{response.url.host} (not {self.host}) asked for credentials; not sent"
                )
            challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
            if attempt == 2 or challenge is None:
                raise self._auth_error(f"{method} {httpx.URL(url).path} was refused (401)")
            if challenge.scheme == "basic" and self._credentials() is None:
                raise self._auth_error("no credentials stored")
            self._challenge = challenge
            self._tokens.clear()  # a cached token was refused: ask again for every scope
            scopes = sorted(set(scopes) | set(challenge.scopes))
        raise AssertionError("unreachable")

    def _is_own_origin(self, url: httpx.URL) -> bool:
        base = httpx.URL(self.base_url)
        return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)

    def _buffered(self, response: httpx.Response, method: str) -> httpx.Response:
        """The response with its body read (at most MAX_SMALL_RESPONSE bytes) and closed.

        An error's body is only shown in a message, so a long one is cut rather than refused.
        """
        if response.status_code >= 400:
            data = _read_prefix(response, MAX_ERROR_BODY)
        else:
            what = f"{self.host}'s answer to {method} {response.url.path}"
            data = self._read_bounded(response, MAX_SMALL_RESPONSE, what)
        # the body is decoded already: a kept Content-Encoding would make httpx decode it again
        headers = [
            (k, v) for k, v in response.headers.multi_items() if k.lower() != "content-encoding"
        ]
        return httpx.Response(
            response.status_code, headers=headers, content=data, request=response.request
        )

    def _error(self, response: httpx.Response, what: str) -> TrustkitError:
        code = response.status_code
        body = _read_prefix(response, MAX_ERROR_BODY)
        detail = ""
        try:
            errors = json.loads(body).get("errors") or []
            detail = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors[:3])
        except (ValueError, AttributeError, TypeError, RecursionError):
            detail = body[:200].decode("utf-8", "replace").strip()
        text = f"{what}: registry {self.host} answered {code}" + (f" ({detail})" if detail else "")
        if code == 404:
            return NotFoundError(text)
        if code == 403:
            return AuthenticationError(
                text, hint=f"run trustkit login {self.host} as a user with access"
            )
        # a manifest naming a blob the registry does not have (yet: a racing writer's upload)
        # comes with DIGEST_INVALID too; it is a registry condition to retry, not tampering
        if "DIGEST_INVALID" in detail and "BLOB_UNKNOWN" not in detail:
            return DigestMismatchError(text)
        return RegistryError(text)

    # --- API --------------------------------------------------------------------------------
    def ping(self) -> bool:
        """Check /v2/ with the current credentials; True when authenticated (or none needed)."""
        self._ensure_connection()
        if self._challenge is None:
            return True
        response = self._send("GET", "/v2/", scopes=[])
        if response.status_code != 200:
            raise self._error(response, "ping")
        return True

    def _read_bounded(self, response: httpx.Response, limit: int, what: str) -> bytes:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            response.close()
            raise InputTooLargeError(f"{what} is larger than the {limit}-byte limit")
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in _raw_chunks(response):
                total += len(chunk)
                if total > limit:
                    raise InputTooLargeError(f"{what} is larger than the {limit}-byte limit")
                chunks.append(chunk)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        finally:
            response.close()
        return b"".join(chunks)

    def get_manifest(
        self, repo_path: str, reference: str, *, expected_digest: str | None = None
    ) -> ManifestBlob:
        if expected_digest is None and reference.startswith("sha256:"):
            expected_digest = validate_digest(reference)
        what = f"manifest {self.host}/{repo_path}:{reference}".replace(":sha256:", "@sha256:")
        response = self._send(
            "GET",
            f"/v2/{repo_path}/manifests/{reference}",
            scopes=[repository_scope(repo_path, *PULL)],
            headers={"Accept": MANIFEST_ACCEPT},
            stream=True,
        )
        if response.status_code != 200:
            raise self._error(response, what)
        data = self._read_bounded(response, MAX_MANIFEST_SIZE, what)
        if expected_digest is not None and sha256_digest(data) != expected_digest:
            raise DigestMismatchError(
                f"{what} does not match the expected digest {expected_digest} "
                f"(got {sha256_digest(data)})",
                hint="the registry served other bytes; do not use this image",
            )
        return ManifestBlob(data, detect_media_type(data, response.headers.get("Content-Type")))

    def get_manifest_if_changed(
        self, repo_path: str, tag: str, known_digest: str
    ) -> ManifestBlob | None:
        """The manifest ``tag`` names, or None when the registry answers 304 Not Modified to
        ``If-None-Match: "<known_digest>"`` (the caller still holds those bytes, already hashed
        by it). A registry ignoring the header just sends the manifest again."""
        what = f"manifest {self.host}/{repo_path}:{tag}"
        response = self._send(
            "GET",
            f"/v2/{repo_path}/manifests/{tag}",
            scopes=[repository_scope(repo_path, *PULL)],
            headers={"Accept": MANIFEST_ACCEPT, "If-None-Match": f'"{known_digest}"'},
            stream=True,
        )
        if response.status_code == 304:
            response.close()
            return None
        if response.status_code != 200:
            raise self._error(response, what)
        data = self._read_bounded(response, MAX_MANIFEST_SIZE, what)
        return ManifestBlob(data, detect_media_type(data, response.headers.get("Content-Type")))

    def head_manifest(self, repo_path: str, reference: str) -> Descriptor | None:
        """What the registry *claims* (headers only): a hint, never trusted for a decision."""
        response = self._send(
            "HEAD",
            f"/v2/{repo_path}/manifests/{reference}",
            scopes=[repository_scope(repo_path, *PULL)],
            headers={"Accept": MANIFEST_ACCEPT},
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._error(response, f"manifest {repo_path}:{reference}")
        digest = response.headers.get("Docker-Content-Digest", "")
        size = response.headers.get("Content-Length", "")
        if not digest.startswith("sha256:") or not size.isdigit():
            return None
        media = response.headers.get("Content-Type", "").split(";")[0]
        return Descriptor(media, validate_digest(digest), int(size))

    def put_manifest(self, repo_path: str, reference: str, data: bytes, media_type: str) -> str:
        if len(data) > MAX_MANIFEST_SIZE:
            raise InputTooLargeError(f"manifest is larger than the {MAX_MANIFEST_SIZE}-byte limit")
        digest = sha256_digest(data)
        if reference.startswith("sha256:") and reference != digest:
            raise DigestMismatchError(f"manifest bytes hash to {digest}, not {reference}")
        response = self._send(
            "PUT",
            f"/v2/{repo_path}/manifests/{reference}",
            scopes=[repository_scope(repo_path, *PUSH)],
            headers={"Content-Type": media_type},
            content=lambda: data,
        )
        if response.status_code not in (200, 201):
            raise self._error(response, f"push of manifest {repo_path}:{reference}")
        response.close()
        return digest

    def delete_manifest(self, repo_path: str, digest: str) -> bool:
        """Delete a manifest by digest (and so every tag naming it); False when the registry
        does not allow deletes (405, or no delete permission)."""
        validate_digest(digest)
        response = self._send(
            "DELETE",
            f"/v2/{repo_path}/manifests/{digest}",
            scopes=[repository_scope(repo_path, "pull", "push", "delete")],
        )
        if response.status_code not in (200, 202, 404, 401, 403, 405):
            raise self._error(response, f"delete of manifest {repo_path}@{digest}")
        response.close()
        return response.status_code in (200, 202, 404)

    def blob_exists(self, repo_path: str, digest: str) -> bool:
        response = self._send(
            "HEAD",
            f"/v2/{repo_path}/blobs/{digest}",
            scopes=[repository_scope(repo_path, *PULL)],
            follow_redirects=True,
        )
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._error(response, f"blob {digest}")

    def _open_blob(self, repo_path: str, digest: str) -> httpx.Response:
        """A streamed 200 answer for the blob; its body is for the caller to bound and hash."""
        response = self._send(
            "GET",
            f"/v2/{repo_path}/blobs/{digest}",
            scopes=[repository_scope(repo_path, *PULL)],
            stream=True,
            follow_redirects=True,
        )
        if response.status_code != 200:
            raise self._error(response, f"blob {repo_path}@{digest}")
        return response

    def fetch_blob(self, repo_path: str, digest: str, size: int, sink: BlobSink | None) -> None:
        """Stream a blob into ``sink`` (None: verify only), refusing other or extra bytes."""
        response = self._open_blob(repo_path, digest)
        hasher = hashlib.sha256()
        total = 0
        try:
            for chunk in _raw_chunks(response):
                total += len(chunk)
                if total > size:
                    raise DigestMismatchError(
                        f"blob {digest} from {self.host} is larger than its descriptor "
                        f"({size} bytes)"
                    )
                hasher.update(chunk)
                if sink is not None:
                    sink.write(chunk)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        finally:
            response.close()
        actual = "sha256:" + hasher.hexdigest()
        if total != size or actual != digest:
            raise DigestMismatchError(
                f"blob {digest} from {self.host} does not match its descriptor "
                f"(got {actual}, {total} bytes)",
                hint="the registry served other bytes; do not use this image",
            )

    def get_blob(self, repo_path: str, digest: str, *, max_size: int) -> bytes:
        """A small blob (config, attestation) in memory, hashed and bounded by ``max_size``."""
        validate_digest(digest)
        response = self._open_blob(repo_path, digest)
        data = self._read_bounded(response, max_size, f"blob {digest}")
        if sha256_digest(data) != digest:
            raise DigestMismatchError(
                f"blob {digest} from {self.host} does not match its digest",
                hint="the registry served other bytes; do not use this content",
            )
        return data

    def _start_upload(self, repo_path: str) -> httpx.Response:
        return self._send(
            "POST",
            f"/v2/{repo_path}/blobs/uploads/",
            scopes=[repository_scope(repo_path, *PUSH)],
            headers={"Content-Length": "0"},
        )

    def _location(self, response: httpx.Response) -> httpx.URL:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.host} did not give an upload location")
        return httpx.URL(self.base_url).join(location)

    def upload_blob(
        self,
        repo_path: str,
        data: bytes | BinaryIO,
        digest: str,
        *,
        size: int | None = None,
        chunk_size: int | None = None,
    ) -> None:
        """Upload a blob: one PUT (monolithic) or PATCH chunks then PUT (chunked).

        ``data`` may be bytes or a seekable binary file positioned anywhere; the registry checks
        the digest as well, and a mismatch is a DigestMismatchError.
        """
        validate_digest(digest)
        if isinstance(data, bytes):
            size = len(data)
        elif size is None:
            data.seek(0, 2)
            size = data.tell()
        response = self._start_upload(repo_path)
        if response.status_code != 202:
            raise self._error(response, f"upload to {repo_path}")
        location = self._location(response)
        scopes = [repository_scope(repo_path, *PUSH)]
        chunked = chunk_size is not None or size > MONOLITHIC_UPLOAD_LIMIT
        step = chunk_size or UPLOAD_CHUNK_SIZE
        if chunked:
            offset = 0
            while offset < size:
                length = min(step, size - offset)
                start = offset
                response = self._send(
                    "PATCH",
                    location,
                    scopes=scopes,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(length),
                        "Content-Range": f"{start}-{start + length - 1}",
                    },
                    content=lambda s=start, n=length: _body(data, s, n),  # type: ignore[misc]
                )
                if response.status_code != 202:
                    raise self._error(response, f"chunked upload of {digest}")
                location = self._location(response)
                offset += length
            final_length, final = 0, None
        else:
            final_length, final = size, (lambda: _body(data, 0, size))
        response = self._send(
            "PUT",
            location.copy_merge_params({"digest": digest}),
            scopes=scopes,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(final_length),
            },
            content=final if final is not None else (lambda: b""),
        )
        if response.status_code not in (201, 204):
            raise self._error(response, f"upload of blob {digest}")
        response.close()

    def mount_blob(self, repo_path: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount; False when the registry started an upload instead."""
        validate_digest(digest)
        response = self._send(
            "POST",
            f"/v2/{repo_path}/blobs/uploads/?mount={digest}&from={from_repo}",
            scopes=[repository_scope(repo_path, *PUSH), repository_scope(from_repo, *PULL)],
            headers={"Content-Length": "0"},
        )
        if response.status_code == 201:
            return True
        if response.status_code == 202:
            # An upload session was opened instead: cancel it so it does not linger.
            location = self._location(response)
            self._send("DELETE", location, scopes=[repository_scope(repo_path, *PUSH)]).close()
            return False
        raise self._error(response, f"mount of {digest} from {from_repo}")

    def _paged_list(self, first: str, key: str, scopes: list[str], what: str) -> list[str]:
        names: list[str] = []
        url: str | httpx.URL = first
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            response = self._send("GET", url, scopes=scopes, stream=True)
            if response.status_code == 404 and not names:
                response.close()
                return []
            if response.status_code != 200:
                raise self._error(response, what)
            link = response.headers.get("Link", "")
            body = self._read_bounded(response, MAX_SMALL_RESPONSE, what)
            try:
                page = json.loads(body).get(key) or []
            except (ValueError, AttributeError, RecursionError) as exc:
                raise RegistryError(f"{what}: registry {self.host} sent malformed JSON") from exc
            if not isinstance(page, list) or not all(isinstance(n, str) for n in page):
                raise RegistryError(f"{what}: registry {self.host} sent a malformed list")
            names.extend(page)
            if len(names) > MAX_LIST_ENTRIES:
                raise InputTooLargeError(f"{what}: more than {MAX_LIST_ENTRIES} entries")
            next_url = _next_link(link)
            if next_url is None:
                return names
            url = httpx.URL(self.base_url).join(next_url)
            if str(url) in seen:
                raise RegistryError(f"{what}: registry {self.host} sent a pagination loop")
            seen.add(str(url))
        raise InputTooLargeError(f"{what}: more than {MAX_PAGES} pages")

    def list_tags(self, repo_path: str, *, page_size: int = 1000) -> list[str]:
        return self._paged_list(
            f"/v2/{repo_path}/tags/list?n={page_size}",
            "tags",
            [repository_scope(repo_path, *PULL)],
            f"tags of {repo_path}",
        )

    def catalog(self, *, page_size: int = 1000) -> list[str]:
        return self._paged_list(
            f"/v2/_catalog?n={page_size}", "repositories", ["registry:catalog:*"], "catalog"
        )

    def referrers(
        self, repo_path: str, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        """OCI 1.1 referrers; None when the registry has no referrers API (use the tag fallback)."""
        validate_digest(digest)
        url = httpx.URL(self.base_url + f"/v2/{repo_path}/referrers/{digest}")
        if artifact_type:
            url = url.copy_merge_params({"artifactType": artifact_type})
        response = self._send("GET", url, scopes=[repository_scope(repo_path, *PULL)], stream=True)
        if response.status_code in (404, 405, 400):
            response.close()
            return None
        if response.status_code != 200:
            raise self._error(response, f"referrers of {digest}")
        body = self._read_bounded(response, MAX_SMALL_RESPONSE, f"referrers of {digest}")
        try:
            doc: Any = json.loads(body)
            manifests = doc.get("manifests") or []
        except (ValueError, AttributeError, RecursionError) as exc:
            raise RegistryError(f"referrers of {digest}: malformed JSON") from exc
        found = [Descriptor.from_dict(m) for m in manifests]
        if artifact_type:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found


def _raw_chunks(response: httpx.Response) -> Iterator[bytes]:
    """The body exactly as sent, never decompressed by httpx: sizes are checked on what arrives.
    We ask for identity; a compressed answer is refused rather than inflated."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise RegistryError(
            f"{response.url.host} answered with Content-Encoding {encoding!r} after we asked for "
            "identity; compressed bodies are refused (they could expand without bound)"
        )
    try:
        held = response.content  # a response we already read and bounded (_buffered)
    except httpx.ResponseNotRead:
        # the chunks as the connection reads them (up to deadline.TCP_READ_BYTES): asking httpx
        # for larger ones makes it copy every byte twice more into and out of a buffer
        yield from response.iter_raw()
    else:
        yield held


def _read_prefix(response: httpx.Response, limit: int) -> bytes:
    """Up to ``limit`` bytes of a body that is only shown in a message; the rest is dropped."""
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in _raw_chunks(response):
            chunks.append(chunk)
            total += len(chunk)
            if total >= limit:
                break
    except (httpx.HTTPError, RegistryError):
        pass  # only ever shown in a message: what could not be read is left out
    finally:
        response.close()
    return b"".join(chunks)[:limit]


def _body(data: bytes | BinaryIO, start: int, length: int) -> bytes | Iterator[bytes]:
    if isinstance(data, bytes):
        return data[start : start + length]
    return _file_chunks(data, start, length)


def _file_chunks(handle: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    handle.seek(start)
    remaining = length
    while remaining > 0:
        chunk = handle.read(min(READ_CHUNK, remaining))
        if not chunk:
            raise RegistryError("blob file ended before its declared size")
        remaining -= len(chunk)
        yield chunk


def _next_link(header: str) -> str | None:
    """``</v2/x/tags/list?last=a&n=2>; rel="next"`` → the URL."""
    for part in header.split(","):
        if 'rel="next"' in part or "rel=next" in part:
            start, end = part.find("<"), part.find(">")
            if 0 <= start < end:
                return part[start + 1 : end]
    return None
