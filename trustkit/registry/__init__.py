"""OCI registry client (pooled per host), OCI image layouts and image copy.

Knows nothing about trust, policy or verdicts: the push and pull flows that sign and verify are
composed in ``trustkit.pipeline.flows``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustkit._lazy import lazy_exports

# Imported on first use (PEP 562): httpx (and rich through it) must not load for commands that
# only need a name from here, such as short-name resolution of an image reference.
if TYPE_CHECKING:
    from trustkit.errors import NotFoundError, TLSVerificationError
    from trustkit.registry.client import RegistryClient
    from trustkit.registry.config import (
        RegistriesConfig,
        RegistryConfig,
        TLSConfig,
        load_registries_config,
    )
    from trustkit.registry.copy import copy_image, fetch_image, resolve_digest
    from trustkit.registry.credentials import (
        Credentials,
        erase_credentials,
        lookup_credentials,
        store_credentials,
    )
    from trustkit.registry.layout import OCILayout
    from trustkit.registry.location import (
        ImageLocation,
        LayoutLocation,
        RegistryLocation,
        open_image_location,
    )
    from trustkit.registry.model import (
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
        MAX_MANIFEST_SIZE,
        OCI_INDEX,
        OCI_MANIFEST,
        Descriptor,
        ManifestBlob,
        sha256_digest,
    )

    ImageSource = ImageLocation
    ImageDest = ImageLocation

_MODULE_OF: dict[str, str] = {
    "NotFoundError": "trustkit.errors",
    "TLSVerificationError": "trustkit.errors",
    "RegistryClient": "trustkit.registry.client",
    "RegistriesConfig": "trustkit.registry.config",
    "RegistryConfig": "trustkit.registry.config",
    "TLSConfig": "trustkit.registry.config",
    "load_registries_config": "trustkit.registry.config",
    "copy_image": "trustkit.registry.copy",
    "fetch_image": "trustkit.registry.copy",
    "resolve_digest": "trustkit.registry.copy",
    "Credentials": "trustkit.registry.credentials",
    "erase_credentials": "trustkit.registry.credentials",
    "lookup_credentials": "trustkit.registry.credentials",
    "store_credentials": "trustkit.registry.credentials",
    "OCILayout": "trustkit.registry.layout",
    "ImageLocation": "trustkit.registry.location",
    "LayoutLocation": "trustkit.registry.location",
    "RegistryLocation": "trustkit.registry.location",
    "open_image_location": "trustkit.registry.location",
    "DOCKER_MANIFEST": "trustkit.registry.model",
    "DOCKER_MANIFEST_LIST": "trustkit.registry.model",
    "MAX_MANIFEST_SIZE": "trustkit.registry.model",
    "OCI_INDEX": "trustkit.registry.model",
    "OCI_MANIFEST": "trustkit.registry.model",
    "Descriptor": "trustkit.registry.model",
    "ManifestBlob": "trustkit.registry.model",
    "sha256_digest": "trustkit.registry.model",
}
# Both names of the location interface: ImageSource and ImageDest are the same protocol.
_ALIASES = {"ImageSource": "ImageLocation", "ImageDest": "ImageLocation"}


__getattr__ = lazy_exports(__name__, _MODULE_OF, _ALIASES)


__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "MAX_MANIFEST_SIZE",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Credentials",
    "Descriptor",
    "ImageDest",
    "ImageLocation",
    "ImageSource",
    "LayoutLocation",
    "ManifestBlob",
    "NotFoundError",
    "OCILayout",
    "RegistriesConfig",
    "RegistryClient",
    "RegistryConfig",
    "RegistryLocation",
    "TLSConfig",
    "TLSVerificationError",
    "copy_image",
    "erase_credentials",
    "fetch_image",
    "load_registries_config",
    "lookup_credentials",
    "open_image_location",
    "resolve_digest",
    "sha256_digest",
    "store_credentials",
]
