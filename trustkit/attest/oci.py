"""Attestations in a registry or OCI layout, where cosign looks for them.

Two places, both written on attach and both read on fetch:

* cosign's tag scheme: tag ``sha256-<hex>.att`` holds an image manifest with one layer per DSSE
  envelope (``application/vnd.dsse.envelope.v1+json``, annotations
  ``dev.cosignproject.cosign/signature: ""`` and ``predicateType``) and a config listing the layers
  as diff_ids, as cosign 2.x writes it. ``cosign verify-attestation`` reads this.
* OCI 1.1 referrers: one manifest per attestation with ``subject`` = the image and
  ``artifactType`` = the DSSE media type. Registries with the referrers API index it themselves;
  for the others (Debian's docker-registry 2.8, OCI layouts) the ``sha256-<hex>`` tag holds the
  fallback index the OCI distribution spec describes.

Adding an attestation reads the current ``.att`` manifest and fallback index and writes them back
with the new entry appended, so nothing already attached is lost. (Two writers racing on the same
image can still lose one update on a registry: there is no compare-and-swap for tags.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from trustkit.attest.dsse import ENVELOPE_MEDIA_TYPE, MAX_ENVELOPE_BYTES
from trustkit.errors import AttestationError, BadInputError, RegistryError
from trustkit.registry.artifacts import (
    add_to_fallback_index,
    get_optional_manifest,
    layered_manifest,
    referrer_manifest,
    upload,
)
from trustkit.registry.client import NotFoundError
from trustkit.registry.location import ImageLocation
from trustkit.registry.model import (
    OCI_MANIFEST,
    Descriptor,
    ManifestBlob,
    sha256_digest,
)

COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_ANNOTATION = "predicateType"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
ZERO_TIME = "0001-01-01T00:00:00Z"  # what cosign writes into its config's created fields
MAX_ATTESTATIONS = 256  # layers per .att manifest / entries per fallback index we accept


def att_tag(image_digest: str) -> str:
    """cosign's attestation tag: ``sha256:<hex>`` -> ``sha256-<hex>.att``."""
    return _digest_tag(image_digest) + ".att"


def referrers_tag(image_digest: str) -> str:
    """The OCI referrers tag-schema fallback: ``sha256-<hex>``."""
    return _digest_tag(image_digest)


def _digest_tag(digest: str) -> str:
    algorithm, _, hex_digest = digest.partition(":")
    if algorithm != "sha256" or len(hex_digest) != 64:
        raise BadInputError(f"not a sha256 digest: {digest!r}")
    return f"sha256-{hex_digest}"


@dataclass(frozen=True)
class Attached:
    envelope_digest: str
    att_tag: str
    att_manifest_digest: str
    referrer_digest: str
    #: the fallback index tag, when the location has no referrers API
    fallback_tag: str | None


def _existing_layers(blob: ManifestBlob | None, where: str) -> list[Descriptor]:
    if blob is None:
        return []
    try:
        layers = blob.blobs()[1:]  # config first, then the envelopes
    except BadInputError as exc:
        raise RegistryError(f"{where} is malformed; refusing to overwrite it: {exc}") from None
    if len(layers) >= MAX_ATTESTATIONS:
        raise RegistryError(f"{where} already holds {len(layers)} attestations")
    return layers


def attach_attestation(
    location: ImageLocation,
    subject: Descriptor,
    envelope: bytes,
    *,
    predicate_type: str,
    created: str,
) -> Attached:
    """Attach a DSSE envelope to the image ``subject`` (its manifest descriptor) in ``location``."""
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise AttestationError(f"attestation of {len(envelope)} bytes is too large to attach")
    layer = upload(location, envelope, ENVELOPE_MEDIA_TYPE)
    layer = Descriptor(
        ENVELOPE_MEDIA_TYPE,
        layer.digest,
        layer.size,
        {COSIGN_SIGNATURE_ANNOTATION: "", PREDICATE_ANNOTATION: predicate_type},
    )

    # 1. cosign's .att tag: read, append, write back.
    tag = att_tag(subject.digest)
    layers = _existing_layers(get_optional_manifest(location, tag), f"attestation manifest {tag}")
    if all(existing.digest != layer.digest for existing in layers):
        layers.append(layer)
    att_digest = location.put_manifest(tag, layered_manifest(location, layers), OCI_MANIFEST)

    # 2. OCI 1.1 referrer manifest about the image.
    referrer = referrer_manifest(
        location,
        ENVELOPE_MEDIA_TYPE,
        layer,
        subject,
        {PREDICATE_ANNOTATION: predicate_type, "org.opencontainers.image.created": created},
    )
    supported = location.referrers(subject.digest) is not None
    referrer_digest = location.put_manifest(
        sha256_digest(referrer), referrer, OCI_MANIFEST, top_level=False
    )
    fallback = None
    if not supported:
        fallback = referrers_tag(subject.digest)
        add_to_fallback_index(
            location,
            fallback,
            Descriptor(
                OCI_MANIFEST,
                referrer_digest,
                len(referrer),
                {PREDICATE_ANNOTATION: predicate_type, "org.opencontainers.image.created": created},
                artifact_type=ENVELOPE_MEDIA_TYPE,
            ),
        )
    return Attached(layer.digest, tag, att_digest, referrer_digest, fallback)


