"""Settings from the environment: the one place trustkit reads ``os.environ``.

``Settings.from_env()`` is called by entry points (CLI, hooks, gate, webhook); library code takes a
``Settings`` argument instead of reading the environment itself, which keeps tests hermetic.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

ENV_CONTENT_TRUST = "SERVIN_CONTENT_TRUST"
ENV_TRUST_SERVER = "SERVIN_CONTENT_TRUST_SERVER"
ENV_ROOT_PASSPHRASE = "SERVIN_CONTENT_TRUST_ROOT_PASSPHRASE"
ENV_REPOSITORY_PASSPHRASE = "SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE"
#: the passphrase of a key FILE being imported (a docker/notary key keeps its own passphrase;
#: the key store re-encrypts it under the root or repository passphrase)
ENV_IMPORT_PASSPHRASE = "SERVIN_CONTENT_TRUST_IMPORT_PASSPHRASE"
ENV_TRUST_DIR = "SERVIN_TRUST_DIR"
ENV_CONFIG_DIR = "SERVIN_CONFIG"  # like DOCKER_CONFIG: where config.json (credentials) lives
ENV_REGISTRIES_CONFIG = "SERVIN_REGISTRIES_CONFIG"
ENV_POLICY_DIR = "SERVIN_POLICY_DIR"
ENV_SCANNER = "SERVIN_SCANNER"  # command run by `push --scan`, e.g. "trivy image --format json"
ENV_TRUST_EXPIRY = "SERVIN_TRUST_EXPIRY"  # e.g. "timestamp=7d,snapshot=1y" (Notary's defaults)
ENV_HSM_PIN = "SERVIN_HSM_PIN"  # the user PIN of a PKCS#11 token holding an `hsm:` key
#: which signature formats a content-trust push writes, e.g. "tuf,cosign" (docs/signatures.md)
ENV_SIGNATURE_FORMATS = "SERVIN_SIGNATURE_FORMATS"
SIGNATURE_FORMATS = ("tuf", "cosign")

#: the spellings of "off"; any other non-empty value is on, as Docker treats an unparsable
#: DOCKER_CONTENT_TRUST: a value meant as on ("enabled", "required", "2") never disables checks
_CONTENT_TRUST_OFF = {"0", "false", "f", "no", "n", "off"}
#: environment variables holding secrets (passphrases, PINs, tokens): never given to a child
_SECRET_ENV_RE = re.compile(
    r"\A(?:SERVIN|TRUSTKIT|DOCKER_CONTENT_TRUST|NOTARY)_\w*(?:PASSPHRASE|PASSWORD|PIN|SECRET|TOKEN)",
    re.ASCII | re.IGNORECASE,
)


def parse_content_trust(value: str | None) -> bool:
    """``SERVIN_CONTENT_TRUST``: unset or empty is off, an explicit "off" spelling is off, and
    everything else (including values nobody documented) is on: fail closed."""
    if not value:
        return False
    return value.strip().lower() not in _CONTENT_TRUST_OFF


def parse_signature_formats(value: str | None) -> tuple[str, ...]:
    """``SERVIN_SIGNATURE_FORMATS``: a comma list of ``tuf`` and ``cosign``; unset means both.
    The TUF collection is what content trust verifies, so it cannot be left out."""
    if value is None or not value.strip():
        return SIGNATURE_FORMATS
    formats = tuple(dict.fromkeys(f.strip().lower() for f in value.split(",") if f.strip()))
    unknown = [f for f in formats if f not in SIGNATURE_FORMATS]
    if unknown or "tuf" not in formats:
        from trustkit.errors import BadInputError

        raise BadInputError(
            f"{ENV_SIGNATURE_FORMATS}={value!r}: expected a comma list of "
            f"{', '.join(SIGNATURE_FORMATS)} including tuf",
            hint=f"{ENV_SIGNATURE_FORMATS}=tuf,cosign (the default) or tuf",
        )
    return formats


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for every process trustkit starts (scanner, credential helper): this
    process's, minus every secret it may hold (``SERVIN_*PASSPHRASE*``, ``SERVIN_HSM_PIN``,
    Docker's and Notary's passphrase variables...). A scanner needs none of them."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if not _SECRET_ENV_RE.match(k)}


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


@dataclass(frozen=True)
class Settings:
    """Everything an entry point needs to know about its environment."""

    trust_dir: Path
    content_trust: bool = False
    trust_server: str | None = None
    root_passphrase: str | None = field(default=None, repr=False)
    repository_passphrase: str | None = field(default=None, repr=False)
    config_dir: Path | None = None
    registries_config: Path | None = None
    policy_dir: Path | None = None
    scanner_command: str | None = None
    github_actions: bool = False  # GITHUB_ACTIONS=true: the gate also prints annotations
    trust_expiry: str | None = None  # role=duration,... overriding Notary's default expiries
    hsm_pin: str | None = field(default=None, repr=False)
    import_passphrase: str | None = field(default=None, repr=False)
    #: formats a content-trust push writes: the TUF collection always, cosign .sig by default
    signature_formats: tuple[str, ...] = SIGNATURE_FORMATS

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, trust_dir: Path | None = None
    ) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("HOME") or _home())
        resolved_trust_dir = trust_dir or Path(env.get(ENV_TRUST_DIR) or home / ".servin" / "trust")
        config_dir = Path(env.get(ENV_CONFIG_DIR) or home / ".servin")
        registries = env.get(ENV_REGISTRIES_CONFIG)
        policy_dir = env.get(ENV_POLICY_DIR)
        return cls(
            trust_dir=resolved_trust_dir.expanduser(),
            content_trust=parse_content_trust(env.get(ENV_CONTENT_TRUST)),
            trust_server=env.get(ENV_TRUST_SERVER) or None,
            root_passphrase=env.get(ENV_ROOT_PASSPHRASE),
            repository_passphrase=env.get(ENV_REPOSITORY_PASSPHRASE),
            config_dir=config_dir.expanduser(),
            registries_config=Path(registries).expanduser() if registries else None,
            policy_dir=Path(policy_dir).expanduser() if policy_dir else None,
            scanner_command=env.get(ENV_SCANNER) or None,
            github_actions=env.get("GITHUB_ACTIONS", "").lower() == "true",
            trust_expiry=env.get(ENV_TRUST_EXPIRY) or None,
            hsm_pin=env.get(ENV_HSM_PIN) or None,
            import_passphrase=env.get(ENV_IMPORT_PASSPHRASE) or None,
            signature_formats=parse_signature_formats(env.get(ENV_SIGNATURE_FORMATS)),
        )

    def with_changes(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    # Derived locations. Keep the layout in one place.
    @property
    def private_dir(self) -> Path:
        """Encrypted private keys."""
        return self.trust_dir / "private"

    @property
    def client_cache_dir(self) -> Path:
        """The client's cache of verified trust metadata (separate from any server data)."""
        return self.trust_dir / "tuf"

    @property
    def local_server_dir(self) -> Path:
        """The embedded trust server: a local directory that plays Notary's part."""
        if self.trust_server and self.trust_server.startswith("file://"):
            # a store option (file:///path?keep=N) is not part of the directory
            return Path(self.trust_server[len("file://") :].partition("?")[0])
        return self.trust_dir / "server"

    @property
    def trust_store_url(self) -> str:
        """The trust-data store as a URL (``trustkit.stores.open_store`` opens it by scheme).

        ``SERVIN_CONTENT_TRUST_SERVER`` unset or ``registry``: each image's trust data lives in
        its own registry (``registry://``); ``local``: the embedded directory in the trust dir;
        otherwise a store URL (``file:///path``, ``oci://host/prefix``, ``registry://?...``)."""
        if self.trust_server in (None, "registry"):
            return "registry://"
        if self.trust_server == "local":
            return f"file://{self.local_server_dir}"
        return self.trust_server

    @property
    def effective_policy_dir(self) -> Path:
        return self.policy_dir or self.trust_dir / "policies"

    @property
    def effective_config_dir(self) -> Path:
        return self.config_dir or _home() / ".servin"

    @property
    def credentials_file(self) -> Path:
        """Docker-compatible ``config.json`` with ``auths``, ``credsStore``, ``credHelpers``."""
        return self.effective_config_dir / "config.json"

    @property
    def effective_registries_config(self) -> Path:
        """The registries configuration file (seed format): default ~/.servin/registries.json."""
        return self.registries_config or self.effective_config_dir / "registries.json"
