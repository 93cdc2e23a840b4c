"""What a notary-server's collection vouches for: tags, typed evidence and docker's inspect view,
each from a collection verified whole by ``trustkit.notary.verifier``."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from trustkit.errors import (
    MetadataNotFoundError,
)
from trustkit.model import EvidenceSource, SignerIdentity, TrustEvidence
from trustkit.model.evidence import collection_evidence
from trustkit.notary.verifier import (
    RELEASES,
    REPO_ADMIN,
    TIMESTAMP_LIMIT,
    SignedTag,
    VerifiedCollection,
    verify_collection,
)
from trustkit.refs import ImageRef
from trustkit.services import Services
from trustkit.stores.interface import MetadataReader

ROOT_FILE_LIMIT = 512 * 1024


#: collections verified in this process, reused while the server's timestamp is byte-for-byte
#: the one they were verified with and nothing in them has expired (the webhook and hook server
#: ask about the same repositories over and over): one timestamp read instead of a full walk
_VERIFIED: OrderedDict[tuple[str, str, str], tuple[bytes, VerifiedCollection]] = OrderedDict()
_VERIFIED_LOCK = threading.Lock()
_MAX_VERIFIED = 64


def verified(
    services: Services,
    gun: str,
    *,
    store: MetadataReader | None = None,
    root_file: Path | None = None,
) -> VerifiedCollection:
    """The whole collection of ``gun``, verified (raises UntrustedError subclasses)."""
    from trustkit.stores.notary import notary_store_for

    reader = store if store is not None else notary_store_for(services.store, gun) or services.store
    cache_dir = services.settings.client_cache_dir
    now = services.clock()
    if root_file is not None:
        from trustkit._fs import read_bounded

        pinned = read_bounded(root_file, ROOT_FILE_LIMIT, what="root file")
        return verify_collection(reader, gun, cache_dir=cache_dir, now=now, pinned_root=pinned)
    key = (str(cache_dir), reader.description, gun)
    try:
        timestamp = reader.read(gun, "timestamp", None, limit=TIMESTAMP_LIMIT)
    except MetadataNotFoundError:
        timestamp = b""
    with _VERIFIED_LOCK:
        found = _VERIFIED.get(key)
        if found is not None and found[0] == timestamp and now < found[1].earliest_expiry():
            _VERIFIED.move_to_end(key)
            return found[1]
    collection = verify_collection(reader, gun, cache_dir=cache_dir, now=now)
    if collection.timestamp.raw == timestamp:  # unchanged while it was verified
        with _VERIFIED_LOCK:
            _VERIFIED[key] = (timestamp, collection)
            while len(_VERIFIED) > _MAX_VERIFIED:
                _VERIFIED.popitem(last=False)
    return collection


def forget_verified() -> None:
    """Drop this process's verified collections (tests, and after a local write)."""
    with _VERIFIED_LOCK:
        _VERIFIED.clear()


def verify_tag(
    services: Services, gun: str, tag: str, *, root_file: Path | None = None
) -> SignedTag:
    return verified(services, gun, root_file=root_file).find(tag)


def evidence(
    services: Services, ref: ImageRef, *, root_file: Path | None = None, every_tag: bool = True
) -> TrustEvidence:
    """As the TUF engine's ``trust_evidence``, from a notary-server: refusals are evidence.
    The collection is verified whole either way; ``every_tag=False`` only keeps the evidence
    of a tag reference to that tag, so a verdict does not depend on the store."""
    return collection_evidence(
        EvidenceSource.NOTARY,
        ref,
        verified=lambda: verified(services, ref.gun, root_file=root_file),
        find=lambda collection, tag: collection.find(tag),
        tags_at=lambda collection, digest: collection.tags_at(digest),
        signers_of=lambda _, target: (
            SignerIdentity(name, tuple(keyids), role) for name, role, keyids in target.signer_roles
        ),
        expires_of=lambda _, target: target.expires,
        every_tag=every_tag,
    )


def inspect(services: Services, ref: ImageRef) -> dict[str, Any]:
    """``docker trust inspect`` of a notary-server collection, as docker computes it: the
    released tags (in targets or targets/releases), each signed by the named signers whose own
    role records the same digest ("Repo Admin" when none does); signer keys by notary's
    canonical ids; root and repository keys as root.json lists them."""
    from trustkit.notary.codec import canonical_key_id, targets_of

    collection = verified(services, ref.gun)
    released: dict[tuple[str, str], list[str]] = {}
    named: dict[str, dict[str, str]] = {}
    for role, signed in collection.targets.items():
        entries = {t: e.hashes.get("sha256", b"").hex() for t, e in targets_of(signed).items()}
        if role in ("targets", RELEASES):
            for tag, digest in entries.items():
                if ref.tag is None or tag == ref.tag:
                    released.setdefault((tag, digest), [])
        else:
            named[role] = entries
    for (tag, digest), signers in released.items():
        signers.extend(
            role.rpartition("/")[2] for role, entries in named.items() if entries.get(tag) == digest
        )
    signers_of = {
        name.rpartition("/")[2]: [
            {"ID": canonical_key_id(keys[k]) if k in keys else k} for k in role.keyids
        ]
        for name, (role, keys) in sorted(collection.delegations.items())
        if name != RELEASES
    }
    return {
        "Name": ref.repository,
        "SignedTags": [
            {"SignedTag": tag, "Digest": digest, "Signers": sorted(names) or [REPO_ADMIN]}
            for (tag, digest), names in sorted(released.items())
        ],
        "Signers": [{"Name": n, "Keys": keys} for n, keys in sorted(signers_of.items())],
        "AdministrativeKeys": [
            {"Name": "Root", "Keys": [{"ID": k} for k in collection.roles["root"].keyids]},
            {"Name": "Repository", "Keys": [{"ID": k} for k in collection.roles["targets"].keyids]},
        ],
        # when each role's metadata expires (UTC), as for TUF collections
        "Expires": {
            role: signed.expires.strftime("%Y-%m-%dT%H:%M:%SZ")
            for role, signed in [
                ("root", collection.root),
                ("snapshot", collection.snapshot),
                ("timestamp", collection.timestamp),
                *sorted(collection.targets.items()),
            ]
        },
    }