def is_attached(location: ImageLocation, subject_digest: str, attached: Attached) -> bool:
    """Whether both places still list this attestation (a racing writer may have replaced the
    ``.att`` manifest or the fallback index with a version that lacks it)."""
    att = get_optional_manifest(location, attached.att_tag)
    if att is None or att.is_index:
        return False
    if all(layer.digest != attached.envelope_digest for layer in att.blobs()[1:]):
        return False
    referrers = location.referrers(subject_digest)
    if referrers is None:
        index = get_optional_manifest(location, referrers_tag(subject_digest))
        referrers = index.children() if index is not None and index.is_index else []
    return any(desc.digest == attached.referrer_digest for desc in referrers)


def attestation_layers(location: ImageLocation, image_digest: str) -> list[Descriptor]:
    """Every DSSE envelope layer attached to ``image_digest``, without duplicates, unread.

    Reads the ``.att`` tag, then referrers (the API or the ``sha256-<hex>`` fallback index);
    only manifests whose subject is this image count. At most MAX_ATTESTATIONS.
    """
    found: dict[str, Descriptor] = {}

    def take(layers: list[Descriptor]) -> None:
        for layer in layers[:MAX_ATTESTATIONS]:
            fresh = layer.media_type == ENVELOPE_MEDIA_TYPE and layer.digest not in found
            if fresh and len(found) < MAX_ATTESTATIONS:
                found[layer.digest] = layer

    att = get_optional_manifest(location, att_tag(image_digest))
    if att is not None and not att.is_index:
        take(att.blobs()[1:])

    referrers = location.referrers(image_digest)
    if referrers is None:
        index = get_optional_manifest(location, referrers_tag(image_digest))
        referrers = index.children() if index is not None and index.is_index else []
    for desc in referrers[:MAX_ATTESTATIONS]:
        if desc.artifact_type not in (ENVELOPE_MEDIA_TYPE, None):
            continue
        try:
            manifest = location.get_manifest(desc.digest, expected_digest=desc.digest)
        except NotFoundError:
            continue  # listed but gone: nothing to verify
        if manifest.is_index:
            continue
        subject = manifest.subject()
        if subject is None or subject.digest != image_digest:
            continue  # a fallback index is just a tag; only manifests about this image count
        take(manifest.blobs()[1:])
    return list(found.values())


@dataclass(frozen=True)
class Skipped:
    """An attestation layer not downloaded, and why (over a bound)."""

    digest: str
    reason: str


def iter_attestations(
    location: ImageLocation,
    layers: list[Descriptor],
    *,
    budget: int,
    per_envelope: int = MAX_ENVELOPE_BYTES,
) -> Iterator[tuple[Descriptor, bytes] | Skipped]:
    """Download the envelopes one at a time, within ``budget`` bytes for the image together.

    The caller verifies each and drops its bytes before the next is fetched, so memory holds one
    envelope, not all of them. A layer whose declared size is over ``per_envelope`` or over what
    is left of ``budget`` is skipped unread (the registry's stream is cut at the declared size,
    so a lying size cannot overrun). Smaller layers are tried first: a few huge fakes cannot
    crowd out the genuine attestations.
    """
    left = budget
    for layer in sorted(layers, key=lambda d: (d.size, d.digest)):
        if layer.size > per_envelope:
            yield Skipped(layer.digest, f"{layer.size} bytes, over the {per_envelope}-byte cap")
            continue
        if layer.size > left:
            yield Skipped(
                layer.digest,
                f"{layer.size} bytes, over what is left ({left}) of the {budget}-byte "
                "budget for this image's attestations",
            )
            continue
        data = location.get_blob(layer.digest, max_size=layer.size)
        left -= len(data)
        yield layer, data


def fetch_attestations(location: ImageLocation, image_digest: str) -> list[bytes]:
    """Every DSSE envelope attached to ``image_digest`` (unverified), without duplicates.

    Holds them all in memory: for tests and tools. Verifiers use ``attestation_layers`` and
    ``iter_attestations`` (one envelope at a time, within a byte budget).
    """
    layers = attestation_layers(location, image_digest)
    return [
        item[1]
        for item in iter_attestations(location, layers, budget=MAX_ENVELOPE_BYTES * len(layers))
        if not isinstance(item, Skipped)
    ]
