"""Online keys: a role's private key held by an HSM or a cloud KMS, named by a securesystemslib
private key URI (``hsm:``, ``awskms:``, ``gcpkms:``, ``azurekms:``, ``hv:``) instead of a file.

securesystemslib does the talking: its ``import_`` reads the public key through the signer, its
``Signer.from_priv_key_uri`` signs. Each backend reads its own configuration the way its SDK
does (``PYKCS11LIB`` for the PKCS#11 module, ``AWS_*`` for boto3, Google/Azure/Vault credentials
from their usual places); trustkit only supplies the HSM's PIN (``SERVIN_HSM_PIN``, else a prompt
on a terminal). Every failure of a backend (module missing, token or KMS unreachable, key gone,
access denied) becomes one line naming the URI: environment errors exit 3, never a traceback.
"""

from __future__ import annotations

import contextlib
import getpass
import importlib
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib import parse

from trustkit import _signer_backends
from trustkit.errors import (
    BadInputError,
    KeyStoreError,
    PassphraseError,
    TrustkitError,
    UnreachableError,
)
from trustkit.keys._sslib import Key, Signature, Signer, SSlibKey

#: the URI schemes securesystemslib resolves to a remote signer, and what holds the key
ONLINE_SCHEMES = {
    "hsm": "PKCS#11 token (HSM)",
    "awskms": "AWS KMS",
    "gcpkms": "Google Cloud KMS",
    "azurekms": "Azure Key Vault",
    "hv": "HashiCorp Vault transit engine",
}
MAX_URI = 1024  # a URI is stored in the key record and shown in errors: bounded

# securesystemslib logs a signer's failure before raising it; we report it as one line, so its
# record must not reach Python's last-resort handler (a second, unformatted line on stderr)
logging.getLogger("securesystemslib.signer").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class PinSource:
    """The HSM user PIN: the configured one, else asked once on a terminal, else an error."""

    configured: str | None = None
    interactive: bool | None = None
    prompt: Callable[[str], str] = getpass.getpass

    def __call__(self, message: str) -> str:
        if self.configured:
            return self.configured
        interactive = sys.stdin.isatty() if self.interactive is None else self.interactive
        if not interactive:
            raise PassphraseError(
                "the HSM needs its user PIN and there is no terminal to ask: set SERVIN_HSM_PIN"
            )
        return self.prompt(f"Enter the {message or 'PIN'} of the HSM token: ")


def scheme_of(uri: str) -> str:
    """The URI's scheme after checking it is one of ONLINE_SCHEMES (else BadInputError)."""
    if len(uri) > MAX_URI or any(c.isspace() for c in uri):
        raise BadInputError(f"invalid key URI {uri[:80]!r}: too long or contains whitespace")
    scheme = uri.split(":", 1)[0] if ":" in uri else ""
    if scheme not in ONLINE_SCHEMES:
        choices = ", ".join(f"{s}:" for s in ONLINE_SCHEMES)
        raise BadInputError(f"unsupported key URI {uri!r} (expected one of: {choices})")
    return scheme


def import_public_key(uri: str, pins: PinSource) -> tuple[str, SSlibKey]:
    """(canonical URI, public key) of the online key ``uri``, read through its signer.

    Accepted spellings: ``hsm:2`` or ``hsm:2?label=TOKEN`` (key id 2 on the token), ``awskms:KEY``
    (key id, ARN or ``alias/NAME``), ``gcpkms:projects/.../cryptoKeyVersions/N``,
    ``azurekms://VAULT.vault.azure.net/keys/NAME[/VERSION]``, ``hv:NAME[/VERSION]``."""
    scheme = scheme_of(uri)
    _signer_backends.enable()
    with backend_errors(uri):
        return _import(scheme, uri, pins)


