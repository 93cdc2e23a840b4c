"""Registry credentials in the docker/servin ``config.json`` (``auths``, ``credsStore``,
``credHelpers``) and the registries configuration's ``auth`` entry.

Lookup order follows Docker: a per-registry ``credHelpers`` entry, then ``credsStore``, then the
inline ``auths`` entry; the registries configuration is used when config.json has nothing.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustkit._fs import atomic_write, file_lock, make_private_dirs, read_bounded
from trustkit._json import load_json_object
from trustkit.config import Settings, child_environment
from trustkit.errors import BadInputError, StorageError, TrustEnvironmentError
from trustkit.registry.config import DOCKER_HUB, RegistryConfig

MAX_CONFIG_JSON = 1024 * 1024
MAX_HELPER_OUTPUT = 64 * 1024
HELPER_TIMEOUT = 30.0
DOCKER_HUB_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    #: an OAuth2 refresh token (config.json ``identitytoken``; a helper's ``<token>`` user):
    #: exchanged at the token server instead of the password (ACR, Harbor OIDC)
    identity_token: str | None = field(default=None, repr=False)


def _config_key(host: str) -> str:
    return DOCKER_HUB_KEY if host == DOCKER_HUB else host


def _normalise_key(key: str) -> str:
    """``https://host/v1/`` and ``host`` name the same registry (as Docker's ConvertToHostname)."""
    text = key
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    text = text.split("/", 1)[0]
    return DOCKER_HUB if text in ("index.docker.io", "registry-1.docker.io") else text


def normalise_registry(text: str) -> str:
    """What ``trustkit login`` accepts (``host[:port]``, ``https://host/v1/``) → ``host[:port]``."""
    host = _normalise_key(text.strip())
    if not host or any(c.isspace() for c in host) or "@" in host:
        raise BadInputError(f"invalid registry name {text!r}: expected host[:port]")
    return host


def read_config_json(path: Path) -> dict[str, Any]:
    try:
        raw = read_bounded(path, MAX_CONFIG_JSON, what="credentials file")
    except FileNotFoundError:
        return {}
    return load_json_object(
        raw,
        what="the file",
        error=lambda why: BadInputError(f"malformed credentials file {path}: {why}"),
    )


def _decode_auth(value: Any, path: Path, host: str) -> Credentials | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInputError(f"malformed credentials file {path}: bad 'auth' for {host}") from exc
    username, sep, password = text.partition(":")
    if not sep:
        raise BadInputError(f"malformed credentials file {path}: 'auth' for {host} lacks ':'")
    return Credentials(username, password)


def _auths_entry(doc: dict[str, Any], host: str, path: Path) -> Credentials | None:
    auths = doc.get("auths") or {}
    if not isinstance(auths, dict):
        raise BadInputError(f"malformed credentials file {path}: 'auths' must be an object")
    for key, entry in auths.items():
        if _normalise_key(str(key)) != host or not isinstance(entry, dict):
            continue
        found = _decode_auth(entry.get("auth"), path, host)
        if found is None and isinstance(entry.get("username"), str):
            found = Credentials(entry["username"], str(entry.get("password", "")))
        token = entry.get("identitytoken")
        if isinstance(token, str) and token:
            user = found.username if found is not None else "<token>"
            found = Credentials(user, "", identity_token=token)
        if found is not None:
            return found
    return None


