"""Descriptors, manifests and media types: the shapes the registry client and OCI layouts share.

Pure functions over bytes. Manifests are untrusted until their bytes hash to the digest we expect,
so parsing here is defensive: bounded sizes, checked types, clear errors.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from trustkit._json import load_json_object
from trustkit.errors import BadInputError, DigestMismatchError, InputTooLargeError
from trustkit.refs import validate_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
OCI_EMPTY_JSON = "application/vnd.oci.empty.v1+json"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
MANIFEST_TYPES = INDEX_TYPES | IMAGE_MANIFEST_TYPES
#: what we send in Accept: every manifest kind we can verify
MANIFEST_ACCEPT = ", ".join(sorted(MANIFEST_TYPES))

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
MAX_CHILDREN = 1024  # layers per manifest, manifests per index: far above real images


class BlobSink(Protocol):
    """Where a fetched blob's bytes go as they arrive (a file, a spool): written in order, and
    rewound (``seek(0)`` then ``truncate()``) when a fetch starts again from another source."""

    def write(self, data: bytes, /) -> object: ...
    def seek(self, offset: int, /) -> object: ...
    def truncate(self) -> object: ...


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(data: bytes, expected: str, *, what: str) -> None:
    """Hash ``data`` ourselves; a server's Docker-Content-Digest is never trusted."""
    actual = sha256_digest(data)
    if actual != expected:
        raise DigestMismatchError(
            f"{what} does not match its digest: expected {expected}, got {actual}",
            hint="the source served other bytes than the ones trusted; do not use it",
        )


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a blob or manifest is, by digest and size."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    platform: dict[str, Any] | None = None
    artifact_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Descriptor:
        if not isinstance(data, dict):
            raise BadInputError("malformed descriptor: expected a JSON object")
        media_type = data.get("mediaType")
        digest = data.get("digest")
        size = data.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise BadInputError("malformed descriptor: mediaType missing")
        if not isinstance(digest, str):
            raise BadInputError("malformed descriptor: digest missing")
        validate_digest(digest)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadInputError(f"malformed descriptor {digest}: size must be a positive integer")
        annotations = data.get("annotations")
        if annotations is not None and not (
            isinstance(annotations, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items())
        ):
            raise BadInputError(f"malformed descriptor {digest}: annotations must be strings")
        platform = data.get("platform")
        if platform is not None and not isinstance(platform, dict):
            raise BadInputError(f"malformed descriptor {digest}: platform must be an object")
        artifact_type = data.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise BadInputError(f"malformed descriptor {digest}: artifactType must be a string")
        return cls(media_type, digest, size, annotations or None, platform, artifact_type)


@dataclass(frozen=True)
class ManifestBlob:
    """A manifest's exact bytes, its media type and the digest computed from the bytes."""

    data: bytes
    media_type: str
    digest: str = field(default="")

    def __post_init__(self) -> None:
        computed = sha256_digest(self.data)
        if self.digest and self.digest != computed:
            raise DigestMismatchError(
                f"manifest does not match its digest: expected {self.digest}, got {computed}"
            )
        object.__setattr__(self, "digest", computed)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def json(self) -> dict[str, Any]:
        return parse_manifest_json(self.data)

    def children(self) -> list[Descriptor]:
        """The manifests an index lists (empty for an image manifest)."""
        if not self.is_index:
            return []
        return _descriptors(self.json().get("manifests"), "manifests")

    def blobs(self) -> list[Descriptor]:
        """Config, layers and subject-free blobs an image manifest references."""
        if self.is_index:
            return []
        doc = self.json()
        config = doc.get("config")
        if config is None:
            raise BadInputError(f"manifest {self.digest} has no config")
        return [Descriptor.from_dict(config), *_descriptors(doc.get("layers"), "layers")]

    def subject(self) -> Descriptor | None:
        subject = self.json().get("subject")
        return Descriptor.from_dict(subject) if subject is not None else None


def _descriptors(value: Any, name: str) -> list[Descriptor]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadInputError(f"malformed manifest: {name} must be a list")
    if len(value) > MAX_CHILDREN:
        raise InputTooLargeError(f"manifest lists {len(value)} {name}; the limit is {MAX_CHILDREN}")
    return [Descriptor.from_dict(item) for item in value]


def parse_manifest_json(data: bytes) -> dict[str, Any]:
    return load_json_object(data, what="manifest", limit=MAX_MANIFEST_SIZE)


def detect_media_type(data: bytes, declared: str | None) -> str:
    """The manifest's media type: its own ``mediaType`` field wins over a Content-Type header.

    A manifest whose body and header disagree on the kind (index vs image) is refused, so a
    registry cannot make us read an index as an image or the other way round.
    """
    doc = parse_manifest_json(data)
    field_type = doc.get("mediaType")
    declared = (declared or "").split(";")[0].strip() or None
    if field_type is not None and not isinstance(field_type, str):
        raise BadInputError("manifest mediaType must be a string")
    if doc.get("schemaVersion") == 1 or (declared in DOCKER_SCHEMA1):
        raise BadInputError(
            "Docker schema 1 manifests are not supported (they cannot be verified by digest)",
            hint="re-push the image with a current client",
        )
    if field_type is None:
        if declared in MANIFEST_TYPES:
            field_type = declared
        elif "manifests" in doc:
            field_type = OCI_INDEX
        else:
            field_type = OCI_MANIFEST
    if field_type not in MANIFEST_TYPES:
        raise BadInputError(f"unsupported manifest media type {field_type!r}")
    if declared in MANIFEST_TYPES and (declared in INDEX_TYPES) != (field_type in INDEX_TYPES):
        raise BadInputError(
            f"manifest body says {field_type} but it was served as {declared}; refusing"
        )
    return field_type