def _import(scheme: str, uri: str, pins: PinSource) -> tuple[str, SSlibKey]:
    sslib: Any = importlib.import_module("securesystemslib.signer")  # untyped re-exports
    parsed = parse.urlparse(uri)
    if scheme == "hsm":
        keyid_text = parsed.path or "2"
        if not keyid_text.isdigit():
            raise BadInputError(f"invalid HSM key URI {uri!r}: expected hsm:<key id>[?label=...]")
        label = dict(parse.parse_qsl(parsed.query)).get("label")
        imported: tuple[str, SSlibKey] = sslib.HSMSigner.import_(
            int(keyid_text), label, secrets_handler=pins
        )
        return imported
    if scheme == "awskms":
        return _need_path(uri, parsed.path, sslib.AWSSigner.import_)
    if scheme == "gcpkms":
        return _need_path(uri, parsed.path, sslib.GCPSigner.import_)
    if scheme == "hv":
        return _need_path(uri, parsed.path.split("/", 1)[0], sslib.VaultSigner.import_)
    # azurekms://VAULT.vault.azure.net/keys/NAME[/VERSION]
    vault = parsed.netloc.split(".", 1)[0]
    parts = parsed.path.strip("/").split("/")
    if not vault or len(parts) < 2 or parts[0] != "keys" or not parts[1]:
        raise BadInputError(
            f"invalid Azure key URI {uri!r}: expected azurekms://VAULT.vault.azure.net/keys/NAME"
        )
    azure: tuple[str, SSlibKey] = sslib.AzureSigner.import_(vault, parts[1])
    return azure


def _need_path(
    uri: str, path: str, importer: Callable[[str], tuple[str, SSlibKey]]
) -> tuple[str, SSlibKey]:
    if not path:
        raise BadInputError(f"invalid key URI {uri!r}: it names no key")
    return importer(path)


def online_signer(uri: str, public_key: Key, pins: PinSource) -> Signer:
    """A Signer for the online key at ``uri`` whose failures are trustkit errors."""
    scheme_of(uri)
    _signer_backends.enable()
    with backend_errors(uri):
        inner = Signer.from_priv_key_uri(uri, public_key, pins)
    return OnlineSigner(uri, inner)


class OnlineSigner(Signer):
    """Wraps a securesystemslib remote signer so that a failure to sign is one trustkit error
    (python-tuf's ``Metadata.sign`` keeps it as the cause of its UnsignedMetadataError)."""

    def __init__(self, uri: str, inner: Signer) -> None:
        self.uri = uri
        self._inner = inner

    @property
    def public_key(self) -> Key:
        return self._inner.public_key

    @classmethod
    def from_priv_key_uri(
        cls, priv_key_uri: str, public_key: Key, secrets_handler: object = None
    ) -> OnlineSigner:
        raise NotImplementedError("use trustkit.keys.online.online_signer")

    def sign(self, payload: bytes) -> Signature:
        with backend_errors(self.uri):
            signature: Signature = self._inner.sign(payload)
        if signature.keyid != self.public_key.keyid:
            raise KeyStoreError(f"the key at {self.uri} signed as another key")
        try:  # a backend answering with another key's signature must not go unnoticed
            self.public_key.verify_signature(signature, payload)
        except Exception:
            raise KeyStoreError(
                f"the key at {self.uri} made a signature that does not verify with its recorded "
                "public key (a different key behind the URI?)"
            ) from None
        return signature


@contextlib.contextmanager
def backend_errors(uri: str) -> Iterator[None]:
    """Maps whatever an HSM/KMS SDK raises to a one-line trustkit error naming ``uri``."""
    try:
        yield
    except TrustkitError:
        raise
    except Exception as exc:  # the SDKs' exception trees are theirs: map by type and module
        raise _mapped(uri, exc) from None


def _mapped(uri: str, exc: Exception) -> Exception:
    name = type(exc).__name__
    detail = " ".join(str(exc).split())[:300] or name
    module = type(exc).__module__ or ""
    if isinstance(exc, ImportError) or name == "UnsupportedLibraryError":
        return KeyStoreError(
            f"cannot use the key at {uri}: a library it needs is missing ({detail})",
            hint="install trustkit's 'hsm' or 'kms' extra",
        )
    if "PinIncorrect" in name or "PinLen" in name:
        return PassphraseError(f"wrong PIN for the HSM key at {uri}")
    connection = (
        isinstance(exc, (ConnectionError, TimeoutError, OSError))
        or "Connect" in name
        or "Endpoint" in name
        or "Timeout" in name
        or "NoCredentials" in name
        or module.startswith(("botocore", "google.api_core", "azure.core", "hvac", "pkcs11"))
        or "no pkcs#11 token" in detail.lower()  # securesystemslib: no such token present
    )
    if connection:
        return UnreachableError(f"cannot reach the key at {uri}: {detail}")
    return KeyStoreError(f"cannot use the key at {uri}: {name}: {detail}")
