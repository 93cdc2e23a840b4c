"""cosign key-based signatures: written on push, read from any tool (cosign, skopeo, trustkit).

The format, as cosign 2.5 and skopeo 1.18 both accept it (``../shared/recipes/cosign-interop.sh``):

* tag ``sha256-<hex>.sig`` in the image's repository holds an OCI image manifest with one layer
  per signature, media type ``application/vnd.dev.cosign.simplesigning.v1+json``; the layer's
  blob is the simple-signing payload (its exact bytes are what is signed) and its annotation
  ``dev.cosignproject.cosign/signature`` the base64 signature (DER ECDSA-P256-SHA256);
* the payload's ``critical`` holds exactly ``identity.docker-reference``,
  ``image.docker-manifest-digest`` and ``type`` (skopeo refuses anything else). The identity we
  write is ``host/repo:tag``, which skopeo's ``matchRepoDigestOrExact`` needs (cosign ignores it);
* on a registry with the OCI 1.1 referrers API, the same signature is also written as a referrer
  (``artifactType`` ``application/vnd.dev.cosign.artifact.sig.v1+json``), as cosign's
  ``--registry-referrers-mode=oci-1-1`` does.

Verification reads the ``.sig`` tag and the referrers (API or tag fallback index) and counts a
signature when its payload names the digest and it verifies under a trusted public key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization

from trustkit import refs
from trustkit.errors import (
    BadInputError,
    NotFoundError,
    RegistryError,
    TrustkitError,
)
from trustkit.registry.artifacts import (
    add_to_fallback_index,
    get_optional_manifest,
    layered_manifest,
    referrer_manifest,
    upload,
)
from trustkit.registry.model import (
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    ManifestBlob,
    sha256_digest,
)
from trustkit.sources.cosign_keys import (  # noqa: F401 - re-exported for callers
    BUNDLE_MEDIA_PREFIX,
    CERTIFICATE_ANNOTATION,
    COSIGN_SCHEMES,
    COSIGN_TYPE,
    MAX_BUNDLE,
    MAX_KEY_FILE,
    MAX_PAYLOAD,
    MAX_SIGNATURES,
    OCI_CONFIG,
    SIG_ARTIFACT,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
    ZERO_TIME,
    CosignKey,
    CosignKeySource,
    _check_payload,
    cosign_key_from_pem,
    identity_of,
    load_cosign_key,
    signature_tag,
    simple_signing_payload,
    verify_with_keys,
)
from trustkit.sources.model import BundleArtifact, SignatureMaterial, SimpleSigningLayer

if TYPE_CHECKING:
    from trustkit.registry.location import ImageLocation
    from trustkit.services import Services


@dataclass(frozen=True)
class WrittenSignature:
    digest: str  # the signed manifest
    keyid: str
    sig_tag: str
    referrer: str | None  # the referrer manifest's digest, when the registry has the API


@dataclass
class CosignWrite:
    """What writing cosign signatures for one push did."""

    written: list[WrittenSignature] = field(default_factory=list)
    #: one line per key that cannot make a cosign signature (and so was skipped)
    notices: list[str] = field(default_factory=list)


def _sig_layers(blob: ManifestBlob | None, where: str) -> list[Descriptor]:
    if blob is None or blob.is_index:
        return []
    try:
        layers = blob.blobs()[1:]
    except BadInputError as exc:
        raise RegistryError(f"{where} is malformed; refusing to overwrite it: {exc}") from None
    if len(layers) >= MAX_SIGNATURES:
        raise RegistryError(f"{where} already holds {len(layers)} signatures")
    return layers


def _payload_of(location: ImageLocation, layer: Descriptor) -> dict[str, Any] | None:
    if layer.media_type != SIMPLE_SIGNING or layer.size > MAX_PAYLOAD:
        return None
    try:
        doc = json.loads(location.get_blob(layer.digest, max_size=MAX_PAYLOAD))
    except (NotFoundError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _identity_in(doc: dict[str, Any] | None) -> str | None:
    try:
        identity = doc["critical"]["identity"]["docker-reference"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    return identity if isinstance(identity, str) else None


def attach_signature(
    location: ImageLocation,
    subject: Descriptor,
    payload: bytes,
    signature: bytes,
    *,
    key: CosignKey,
) -> tuple[str, str | None]:
    """Add one signature of ``subject`` to its ``.sig`` tag (and a referrer where the registry
    has the API). An older signature by the same key for the same identity is replaced, so
    pushing a tag again does not pile up layers. Returns (``.sig`` manifest digest, referrer)."""
    layer = upload(location, payload, SIMPLE_SIGNING)
    layer = Descriptor(
        SIMPLE_SIGNING,
        layer.digest,
        layer.size,
        {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode("ascii")},
    )
    tag = signature_tag(subject.digest)
    kept: list[Descriptor] = []
    for existing in _sig_layers(get_optional_manifest(location, tag), f"signature manifest {tag}"):
        if existing.digest == layer.digest and _signed_by(existing, payload, key):
            continue  # our own earlier signature of these exact bytes: replaced
        kept.append(existing)
    kept.append(layer)
    sig_digest = location.put_manifest(tag, layered_manifest(location, kept), OCI_MANIFEST)

    referrer_digest = None
    if location.referrers(subject.digest) is not None:  # the registry has the referrers API
        referrer = referrer_manifest(location, SIG_ARTIFACT, layer, subject)
        referrer_digest = location.put_manifest(
            sha256_digest(referrer), referrer, OCI_MANIFEST, top_level=False
        )
    return sig_digest, referrer_digest


def _signed_by(layer: Descriptor, payload: bytes, key: CosignKey) -> bool:
    encoded = (layer.annotations or {}).get(SIGNATURE_ANNOTATION, "")
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return False
    return key.verifies(payload, signature)


def _signed_manifests(location: ImageLocation, descriptor: Descriptor) -> list[Descriptor]:
    """The pushed manifest, and for an index every platform manifest it lists (skopeo verifies
    each instance on its own, so each needs its own signature)."""
    top = location.get_manifest(descriptor.digest, expected_digest=descriptor.digest)
    out = [top.descriptor]  # the media type as the registry holds it
    if top.is_index:
        for child in top.children()[:MAX_SIGNATURES]:
            if child.media_type in (OCI_INDEX,) or child.artifact_type is not None:
                continue
            out.append(child)
    return out


def signing_keyids(services: Services, ref: refs.ImageRef) -> list[str]:
    """The keys held here that sign ``ref``'s tag in its collection (every role we sign it
    into, named signer or not): the same keys make its cosign signatures."""
    from trustkit.collections.engine import signable_roles
    from trustkit.collections.repository import Collection, local_keyids

    collection = Collection.load(services.store, ref.gun)
    if collection is None:
        return []
    out: list[str] = []
    for role in signable_roles(collection, services.keys, ref.tag):
        out.extend(sorted(local_keyids(services.keys, collection.keyids_of(role))))
    return list(dict.fromkeys(out))


def planned_layers(
    services: Services, ref: refs.ImageRef, digest: str
) -> tuple[SimpleSigningLayer, ...]:
    """The cosign signatures ``sign_pushed`` will write for ``digest``, made in memory now so a
    policy judges the push the way it will judge the pull (nothing is written here)."""
    identity = identity_of(ref)
    payload = simple_signing_payload(identity, digest)
    layers = []
    for keyid in signing_keyids(services, ref):
        if services.keys.get(keyid).scheme not in COSIGN_SCHEMES:
            continue
        signature = bytes.fromhex(services.keys.signer(keyid).sign(payload).signature)
        layers.append(SimpleSigningLayer(payload, signature, "this push (about to be written)"))
    return tuple(layers)


def sign_pushed(
    services: Services, ref: refs.ImageRef, descriptor: Descriptor, keyids: Iterable[str]
) -> CosignWrite:
    """Write a cosign signature of the pushed manifest (and of each platform manifest of an
    index) for every key in ``keyids`` that can make one; other key types get a notice."""
    from trustkit.keys.pem import public_key_pem
    from trustkit.registry.location import open_registry_location

    identity = identity_of(ref)
    result = CosignWrite()
    usable: list[tuple[str, CosignKey]] = []
    for keyid in dict.fromkeys(keyids):
        record = services.keys.get(keyid)
        if record.scheme not in COSIGN_SCHEMES:
            result.notices.append(
                f"key {keyid[:12]} ({record.scheme}) cannot make a cosign signature that cosign "
                "and skopeo verify (ECDSA P-256 only): skipped"
            )
            continue
        public = serialization.load_pem_public_key(public_key_pem(record.public_key))
        name = record.name or keyid[:12]
        usable.append((keyid, CosignKey(name=name, keyid=keyid, public=public)))
    if not usable:
        return result
    location = open_registry_location(services.registries, ref)
    try:
        for subject in _signed_manifests(location, descriptor):
            payload = simple_signing_payload(identity, subject.digest)
            for keyid, key in usable:
                signed = services.keys.signer(keyid).sign(payload)
                signature = bytes.fromhex(signed.signature)
                if not key.verifies(payload, signature):  # never publish a signature we can't
                    raise TrustkitError(f"key {keyid[:12]} made a cosign signature that fails")
                _, referrer = attach_signature(location, subject, payload, signature, key=key)
                result.written.append(
                    WrittenSignature(subject.digest, keyid, signature_tag(subject.digest), referrer)
                )
    finally:
        location.close()
    return result


def revocation_digests(services: Services, ref: refs.ImageRef) -> list[str]:
    """The digests whose cosign signatures ``trust revoke IMAGE:TAG`` must remove, looked up
    before the collection forgets them: the tag's signed digest and what the registry's tag
    names now (when they differ, both may carry a signature with the tag's identity)."""
    from trustkit.collections import verify_tag
    from trustkit.registry.location import open_registry_location

    digests: list[str] = []
    # not signed in the collection: the registry's tag may still carry cosign signatures
    with contextlib.suppress(TrustkitError):
        digests.append(verify_tag(services, ref).digest)
    try:
        location = open_registry_location(services.registries, ref)
        try:
            digests.append(location.get_manifest(ref.tag).digest)
        finally:
            location.close()
    except TrustkitError:
        pass
    return list(dict.fromkeys(digests))


def remove_signatures(services: Services, ref: refs.ImageRef, digest: str) -> int:
    """Drop the cosign signatures whose identity is ``ref``'s ``host/repo:tag`` from the ``.sig``
    tags of ``digest`` and, for an index, of its platform manifests (``trust revoke``).
    Signatures of other tags and by other tools' identities stay. Returns how many went."""
    from trustkit.registry.location import open_registry_location

    identity = identity_of(ref)
    location = open_registry_location(services.registries, ref)
    removed = 0
    try:
        try:
            top = location.get_manifest(digest, expected_digest=digest)
            digests = [digest, *(c.digest for c in top.children()[:MAX_SIGNATURES])]
        except NotFoundError:
            digests = [digest]
        for each in digests:
            tag = signature_tag(each)
            blob = get_optional_manifest(location, tag)
            layers = _sig_layers(blob, f"signature manifest {tag}")
            kept = [
                layer for layer in layers if _identity_in(_payload_of(location, layer)) != identity
            ]
            if len(kept) == len(layers):
                continue
            removed += len(layers) - len(kept)
            # no DELETE needed: a .sig manifest without layers verifies nothing for anyone
            location.put_manifest(tag, layered_manifest(location, kept), OCI_MANIFEST)
    finally:
        location.close()
    return removed


# --- reading --------------------------------------------------------------------------------
def _read_layers(
    location: ImageLocation,
    layers: Sequence[Descriptor],
    where: str,
    out_layers: list[SimpleSigningLayer],
    out_bundles: list[BundleArtifact],
    problems: list[str],
) -> None:
    for layer in layers[:MAX_SIGNATURES]:
        annotations = layer.annotations or {}
        if layer.media_type.startswith(BUNDLE_MEDIA_PREFIX):
            if layer.size > MAX_BUNDLE:
                problems.append(f"{where}: a bundle of {layer.size} bytes is too large")
                continue
            try:
                data = location.get_blob(layer.digest, max_size=MAX_BUNDLE)
            except NotFoundError:
                problems.append(f"{where}: bundle blob {layer.digest} is missing")
                continue
            out_bundles.append(BundleArtifact(data, where))
            continue
        if layer.media_type != SIMPLE_SIGNING:
            continue
        if layer.size > MAX_PAYLOAD:
            problems.append(f"{where}: a payload of {layer.size} bytes is too large")
            continue
        try:
            signature = base64.b64decode(annotations.get(SIGNATURE_ANNOTATION, ""), validate=True)
            payload = location.get_blob(layer.digest, max_size=MAX_PAYLOAD)
        except (binascii.Error, ValueError):
            problems.append(f"{where}: a signature annotation is not base64")
            continue
        except NotFoundError:
            problems.append(f"{where}: payload blob {layer.digest} is missing")
            continue
        cert = annotations.get(CERTIFICATE_ANNOTATION)
        out_layers.append(
            SimpleSigningLayer(
                payload=payload,
                signature=signature,
                found_in=where,
                certificate=cert.encode("utf-8") if cert else None,
            )
        )


def read_material(location: ImageLocation, digest: str) -> SignatureMaterial:
    """Every signature artifact attached to ``digest``, unverified: the ``.sig`` tag, the
    ``.att`` tag's bundles, and the referrers (the API, or the ``sha256-<hex>`` fallback index)
    whose artifact type is a cosign signature or a Sigstore bundle."""
    layers: list[SimpleSigningLayer] = []
    bundles: list[BundleArtifact] = []
    problems: list[str] = []
    hex_digest = signature_tag(digest)[: -len(".sig")]
    for suffix in (".sig", ".att"):
        tag = hex_digest + suffix
        try:
            blob = get_optional_manifest(location, tag)
            if blob is not None and not blob.is_index:
                _read_layers(location, blob.blobs()[1:], f"tag {tag}", layers, bundles, problems)
        except (BadInputError, RegistryError) as exc:
            problems.append(f"tag {tag} is unreadable: {exc}")
    try:
        referrers = location.referrers(digest)
        if referrers is None:
            index = get_optional_manifest(location, hex_digest)
            referrers = index.children() if index is not None and index.is_index else []
    except (BadInputError, RegistryError) as exc:
        problems.append(f"the referrers of {digest} are unreadable: {exc}")
        referrers = []
    for desc in referrers[:MAX_SIGNATURES]:
        kind = desc.artifact_type or ""
        if kind != SIG_ARTIFACT and not kind.startswith(BUNDLE_MEDIA_PREFIX) and kind:
            continue
        try:
            manifest = location.get_manifest(desc.digest, expected_digest=desc.digest)
            if manifest.is_index:
                continue
            subject = manifest.subject()
            if subject is None or subject.digest != digest:
                continue  # only manifests about this image count
            where = f"referrer {desc.digest}"
            _read_layers(location, manifest.blobs()[1:], where, layers, bundles, problems)
        except NotFoundError:
            continue
        except (BadInputError, RegistryError) as exc:
            problems.append(f"referrer {desc.digest} is unreadable: {exc}")
    return SignatureMaterial(digest, tuple(layers), tuple(bundles), tuple(problems))


def fetch_material(services: Services, ref: refs.ImageRef, digest: str) -> SignatureMaterial:
    """``read_material`` in ``ref``'s repository; an unreachable registry is a problem noted in
    the material (the sources then refuse: fail closed), not an exception."""
    from trustkit.registry.location import open_registry_location

    try:
        location = open_registry_location(services.registries, ref)
    except TrustkitError as exc:
        return SignatureMaterial.empty(digest, f"signatures unreadable: {exc}")
    try:
        return read_material(location, digest)
    except TrustkitError as exc:
        return SignatureMaterial.empty(digest, f"signatures unreadable: {exc}")
    finally:
        location.close()


# --- attaching ------------------------------------------------------------------------------
def attach_bundle(location: ImageLocation, subject: Descriptor, bundle: bytes) -> str:
    """Attach a Sigstore bundle to ``subject`` as an OCI 1.1 referrer (artifactType the bundle
    media type, as cosign's ``--new-bundle-format`` does), adding it to the ``sha256-<hex>``
    fallback index where the registry has no referrers API. Returns the referrer's digest."""
    from trustkit.sources.sigstore import BUNDLE_V03

    media = BUNDLE_V03  # the OCI spelling, whatever version the bundle itself names
    layer = upload(location, bundle, media)
    referrer = referrer_manifest(location, media, layer, subject)
    supported = location.referrers(subject.digest) is not None
    digest = location.put_manifest(sha256_digest(referrer), referrer, OCI_MANIFEST, top_level=False)
    if not supported:
        tag = signature_tag(subject.digest)[: -len(".sig")]  # the sha256-<hex> fallback index
        entry = Descriptor(OCI_MANIFEST, digest, len(referrer), artifact_type=media)
        add_to_fallback_index(location, tag, entry)
    return digest
