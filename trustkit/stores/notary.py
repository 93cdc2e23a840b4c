"""A notary-server (Notary v1) as a trust store: ``SERVIN_CONTENT_TRUST_SERVER=https://host:port``
(or ``http://`` on loopback).

The server speaks the registry's ``/v2/`` dialect and auth (token auth follows the server's
challenge, credentials and TLS come from ``registries.json`` for the server's host, as for a
registry), so the connection is the process's pooled registry client for that host. Reads are
bounded; publishing is notary's atomic multipart POST. The server signs timestamp and (when it
holds that key) snapshot itself. The bytes are Notary's wire format, not TUF 1.0: they are read
by ``trustkit.notary``, never by the TUF engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from trustkit.errors import (
    AuthenticationError,
    BadInputError,
    ConflictError,
    InputTooLargeError,
    MetadataNotFoundError,
    RegistryError,
    StorageError,
    TLSVerificationError,
    TrustEnvironmentError,
    UnreachableError,
)
from trustkit.stores.interface import MetadataFile, MetadataStore, StoreCapabilities

if TYPE_CHECKING:
    import httpx

    from trustkit.registry.client import RegistryClient
    from trustkit.services import Services

PULL = ["pull"]
PUSH = ["pull", "push"]
MAX_ERROR_DETAIL = 200


class NotaryServerStore(MetadataStore):
    """One notary-server, every collection (GUN) it holds."""

    def __init__(self, url: str, client: RegistryClient) -> None:
        self.url = url.rstrip("/")
        self.client = client
        self.description = f"notary-server {self.url}"

    @property
    def capabilities(self) -> StoreCapabilities:
        # snapshot too: notary-server signs it when it holds the key (`notary key rotate
        # GUN snapshot -r`, docker's default); a writer holding the snapshot key sends it anyway
        return StoreCapabilities(
            server_signed_roles=frozenset({"timestamp"}), pending_changes=False
        )

    def _path(self, gun: str, name: str) -> str:
        return f"/v2/{quote(gun, safe='/:')}/_trust/tuf/{name}"

    def _request(
        self, method: str, path: str, *, scopes: list[str], **kwargs: object
    ) -> httpx.Response:
        try:
            return self.client._send(method, path, scopes=scopes, stream=True, **kwargs)  # type: ignore[arg-type]
        except TLSVerificationError:
            raise
        except (UnreachableError, RegistryError) as exc:  # AuthenticationError included
            message = str(exc).replace(f"registry {self.client.host}", self.description)
            if self.description not in message:
                message = f"{self.description}: {message}"
            raise type(exc)(message, hint=exc.hint) from exc

    def _failure(self, response: httpx.Response, what: str) -> TrustEnvironmentError:
        from trustkit.registry.client import _read_prefix

        detail = _read_prefix(response, 4096).decode("utf-8", "replace")
        # storage errors leak the driver's message: show only the error code
        code = "UNKNOWN"
        if '"code":"' in detail:
            code = detail.split('"code":"', 1)[1].split('"', 1)[0][:40]
        text = f"{what}: {self.description} answered {response.status_code} ({code})"
        if response.status_code in (401, 403):
            return AuthenticationError(text, hint=f"run trustkit login {self.client.host}")
        return RegistryError(text)

    # --- reading -------------------------------------------------------------------------
    def read(self, gun: str, role: str, version: int | None, *, limit: int) -> bytes:
        name = f"{role}.json" if version is None else f"{version}.{role}.json"
        return self._read_name(gun, role, name, limit)

    def read_by_hash(self, gun: str, role: str, sha256: bytes, *, limit: int) -> bytes:
        """``role`` by the sha256 its parent signed (``<role>.<hex>.json``), as the notary
        client fetches it: the file the parent names even while a writer publishes a newer
        one, where the current name could already serve the newer file."""
        return self._read_name(gun, role, f"{role}.{sha256.hex()}.json", limit)

    def _read_name(self, gun: str, role: str, name: str, limit: int) -> bytes:
        response = self._request("GET", self._path(gun, name), scopes=[f"repository:{gun}:pull"])
        if response.status_code == 404:
            response.close()
            raise MetadataNotFoundError(f"{role} of {gun} is not on {self.description}")
        if response.status_code != 200:
            raise self._failure(response, f"reading {role} of {gun}")
        try:
            return self.client._read_bounded(response, limit, f"{role} of {gun} from {self.url}")
        except InputTooLargeError as exc:
            from trustkit.errors import UntrustedError

            # a server sending more than the signed length is tampering, not bad input
            raise UntrustedError(
                f"{role} of {gun} from {self.description} is too large (over the {limit}-byte "
                "limit)"
            ) from exc

    def exists(self, gun: str) -> bool:
        try:
            self.read(gun, "root", None, limit=512 * 1024)
        except MetadataNotFoundError:
            return False
        return True

    def root_version(self, gun: str) -> int:
        from trustkit._json import decode_untrusted_json

        try:
            raw = self.read(gun, "root", None, limit=512 * 1024)
        except MetadataNotFoundError:
            return 0
        doc = decode_untrusted_json(raw, what=f"root of {gun}", error=StorageError)
        version = doc.get("signed", {}).get("version") if isinstance(doc, dict) else None
        return version if isinstance(version, int) else 0

    def generation(self, gun: str) -> str | None:
        try:
            raw = self.read(gun, "timestamp", None, limit=64 * 1024)
        except MetadataNotFoundError:
            return None
        return hashlib.sha256(raw).hexdigest()

    # --- server-managed keys and publishing ----------------------------------------------
    def server_key(self, gun: str, role: str) -> bytes:
        """The public key the server signs ``role`` with (created on first request)."""
        response = self._request(
            "GET", self._path(gun, f"{role}.key"), scopes=[f"repository:{gun}:push,pull"]
        )
        if response.status_code != 200:
            raise self._failure(response, f"getting the {role} key of {gun}")
        return self.client._read_bounded(response, 64 * 1024, f"{role} key of {gun}")

    def rotate_server_key(self, gun: str, role: str) -> bytes:
        """Have the server make a new key for ``role`` (``notary key rotate GUN ROLE -r``); the
        server signs with it once a root naming it is published."""
        response = self._request(
            "POST", self._path(gun, f"{role}.key"), scopes=[f"repository:{gun}:*"]
        )
        if response.status_code != 200:
            raise self._failure(response, f"rotating the {role} key of {gun}")
        return self.client._read_bounded(response, 64 * 1024, f"{role} key of {gun}")

    def writing(self, gun: str) -> AbstractContextManager[None]:
        return nullcontext()

    def publish(self, gun: str, files: Sequence[MetadataFile], *, expected: str | None) -> str:
        """notary's atomic update: one multipart POST; the server checks every file against
        what it holds and signs a new timestamp. Conflicts surface as the server's 400."""
        self.check_publishable(gun, files)
        current = self.generation(gun)
        if current != expected:
            from trustkit.stores.interface import check_expected

            check_expected(self.description, gun, expected, current)
        import uuid  # here: uuid imports platform, which a verify of any store never needs

        boundary = uuid.uuid4().hex
        parts: list[bytes] = []
        for item in files:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                f'filename="{item.role}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
                + item.data
                + b"\r\n"
            )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        response = self._request(
            "POST",
            self._path(gun, ""),
            scopes=[f"repository:{gun}:push,pull"],
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            content=lambda: body,
        )
        if response.status_code == 400:
            failure = self._failure(response, f"publishing {gun}")
            raise ConflictError(
                f"{failure} (the server refused the update: another writer may have published)",
                hint="run the command again",
            )
        if response.status_code != 200:
            raise self._failure(response, f"publishing {gun}")
        response.close()
        new = self.generation(gun)
        if new is None:
            raise StorageError(f"{self.description} lost {gun} right after publishing it")
        return new


