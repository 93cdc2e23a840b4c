"""OCI registry client (pooled per host), OCI image layouts and image copy.

Knows nothing about trust, policy or verdicts: the push and pull flows that sign and verify are
composed in ``trustkit.pipeline.flows``.
"""

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

# Both names of the location interface: ImageSource and ImageDest are the same protocol.
ImageSource = ImageLocation
ImageDest = ImageLocation

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