def run_helper(helper: str, action: str, payload: str) -> str:
    """Run ``docker-credential-<helper> <action>`` with ``payload`` on stdin."""
    if not helper or "/" in helper or helper.startswith("."):
        raise BadInputError(f"invalid credential helper name {helper!r}")
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        raise TrustEnvironmentError(
            f"credential helper docker-credential-{helper} is not installed",
            hint="install it or remove it from config.json",
        )
    try:
        proc = subprocess.run(
            [program, action],
            input=payload.encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT,
            check=False,
            env=child_environment(),  # no passphrases for the helper
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TrustEnvironmentError(f"credential helper {helper} failed: {exc}") from exc
    out = proc.stdout[:MAX_HELPER_OUTPUT].decode("utf-8", "replace")
    if proc.returncode != 0:
        if "credentials not found" in out.lower():
            return ""
        raise TrustEnvironmentError(
            f"credential helper {helper} {action} failed: {out.strip()[:200] or 'no output'}"
        )
    return out


def _helper_get(helper: str, host: str) -> Credentials | None:
    out = run_helper(helper, "get", _config_key(host))
    if not out.strip():
        return None
    try:
        doc = json.loads(out)
        username, secret = doc["Username"], doc["Secret"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise TrustEnvironmentError(f"credential helper {helper} gave malformed output") from exc
    if not isinstance(username, str) or not isinstance(secret, str):
        raise TrustEnvironmentError(f"credential helper {helper} gave malformed output")
    if username == "<token>":  # the helper protocol's marker of an identity token
        return Credentials(username, "", identity_token=secret)
    return Credentials(username, secret)


def lookup_credentials(
    settings: Settings, host: str, registry_config: RegistryConfig | None = None
) -> Credentials | None:
    """Credentials for ``host`` (``host[:port]``, ``docker.io`` for Docker Hub), or None."""
    path = settings.credentials_file
    doc = read_config_json(path)
    helpers = doc.get("credHelpers") or {}
    if isinstance(helpers, dict):
        for key, helper in helpers.items():
            if _normalise_key(str(key)) == host and isinstance(helper, str):
                return _helper_get(helper, host)
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        found = _helper_get(store, host)
        if found is not None:
            return found
    found = _auths_entry(doc, host, path)
    if found is not None:
        return found
    auth = registry_config.auth if registry_config else None
    if auth is not None:
        if auth.username is not None and auth.password is not None:
            return Credentials(auth.username, auth.password)
        if auth.auth_file is not None:
            return _auths_entry(read_config_json(auth.auth_file), host, auth.auth_file)
    return None


def store_credentials(
    settings: Settings, host: str, creds: Credentials, *, helper: str | None = None
) -> Path:
    """Save credentials the way ``docker login`` does; config.json stays 0600.

    ``helper`` (``docker-credential-<helper>``) stores them and is recorded as the host's
    ``credHelpers`` entry; otherwise the host's existing ``credHelpers`` entry, then
    ``credsStore``, then base64 in ``auths`` (unencrypted, as docker does)."""
    path = settings.credentials_file
    with file_lock(path.with_name(path.name + ".lock")):
        doc = read_config_json(path)
        store = helper or _host_helper(doc, host) or doc.get("credsStore")
        if helper:
            helpers = doc.get("credHelpers")
            if not isinstance(helpers, dict):
                helpers = doc["credHelpers"] = {}
            for key in [k for k in helpers if _normalise_key(str(k)) == host]:
                del helpers[key]
            helpers[_config_key(host)] = helper
        if isinstance(store, str) and store:
            run_helper(
                store,
                "store",
                json.dumps(
                    {
                        "ServerURL": _config_key(host),
                        "Username": creds.username,
                        "Secret": creds.password,
                    }
                ),
            )
            _remove_auths(doc, host)
            doc.setdefault("auths", {})[_config_key(host)] = {}
        else:
            _remove_auths(doc, host)
            token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            doc.setdefault("auths", {})[_config_key(host)] = {"auth": token}
        _write(path, doc)
    return path


def _host_helper(doc: dict[str, Any], host: str) -> str | None:
    helpers = doc.get("credHelpers") or {}
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if _normalise_key(str(key)) == host and isinstance(name, str) and name:
                return name
    return None


def stored_unencrypted(settings: Settings, host: str) -> bool:
    """Whether ``host``'s secret sits base64-encoded in config.json itself (no helper)."""
    path = settings.credentials_file
    doc = read_config_json(path)
    helpers = doc.get("credHelpers") or {}
    if isinstance(helpers, dict) and any(_normalise_key(str(k)) == host for k in helpers):
        return False
    auths = doc.get("auths") or {}
    if not isinstance(auths, dict):
        return False
    return any(
        _normalise_key(str(key)) == host and isinstance(entry, dict) and bool(entry.get("auth"))
        for key, entry in auths.items()
    )


def erase_credentials(settings: Settings, host: str) -> bool:
    """Forget ``host``'s credentials; True when something was removed."""
    path = settings.credentials_file
    with file_lock(path.with_name(path.name + ".lock")):
        doc = read_config_json(path)
        removed = _remove_auths(doc, host)
        store = _host_helper(doc, host) or doc.get("credsStore")
        if isinstance(store, str) and store:
            run_helper(store, "erase", _config_key(host))
            removed = True
        if removed:
            _write(path, doc)
    return removed


def _remove_auths(doc: dict[str, Any], host: str) -> bool:
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return False
    keys = [k for k in auths if _normalise_key(str(k)) == host]
    for key in keys:
        del auths[key]
    return bool(keys)


def _write(path: Path, doc: dict[str, Any]) -> None:
    try:
        make_private_dirs(path.parent)  # every missing parent 0700 too, whatever the umask
    except OSError as exc:
        raise StorageError(f"cannot create {path.parent}: {exc.strerror}") from exc
    atomic_write(path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o600)
