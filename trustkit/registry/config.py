"""The registries configuration file (the servin guide's JSON): per-registry TLS, mirrors, auth.

Default location ``settings.effective_registries_config`` (``$SERVIN_REGISTRIES_CONFIG`` or
``~/.servin/registries.json``). A missing file means "no special settings"; a malformed one is a
clear BadInputError naming the file and the field, never silently ignored.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustkit._fs import read_bounded
from trustkit._json import load_json_object
from trustkit.config import Settings
from trustkit.errors import BadInputError

MAX_CONFIG_SIZE = 1024 * 1024
SHORT_NAME_MODES = ("enforcing", "permissive", "disabled")
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"


@dataclass(frozen=True)
class TLSConfig:
    insecure: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @property
    def configured(self) -> bool:
        return bool(self.insecure or self.ca_file or self.cert_file)


@dataclass(frozen=True)
class AuthConfig:
    username: str | None = field(default=None)
    password: str | None = field(default=None, repr=False)
    auth_file: Path | None = None


@dataclass(frozen=True)
class RegistryConfig:
    """Settings for one registry host (``host[:port]``)."""

    host: str
    mirrors: tuple[str, ...] = ()
    resolve: bool = True
    tls: TLSConfig = TLSConfig()
    auth: AuthConfig | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may carry a token
    #: where this registry's images keep their trust data, overriding
    #: SERVIN_CONTENT_TRUST_SERVER: "registry" (in the registry itself) or a store URL
    trust_server: str | None = None


@dataclass(frozen=True)
class RegistriesConfig:
    registries: dict[str, RegistryConfig] = field(default_factory=dict)
    unqualified_search_registries: tuple[str, ...] = (DOCKER_HUB,)
    short_name_mode: str = "enforcing"
    source: Path | None = None

    def for_host(self, host: str) -> RegistryConfig:
        found = self.registries.get(host)
        if found is None and host == DOCKER_HUB_API:
            found = self.registries.get(DOCKER_HUB)
        return found or RegistryConfig(host=host)


def load_registries_config(settings: Settings) -> RegistriesConfig:
    """registries.json, with daemon.json's ``registry-mirrors`` as Docker Hub's mirrors when
    registries.json names none (servin's daemon configuration)."""
    import dataclasses

    path = settings.effective_registries_config
    try:
        raw = read_bounded(path, MAX_CONFIG_SIZE, what="registries configuration")
    except FileNotFoundError:
        config = RegistriesConfig()
    else:
        config = parse_registries_config(raw, path)
    hub = config.for_host(DOCKER_HUB)
    if not hub.mirrors:
        mirrors = daemon_hub_mirrors(settings)
        if mirrors:
            registries = {
                **config.registries,
                DOCKER_HUB: dataclasses.replace(hub, mirrors=mirrors),
            }
            config = dataclasses.replace(config, registries=registries)
    return config


def parse_registries_config(raw: bytes, path: Path) -> RegistriesConfig:
    def bad(what: str) -> BadInputError:
        return BadInputError(
            f"malformed registries configuration {path}: {what}",
            hint="fix the file or point SERVIN_REGISTRIES_CONFIG at another one",
        )

    doc = load_json_object(raw, what="the file", error=bad)
    unknown = set(doc) - {"registries", "unqualified_search_registries", "short_name_mode"}
    if unknown:
        raise bad(f"unknown key(s) {', '.join(sorted(unknown))}")
    registries_doc = doc.get("registries", {})
    if not isinstance(registries_doc, dict):
        raise bad("'registries' must be an object keyed by registry host")
    registries = {
        host: _registry(host, entry, bad, path.parent) for host, entry in registries_doc.items()
    }
    search = doc.get("unqualified_search_registries", [DOCKER_HUB])
    if not isinstance(search, list) or not all(isinstance(s, str) and s for s in search):
        raise bad("'unqualified_search_registries' must be a list of registry hosts")
    mode = doc.get("short_name_mode", "enforcing")
    if mode not in SHORT_NAME_MODES:
        raise bad(f"'short_name_mode' must be one of {', '.join(SHORT_NAME_MODES)}")
    return RegistriesConfig(registries, tuple(search), mode, path)


def _registry(host: Any, entry: Any, bad: Any, base: Path) -> RegistryConfig:
    where = f"registries[{host!r}]"
    if not isinstance(host, str) or not host or "/" in host:
        raise bad(f"{where}: the key must be a registry host[:port]")
    if not isinstance(entry, dict):
        raise bad(f"{where} must be an object")
    unknown = set(entry) - {"mirrors", "resolve", "tls", "auth", "headers", "trust_server"}
    if unknown:
        raise bad(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    mirrors = entry.get("mirrors", [])
    if not isinstance(mirrors, list) or not all(isinstance(m, str) and m for m in mirrors):
        raise bad(f"{where}.mirrors must be a list of URLs")
    resolve = entry.get("resolve", True)
    if not isinstance(resolve, bool):
        raise bad(f"{where}.resolve must be true or false")
    tls_doc = entry.get("tls", {})
    if not isinstance(tls_doc, dict):
        raise bad(f"{where}.tls must be an object")
    unknown = set(tls_doc) - {"insecure", "ca_file", "cert_file", "key_file"}
    if unknown:
        raise bad(f"{where}.tls: unknown key(s) {', '.join(sorted(unknown))}")
    insecure = tls_doc.get("insecure", False)
    if not isinstance(insecure, bool):
        raise bad(f"{where}.tls.insecure must be true or false")

    def path_of(doc: dict[str, Any], key: str, prefix: str) -> Path | None:
        value = doc.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise bad(f"{where}.{prefix}{key} must be a file path")
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else base / candidate

    tls = TLSConfig(
        insecure,
        path_of(tls_doc, "ca_file", "tls."),
        path_of(tls_doc, "cert_file", "tls."),
        path_of(tls_doc, "key_file", "tls."),
    )
    if (tls.cert_file is None) != (tls.key_file is None):
        raise bad(f"{where}.tls: cert_file and key_file go together")
    auth = None
    if "auth" in entry:
        auth_doc = entry["auth"]
        if not isinstance(auth_doc, dict):
            raise bad(f"{where}.auth must be an object")
        unknown = set(auth_doc) - {"username", "password", "auth_file"}
        if unknown:
            raise bad(f"{where}.auth: unknown key(s) {', '.join(sorted(unknown))}")
        for key in ("username", "password"):
            if key in auth_doc and not isinstance(auth_doc[key], str):
                raise bad(f"{where}.auth.{key} must be a string")
        auth = AuthConfig(
            auth_doc.get("username"),
            auth_doc.get("password"),
            path_of(auth_doc, "auth_file", "auth."),
        )
    headers = entry.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and "\n" not in v for k, v in headers.items()
    ):
        raise bad(f"{where}.headers must map header names to single-line strings")
    trust_server = entry.get("trust_server")
    if trust_server is not None and (
        not isinstance(trust_server, str)
        or (trust_server != "registry" and "://" not in trust_server)
    ):
        raise bad(f'{where}.trust_server must be "registry" or a store URL (file:///...)')
    return RegistryConfig(
        host, tuple(mirrors), resolve, tls, auth, dict(headers), trust_server=trust_server
    )


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1 (port optional): plain HTTP allowed, as in Docker."""
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def api_host(host: str) -> str:
    """Docker Hub's API is served from registry-1.docker.io."""
    return DOCKER_HUB_API if host in (DOCKER_HUB, "index.docker.io") else host


# --- editing from the command line (``trustkit config set|get|unset``) -------------------------
#: the servin guide's keys and what each edits in registries.json
CONFIG_KEYS = {
    "registry.default": "the registry a short name (alpine, team/app) means: the first "
    "unqualified_search_registries entry",
    "registry.private": "private registries (host[:port], comma-separated): each gets an entry",
    "registry.mirrors": "Docker Hub mirrors (URLs, comma-separated), tried in order",
    "registry.insecure": "registries reached without TLS verification (host[:port], comma-sep.)",
}


def _hosts(value: str, key: str) -> list[str]:
    hosts = [h.strip() for h in value.split(",") if h.strip()]
    for host in hosts:
        if "/" in host or any(c.isspace() for c in host) or "@" in host:
            raise BadInputError(f"{key}: {host!r} is not a registry host[:port]")
    if not hosts:
        raise BadInputError(f"{key} needs at least one value")
    return hosts


def _mirror_urls(value: str) -> list[str]:
    urls = [u.strip() for u in value.split(",") if u.strip()]
    if not urls:
        raise BadInputError("registry.mirrors needs at least one URL")
    for url in urls:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("http", "https") or not rest.split("/")[0]:
            raise BadInputError(f"registry.mirrors: {url!r} is not an http(s) URL")
    return urls


def _read_doc(path: Path) -> dict[str, Any]:
    try:
        raw = read_bounded(path, MAX_CONFIG_SIZE, what="registries configuration")
    except FileNotFoundError:
        return {}
    parse_registries_config(raw, path)  # a malformed file is refused, never overwritten
    return load_json_object(raw, what="the file", error=lambda why: BadInputError(why))


def _entry(doc: dict[str, Any], host: str) -> dict[str, Any]:
    registries = doc.setdefault("registries", {})
    entry = registries.setdefault(host, {})
    assert isinstance(entry, dict)
    return entry


def config_get(settings: Settings, key: str) -> list[str]:
    """The values of ``key`` as the registries configuration has them now."""
    config = load_registries_config(settings)
    if key == "registry.default":
        return list(config.unqualified_search_registries[:1])
    if key == "registry.private":
        return sorted(h for h in config.registries if h != DOCKER_HUB)
    if key == "registry.mirrors":
        return list(effective_hub_mirrors(settings, config))
    if key == "registry.insecure":
        return sorted(h for h, r in config.registries.items() if r.tls.insecure)
    raise BadInputError(f"unknown configuration key {key!r}", hint=_keys_hint())


def config_set(settings: Settings, key: str, value: str | None) -> Path:
    """Set (``value``) or unset (None) ``key`` in registries.json: read, edit, validate the
    result as the loader would, write atomically under a lock."""
    import json

    from trustkit._fs import atomic_write, file_lock, make_private_dirs

    if key not in CONFIG_KEYS:
        raise BadInputError(f"unknown configuration key {key!r}", hint=_keys_hint())
    path = settings.effective_registries_config
    make_private_dirs(path.parent)
    with file_lock(path.with_name(path.name + ".lock")):
        doc = _read_doc(path)
        _edit(doc, key, value)
        data = (json.dumps(doc, indent=2) + "\n").encode()
        parse_registries_config(data, path)  # never write a file the loader would refuse
        atomic_write(path, data, mode=0o644)
    return path


def _edit(doc: dict[str, Any], key: str, value: str | None) -> None:
    registries = doc.get("registries", {})
    if key == "registry.default":
        search = [s for s in doc.get("unqualified_search_registries", []) if isinstance(s, str)]
        if value is None:
            doc.pop("unqualified_search_registries", None)
            return
        (host,) = _hosts(value, key)[:1]
        doc["unqualified_search_registries"] = [host, *(s for s in search if s != host)]
    elif key == "registry.private":
        wanted = set(_hosts(value, key)) if value is not None else set()
        for host in [h for h in registries if h != DOCKER_HUB and h not in wanted]:
            if not registries[host] or value is None:
                del registries[host]  # an entry with settings of its own is kept on set
        for host in sorted(wanted):
            _entry(doc, host)
    elif key == "registry.mirrors":
        if value is None:
            if isinstance(registries.get(DOCKER_HUB), dict):
                registries[DOCKER_HUB].pop("mirrors", None)
            return
        _entry(doc, DOCKER_HUB)["mirrors"] = _mirror_urls(value)
    elif key == "registry.insecure":
        wanted = set(_hosts(value, key)) if value is not None else set()
        for host, entry in registries.items():
            tls = entry.get("tls") if isinstance(entry, dict) else None
            if isinstance(tls, dict) and tls.get("insecure") and host not in wanted:
                tls.pop("insecure")
        for host in sorted(wanted):
            _entry(doc, host).setdefault("tls", {})["insecure"] = True


def _keys_hint() -> str:
    return f"choose one of {', '.join(CONFIG_KEYS)}"


# --- daemon.json -------------------------------------------------------------------------------
MAX_DAEMON_JSON = 1024 * 1024


def daemon_config_paths(settings: Settings) -> list[Path]:
    """Where servin's daemon.json is looked for: the config directory, then /etc/servin."""
    return [settings.effective_config_dir / "daemon.json", Path("/etc/servin/daemon.json")]


def daemon_hub_mirrors(settings: Settings) -> tuple[str, ...]:
    """``registry-mirrors`` of the first daemon.json found: Docker Hub's mirrors, as servin
    (and dockerd) use them. Malformed: refused with the file named, never ignored."""
    for path in daemon_config_paths(settings):
        try:
            raw = read_bounded(path, MAX_DAEMON_JSON, what="daemon configuration")
        except (FileNotFoundError, PermissionError):
            continue

        def bad(why: str, path: Path = path) -> BadInputError:
            return BadInputError(f"malformed daemon configuration {path}: {why}")

        doc = load_json_object(raw, what="the file", error=bad)
        mirrors = doc.get("registry-mirrors", [])
        if not isinstance(mirrors, list) or not all(isinstance(m, str) and m for m in mirrors):
            raise bad("'registry-mirrors' must be a list of URLs")
        return tuple(_mirror_urls(",".join(mirrors))) if mirrors else ()
    return ()


def effective_hub_mirrors(settings: Settings, config: RegistriesConfig) -> tuple[str, ...]:
    """Docker Hub's mirrors: registries.json's, else daemon.json's ``registry-mirrors``."""
    hub = config.registries.get(DOCKER_HUB)
    if hub is not None and hub.mirrors:
        return hub.mirrors
    return daemon_hub_mirrors(settings)