def open_notary_store(url: str, services: Services | None) -> MetadataStore:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise BadInputError(
            f"notary server {url!r} must be https://host[:port]",
            hint="set SERVIN_CONTENT_TRUST_SERVER=https://notary.example.com:4443",
        )
    host = parts.netloc
    from trustkit.registry.config import is_loopback

    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise BadInputError(
            f"notary server {url!r}: plain http is only allowed on loopback",
            hint="use https:// (its CA goes into registries.json as for a registry)",
        )
    if services is not None:
        client = services.registries.client(host, scheme=parts.scheme)
    else:
        from trustkit.config import Settings
        from trustkit.registry.pool import RegistryPool

        client = RegistryPool(Settings.from_env()).client(host, scheme=parts.scheme)
    return NotaryServerStore(f"{parts.scheme}://{host}", client)


def notary_store_for(store: MetadataStore, gun: str) -> NotaryServerStore | None:
    """The notary-server holding ``gun`` (``store`` itself, or the one ``registries.json``
    names as that registry's ``trust_server``), or None when its trust data is TUF."""
    for _ in range(4):  # a routing store wraps one level; bounded all the same
        if isinstance(store, NotaryServerStore):
            return store
        route = getattr(store, "store_for", None)
        if route is None:
            return None
        routed = route(gun)
        if routed is store:
            return None
        store = routed
    return None


def is_notary_store(store: MetadataStore, gun: str) -> bool:
    return notary_store_for(store, gun) is not None
