"""What callers do with collections: sign, revoke, add/remove signers, rotate keys, verify.

Every write runs under the store's writer lock: load the published set (verified), change it in
memory, then publish one consistent set of new versions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustkit.collections._tuf import Delegations, TargetFile
from trustkit.collections.model import (
    RELEASES,
    REPO_ADMIN,
    ROOT,
    SIGNER_PREFIX,
    SNAPSHOT,
    TARGETS,
    TIMESTAMP,
    TOP_LEVEL_ROLES,
    Expiries,
    TrustedTarget,
    check_digest,
    check_size,
    expiries_for,
    signer_name_of,
    signer_role,
)
from trustkit.collections.repository import (
    Collection,
    add_keys_to_delegation,
    drop_unused_keys,
    local_keyids,
    ordered_delegations,
)
from trustkit.config import Settings
from trustkit.errors import BadInputError, KeyStoreError, UnknownRepositoryError, UntrustedError
from trustkit.model import TrustEvidence
from trustkit.refs import ImageRef
from trustkit.services import Services, as_services
from trustkit.stores.interface import MetadataStore

if TYPE_CHECKING:
    from trustkit.collections.cosigning import PendingView
    from trustkit.keys import Key, KeyRecord, KeyStore

ROTATABLE_ROLES = TOP_LEVEL_ROLES


def open_store(settings: Settings) -> MetadataStore:
    """The trust server named by SERVIN_CONTENT_TRUST_SERVER (unset or file:// = local dir)."""
    from trustkit.stores import open_store as open_store_url

    return open_store_url(settings.trust_store_url)


def _keystore(settings: Settings, keystore: KeyStore | None) -> KeyStore:
    if keystore is not None:
        return keystore
    from trustkit.keys import KeyStore

    return KeyStore(settings)


@dataclass
class SignOutcome:
    """What a tag change did: published, or stored as a pending change awaiting co-signers."""

    roles: list[str]
    pending: PendingView | None = None

    @property
    def published(self) -> bool:
        return self.pending is None


@contextlib.contextmanager
def _writing(
    settings: Settings,
    gun: str,
    keystore: KeyStore,
    *,
    create: bool,
    expiries: Expiries | None,
    changed: list[str] | None = None,
    outcome: SignOutcome | None = None,
) -> Iterator[Collection]:
    """Load (or create) under the writer lock, let the caller edit, then publish.

    With ``outcome``, a change to delegated roles whose threshold this key store cannot meet
    is stored as a pending change (``outcome.pending``) instead of being refused. New versions
    expire after ``expiries``, by default those of the settings (``SERVIN_TRUST_EXPIRY``).
    """
    expiries = expiries or expiries_for(settings)
    store = open_store(settings)
    if not create and not store.exists(gun):
        raise UnknownRepositoryError(f"no trust data for {gun}")
    with store.writer_lock(gun):
        collection = Collection.load(store, gun)
        if collection is None:
            if not create:
                raise UnknownRepositoryError(f"no trust data for {gun}")
            collection = Collection.create(gun, keystore, expiries)
        yield collection
        if outcome is not None:
            short = collection.short_of_threshold(keystore)
            if short and not any(role in TOP_LEVEL_ROLES for role in short):
                from trustkit.collections.cosigning import propose

                outcome.pending = propose(collection, keystore, expiries, store)
                return
        roles = collection.publish(keystore, expiries, store)
        if changed is not None:
            changed.extend(roles)


# --- tags ---------------------------------------------------------------------------------
def _tag_of(ref: ImageRef) -> str:
    if ref.tag is None:
        raise BadInputError(f"{ref} has no tag: name the tag to sign, e.g. {ref.repository}:v1")
    return ref.tag


def signable_roles(collection: Collection, keystore: KeyStore) -> list[str]:
    """The roles a tag goes into, as docker chooses them: the delegations we hold keys for, or
    targets when the collection has no delegations."""
    delegated = collection.delegated_roles()
    if not delegated:
        if not local_keyids(keystore, collection.keyids_of(TARGETS)):
            raise KeyStoreError(
                f"no repository (targets) key of {collection.gun} in this key store",
                hint="load it with 'trustkit trust key load'",
            )
        return [TARGETS]
    roles = [name for name, role in delegated.items() if local_keyids(keystore, role.keyids)]
    if not roles:
        raise KeyStoreError(
            f"you are not a signer of {collection.gun}: no key of its signers is in this key store",
            hint="load your signer key with 'trustkit trust key load' or ask an admin to add it",
        )
    return roles


def planned_signers(
    settings: Settings, gun: str, *, keystore: KeyStore | None = None
) -> tuple[str, ...]:
    """The signer names a ``sign_tag`` into ``gun`` with this key store would record, without
    signing anything (the push path judges ``require_signed`` policies before it signs).
    Raises ``KeyStoreError`` when no local key could sign, as ``sign_tag`` would."""
    collection = Collection.load(open_store(settings), gun)
    if collection is None:
        return ()  # first push creates the collection: targets only, no named signers
    roles = signable_roles(collection, _keystore(settings, keystore))
    named = (r for r in roles if r.startswith(SIGNER_PREFIX) and r != RELEASES)
    return tuple(signer_name_of(r) for r in named)


def sign_tag(
    settings: Settings,
    ref: ImageRef,
    *,
    digest: str,
    size: int,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
) -> list[str]:
    """Record tag → (digest, size) in every role the local keys can sign; returns those roles.

    Creates the collection (and its root and repository keys) on first use, as docker push does.
    Refused (KeyStoreError) when a role's threshold needs keys of other signers: see
    ``sign_or_propose``.
    """
    tag = _tag_of(ref)
    return sign_tags(settings, ref.gun, {tag: (digest, size)}, keystore=keystore, expiries=expiries)


def sign_or_propose(
    settings: Settings,
    ref: ImageRef,
    *,
    digest: str,
    size: int,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
) -> SignOutcome:
    """``sign_tag``, except that a change needing other signers' signatures (a releases
    threshold above the keys held here) becomes a pending change for them to approve."""
    outcome = SignOutcome([])
    tag = _tag_of(ref)
    outcome.roles = _sign_entries(
        settings, ref.gun, {tag: (digest, size)}, keystore, expiries, outcome
    )
    return outcome


def sign_tags(
    settings: Settings,
    gun: str,
    tags: Mapping[str, tuple[str, int]],
    *,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
) -> list[str]:
    """Sign many tags (tag → (digest, size)) in one publish; returns the roles signed."""
    return _sign_entries(settings, gun, tags, keystore, expiries, None)


def _sign_entries(
    settings: Settings,
    gun: str,
    tags: Mapping[str, tuple[str, int]],
    keystore: KeyStore | None,
    expiries: Expiries | None,
    outcome: SignOutcome | None,
) -> list[str]:
    from trustkit.refs import validate_tag

    entries = {
        validate_tag(tag): TargetFile(check_size(size), {"sha256": check_digest(d)}, tag)
        for tag, (d, size) in tags.items()
    }
    keys = _keystore(settings, keystore)
    with _writing(
        settings, gun, keys, create=True, expiries=expiries, outcome=outcome
    ) as collection:
        roles = signable_roles(collection, keys)
        for role in roles:
            collection.edit_role(role).targets.update(entries)
    return roles


def revoke(
    settings: Settings,
    ref: ImageRef,
    *,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
) -> list[str]:
    """Remove one tag's signature (or every tag's when ``ref.tag`` is None) from the roles we
    can sign; returns the roles changed."""
    return _revoke(settings, ref, keystore, expiries, None)


def revoke_or_propose(
    settings: Settings,
    ref: ImageRef,
    *,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
) -> SignOutcome:
    """``revoke``, becoming a pending change when other signers must co-sign it."""
    outcome = SignOutcome([])
    outcome.roles = _revoke(settings, ref, keystore, expiries, outcome)
    return outcome


def _revoke(
    settings: Settings,
    ref: ImageRef,
    keystore: KeyStore | None,
    expiries: Expiries | None,
    outcome: SignOutcome | None,
) -> list[str]:
    keys = _keystore(settings, keystore)
    changed: list[str] = []
    with _writing(
        settings, ref.gun, keys, create=False, expiries=expiries, outcome=outcome
    ) as collection:
        for role in signable_roles(collection, keys):
            current = collection.current_targets(role)
            if current is None:
                continue
            tags = list(current.targets) if ref.tag is None else [ref.tag]
            if any(t in current.targets for t in tags):
                edited = collection.edit_role(role)
                for tag in tags:
                    edited.targets.pop(tag, None)
                changed.append(role)
        if not changed:
            what = "no tags" if ref.tag is None else f"tag {ref.tag}"
            raise BadInputError(f"{what} of {ref.gun} signed by a role you can sign")
    return changed


# --- signers ------------------------------------------------------------------------------
def add_signer(
    settings: Settings,
    gun: str,
    name: str,
    keys: Sequence[Key],
    *,
    threshold: int | None = None,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
) -> None:
    """Add ``keys`` to targets/releases and to the signer's own role (creating the collection)."""
    role_name = signer_role(name)
    if not keys:
        raise BadInputError("give at least one --key")
    store_keys = _keystore(settings, keystore)
    with _writing(settings, gun, store_keys, create=True, expiries=expiries) as collection:
        targets = collection.edit_targets()
        if targets.delegations is None:
            targets.delegations = Delegations(keys={}, roles={})
        releases = add_keys_to_delegation(targets.delegations, RELEASES, keys)
        add_keys_to_delegation(targets.delegations, role_name, keys)
        ordered_delegations(targets.delegations)
        if threshold is not None:
            if not 1 <= threshold <= len(releases.keyids):
                raise BadInputError(
                    f"threshold {threshold} is impossible: releases of {gun} has "
                    f"{len(releases.keyids)} key(s)"
                )
            releases.threshold = threshold


@dataclass
class RemovalResult:
    warnings: list[str] = field(default_factory=list)


def remove_signer(
    settings: Settings,
    gun: str,
    name: str,
    *,
    force: bool = False,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
) -> RemovalResult:
    """Remove a signer's role and its keys from targets/releases."""
    role_name = signer_role(name)
    keys = _keystore(settings, keystore)
    result = RemovalResult()
    with _writing(settings, gun, keys, create=False, expiries=expiries) as collection:
        delegated = collection.delegated_roles()
        if role_name not in delegated:
            raise BadInputError(f"{name} is not a signer of {gun}")
        others = {
            k for n, r in delegated.items() if n not in (role_name, RELEASES) for k in r.keyids
        }
        leaving = [k for k in delegated[role_name].keyids if k not in others]
        releases = delegated.get(RELEASES)
        remaining = [k for k in releases.keyids if k not in leaving] if releases else []
        if releases is not None and not remaining and not force:
            raise BadInputError(
                f"{name} is the last signer of {gun}: nobody could sign its releases afterwards",
                hint="use --force to remove it anyway",
            )
        old_releases = collection.delegated(RELEASES)
        targets = collection.edit_targets()
        assert targets.delegations is not None and targets.delegations.roles is not None
        del targets.delegations.roles[role_name]
        if releases is not None:
            if remaining:
                new_releases = targets.delegations.roles[RELEASES]
                new_releases.keyids = remaining
                if new_releases.threshold > len(remaining):
                    result.warnings.append(
                        f"releases threshold lowered to {len(remaining)} (keys left)"
                    )
                    new_releases.threshold = len(remaining)
            else:
                del targets.delegations.roles[RELEASES]
        drop_unused_keys(targets.delegations)
        if not targets.delegations.roles:
            targets.delegations = None
        _resign_releases(collection, keys, old_releases, result)
    return result


def _resign_releases(
    collection: Collection, keys: KeyStore, old: Any, result: RemovalResult
) -> None:
    """After a key left releases, re-sign its tags with the remaining keys if they are here."""
    delegated = collection.delegated_roles()
    if old is None or RELEASES not in delegated:
        return
    holder = collection.targets.signed
    if holder.get_verification_result(RELEASES, old.signed_bytes, old.signatures):
        return  # still valid with the keys that remain
    role = delegated[RELEASES]
    if len(local_keyids(keys, role.keyids)) >= role.threshold:
        collection.edit_role(RELEASES)
    else:
        result.warnings.append(
            "its releases signatures no longer count: a remaining signer must sign the tags again"
        )


# --- keys ---------------------------------------------------------------------------------
def rotate_key(
    settings: Settings,
    gun: str,
    role: str,
    *,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
) -> KeyRecord:
    """Replace ``role``'s keys with a new one; the new root is signed by the old and new root."""
    if role not in ROTATABLE_ROLES:
        raise BadInputError(f"cannot rotate {role!r}: choose one of {', '.join(ROTATABLE_ROLES)}")
    keys = _keystore(settings, keystore)
    with _writing(settings, gun, keys, create=False, expiries=expiries) as collection:
        if not local_keyids(keys, collection.keyids_of(ROOT)):
            raise KeyStoreError(
                f"the root key of {gun} is not in this key store: only its owner can rotate keys"
            )
        new = keys.generate(role=role, gun=gun)
        root = collection.edit_root()
        for keyid in list(root.roles[role].keyids):
            root.revoke_key(keyid, role)
        root.add_key(new.public_key, role)
        root.roles[role].threshold = 1
        if role == TARGETS:
            collection.edit_targets()  # re-signed with the new key
    return new


def renew(
    settings: Settings,
    gun: str,
    roles: Sequence[str] = (),
    *,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
) -> list[str]:
    """New versions with fresh expiry dates for ``roles`` (snapshot and timestamp always)."""
    keys = _keystore(settings, keystore)
    changed: list[str] = []
    with _writing(
        settings, gun, keys, create=False, expiries=expiries, changed=changed
    ) as collection:
        for role in roles:
            if role not in TOP_LEVEL_ROLES and role not in collection.delegated_roles():
                raise BadInputError(f"{gun} has no role {role!r}")
            collection.renew(role)
    return sorted(set(changed) | {SNAPSHOT, TIMESTAMP})


# --- reading (verified, through the client) ------------------------------------------------
def verify_tag(
    settings: Settings, ref: ImageRef, *, root_file: Path | None = None
) -> TrustedTarget:
    """The digest the collection trusts for ``ref``'s tag, or an UntrustedError."""
    from trustkit.collections.client import verify_cached

    return verify_cached(settings, open_store(settings), ref.gun, _tag_of(ref), root_file)


def trust_data_version(settings: Settings, gun: str) -> str | None:
    """An unverified token that changes with every publish of ``gun``: for cache keys (the
    webhook's verdict cache), never for trust decisions."""
    return open_store(settings).generation(gun)


def list_signed_tags(settings: Settings, gun: str) -> list[TrustedTarget]:
    """Every trusted tag of ``gun`` (releases first, then targets), verified."""
    from trustkit.collections.client import TrustSession

    return TrustSession(settings, open_store(settings), gun).signed_tags()


def trust_evidence(
    settings: Settings | Services, ref: ImageRef, *, root_file: Path | None = None
) -> TrustEvidence:
    """What the TUF collection of ``ref`` vouches for, as typed evidence; never raises for a
    trust refusal (the refusal is the evidence's ``failure``), only for bad input and
    environment errors.

    ``ref`` may name a tag, a digest or both:

    - ``repo:tag``: the tag's trusted digest;
    - ``repo@sha256:...``: trusted when at least one signed tag points at that digest;
    - ``repo:tag@sha256:...``: the tag's trusted digest must be that digest, else the
      failure is ``TAG_MOVED``.

    ``tags`` lists every signed tag pointing at the digest (so a digest reference is scoped by
    all of them), ``signers`` the named signers who recorded the tag(s), each with the distinct
    key ids whose valid signatures vouched, and ``expires`` the earliest expiry of the metadata
    the answer depends on.
    """
    from trustkit.collections.client import session_for
    from trustkit.errors import FailureKind
    from trustkit.model import EvidenceSource, SignerIdentity

    services = as_services(settings)
    source = EvidenceSource.TUF_COLLECTION
    digest = ref.digest
    try:
        session = session_for(services, services.store, ref.gun, root_file)
        signed = session.signed_tags()
        if ref.tag is not None:
            found = session.find(ref.tag)
            if digest is not None and digest != found.digest:
                return TrustEvidence(
                    source=source,
                    checked=True,
                    verified=False,
                    digest=digest,
                    failure=FailureKind.TAG_MOVED,
                    message=(
                        f"{ref.familiar}: the requested digest {digest} is not the trusted "
                        f"digest {found.digest} of tag {ref.tag}"
                    ),
                )
            matching = [found, *(t for t in signed if t.digest == found.digest and t != found)]
        else:
            assert digest is not None, "a reference names a tag, a digest or both"
            matching = [t for t in signed if t.digest == digest]
            if not matching:
                return TrustEvidence(
                    source=source,
                    checked=True,
                    verified=False,
                    digest=digest,
                    failure=FailureKind.UNSIGNED,
                    message=f"{digest} is not the signed digest of any tag of {ref.repository}",
                )
        identities: dict[str, SignerIdentity] = {}
        for target in matching:
            for identity in session.signer_identities(target):
                known = identities.get(identity.name)
                keyids = identity.keyids if known is None else (*known.keyids, *identity.keyids)
                identities[identity.name] = SignerIdentity(
                    identity.name, tuple(sorted(set(keyids))), identity.role
                )
        first = matching[0]
        return TrustEvidence(
            source=source,
            checked=True,
            verified=True,
            digest=first.digest,
            size=first.size,
            signers=tuple(identities.values()),
            tags=tuple(sorted({t.tag for t in matching})),
            expires=min(session.expires(t.role) for t in matching),
        )
    except UnknownRepositoryError as exc:
        return TrustEvidence(
            source=source,
            checked=True,
            verified=False,
            digest=digest,
            failure=FailureKind.UNSIGNED,
            message=f"{ref.familiar} is not signed: {exc}",
        )
    except UntrustedError as exc:
        return TrustEvidence.refused(source, exc, digest=digest)


def inspect(settings: Settings, ref: ImageRef) -> dict[str, Any]:
    """``docker trust inspect`` for one repository (one tag when ``ref.tag`` is set)."""
    from trustkit.collections.client import TrustSession

    session = TrustSession(settings, open_store(settings), ref.gun)
    if ref.tag is not None:
        from trustkit.errors import NotSignedError

        try:
            tags = [session.find(ref.tag)]
        except NotSignedError:
            tags = []
    else:
        tags = session.signed_tags()
    targets = session.role(TARGETS)
    assert targets is not None
    delegations = targets.delegations
    roles = (delegations.roles or {}) if delegations is not None else {}
    signers = [
        {"Name": signer_name_of(name), "Keys": [{"ID": k} for k in role.keyids]}
        for name, role in sorted(roles.items())
        if name != RELEASES
    ]
    root = session.root
    return {
        "Name": ref.repository,
        "SignedTags": [
            {
                "SignedTag": t.tag,
                "Digest": t.hex_digest,
                "Signers": list(t.signers) if t.role != TARGETS else [REPO_ADMIN],
            }
            for t in tags
        ],
        "Signers": signers,
        "AdministrativeKeys": [
            {"Name": "Root", "Keys": [{"ID": k} for k in root.roles[ROOT].keyids]},
            {"Name": "Repository", "Keys": [{"ID": k} for k in root.roles[TARGETS].keyids]},
        ],
    }
