"""What callers do with collections: sign, revoke, add/remove signers, rotate keys, verify.

Every public function takes ``Services`` (``Settings`` still works while callers convert) and
uses its store, key store and settings; nothing here opens a store or a key store itself.

Every write is optimistic: load the published set (verified) at the store's generation, change
it in memory, publish one consistent set of new versions conditional on that generation. When
another writer published first (``ConflictError``) the change is re-applied to the new set, a
bounded number of times. Which roles a tag is written into is the collection's delegation
layout's decision (``layouts.py``), shared with the reader and co-signing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from trustkit.collections._retry import MAX_WRITE_ATTEMPTS, back_off
from trustkit.collections._tuf import Delegations, SuccinctRoles, TargetFile
from trustkit.collections.bins import (
    DEFAULT_BITS,
    BinsLayout,
    add_signer_binned,
    bin_for,
    binned_bits,
    binned_delegation,
    bins_prefix,
    check_bits,
    remove_signer_binned,
)
from trustkit.collections.expiry import iso
from trustkit.collections.layouts import DelegationLayout, layout_for
from trustkit.collections.model import (
    REPO_ADMIN,
    ROOT,
    SNAPSHOT,
    TARGETS,
    TIMESTAMP,
    TOP_LEVEL_ROLES,
    Expiries,
    TrustedTarget,
    check_digest,
    check_signer_name,
    check_size,
    expiries_for,
)
from trustkit.collections.repository import Collection, local_keyids
from trustkit.config import Settings
from trustkit.errors import (
    BadInputError,
    ConflictError,
    KeyStoreError,
    UnknownRepositoryError,
    UntrustedError,
)
from trustkit.refs import ImageRef
from trustkit.services import Services, as_services

if TYPE_CHECKING:
    from trustkit.collections.client import TrustSession
    from trustkit.collections.cosigning import PendingView
    from trustkit.keys import Key, KeyRecord, KeyStore
    from trustkit.model import SignerIdentity, TrustEvidence  # typed evidence: verify paths

ROTATABLE_ROLES = TOP_LEVEL_ROLES
#: a key store role that never signs tags: scan attestations are another kind of statement
SCANNER_ROLE = "scanner"

T = TypeVar("T")


@dataclass
class SignOutcome:
    """What a tag change did: published, or stored as a pending change awaiting co-signers."""

    roles: list[str]
    pending: PendingView | None = None

    @property
    def published(self) -> bool:
        return self.pending is None


def _write(
    services: Services,
    gun: str,
    edit: Callable[[Collection], T],
    *,
    keystore: KeyStore | None,
    create: bool,
    expiries: Expiries | None,
    changed: list[str] | None = None,
    outcome: SignOutcome | None = None,
) -> T:
    """Load (or create), apply ``edit``, publish; on a conflict reload and apply it again.

    ``edit`` must be a pure change of the collection it is given (it runs once per attempt).
    With ``outcome``, a change to delegated roles whose threshold this key store cannot meet is
    stored as a pending change (``outcome.pending``) instead of being refused. New versions
    expire after ``expiries``, by default those of the settings (``SERVIN_TRUST_EXPIRY``).
    """
    expiries = expiries or expiries_for(services.settings)
    keys = keystore if keystore is not None else services.keys
    store = services.store
    for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
        with store.writing(gun):
            collection = Collection.load(store, gun)
            if collection is None:
                if not create:
                    raise UnknownRepositoryError(f"no trust data for {gun}")
                collection = Collection.create(gun, keys, expiries)
            result = edit(collection)
            if outcome is not None:
                short = collection.short_of_threshold(keys)
                if short and not any(role in TOP_LEVEL_ROLES for role in short):
                    from trustkit.collections.cosigning import propose

                    outcome.pending = propose(
                        collection, keys, expiries, store, now=services.clock()
                    )
                    return result
            try:
                roles = collection.publish(keys, expiries, store)
            except ConflictError:
                if attempt == MAX_WRITE_ATTEMPTS:
                    raise
                back_off(attempt)
                continue
            if changed is not None:
                changed.extend(roles)
            return result
    raise AssertionError("unreachable")  # pragma: no cover


def _holds_key(collection: Collection, keystore: KeyStore) -> Callable[[str], bool]:
    """Whether this key store holds a key of the named delegated role (a bin's keys are
    found through the role delegating to it)."""
    return lambda role: bool(local_keyids(keystore, collection.keyids_of(role)))


def _layout(collection: Collection) -> DelegationLayout:
    return layout_for(collection.delegations)


# --- tags ---------------------------------------------------------------------------------
def _on_notary(services: Services, gun: str) -> bool:
    from trustkit.stores.notary import is_notary_store

    return is_notary_store(services.store, gun)


def _tag_of(ref: ImageRef) -> str:
    if ref.tag is None:
        raise BadInputError(f"{ref} has no tag: name the tag to sign, e.g. {ref.repository}:v1")
    return ref.tag


def signable_roles(collection: Collection, keystore: KeyStore, tag: str | None = None) -> list[str]:
    """The roles a tag goes into, as the layout chooses them for the keys held here (DCT: the
    delegations we hold a key of, or targets when the collection has no delegations); every
    role a tag could go into when ``tag`` is None."""
    roles = _layout(collection).write_roles(
        collection.delegations, tag, _holds_key(collection, keystore)
    )
    if roles == [TARGETS]:
        if not local_keyids(keystore, collection.keyids_of(TARGETS)):
            raise KeyStoreError(
                f"no repository (targets) key of {collection.gun} in this key store",
                hint="load it with 'trustkit trust key load'",
            )
        return roles
    if not roles:
        raise KeyStoreError(
            f"you are not a signer of {collection.gun}: no key of its signers is in this key store",
            hint="load your signer key with 'trustkit trust key load' or ask an admin to add it",
        )
    return roles


def planned_signers(
    settings: Settings | Services,
    gun: str,
    *,
    keystore: KeyStore | None = None,
    tag: str | None = None,
) -> tuple[str, ...]:
    """The signer names a ``sign_tag`` into ``gun`` with this key store would record, without
    signing anything (the push path judges ``require_signed`` policies before it signs).
    Raises ``KeyStoreError`` when no local key could sign, as ``sign_tag`` would."""
    services = as_services(settings)
    if _on_notary(services, gun):  # Notary's wire format: its own writer
        from trustkit.notary import writer

        keys = keystore if keystore is not None else services.keys
        return tuple(n for n, _, _ in writer.planned_signer_identities(services, gun, keys))
    collection = Collection.load(services.store, gun)
    if collection is None:
        return ()  # first push creates the collection: targets only, no named signers
    keys = keystore if keystore is not None else services.keys
    roles = signable_roles(collection, keys, tag)
    layout = _layout(collection)
    return tuple(name for r in roles if (name := layout.signer_of(r)) is not None)


def planned_signer_identities(
    settings: Settings | Services,
    gun: str,
    *,
    keystore: KeyStore | None = None,
    tag: str | None = None,
) -> tuple[SignerIdentity, ...]:
    """``planned_signers`` as evidence: each named signer this key store would sign as, with
    the distinct key ids of that signer held here (the keys whose signatures the sign will
    make), so a policy counting keys judges the push the way it will judge the pull."""
    from trustkit.model import SignerIdentity

    services = as_services(settings)
    if _on_notary(services, gun):  # Notary's wire format: its own writer
        from trustkit.notary import writer

        keys = keystore if keystore is not None else services.keys
        return tuple(
            SignerIdentity(name=n, keyids=k, role=r)
            for n, r, k in writer.planned_signer_identities(services, gun, keys)
        )
    collection = Collection.load(services.store, gun)
    if collection is None:
        return ()
    keys = keystore if keystore is not None else services.keys
    layout = _layout(collection)
    identities = []
    for role in signable_roles(collection, keys, tag):
        name = layout.signer_of(role)
        if name is not None:
            held = tuple(sorted(local_keyids(keys, collection.keyids_of(role))))
            identities.append(SignerIdentity(name=name, keyids=held, role=role))
    return tuple(identities)


def sign_tag(
    settings: Settings | Services,
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
    settings: Settings | Services,
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
        as_services(settings), ref.gun, {tag: (digest, size)}, keystore, expiries, outcome
    )
    return outcome


def sign_tags(
    settings: Settings | Services,
    gun: str,
    tags: Mapping[str, tuple[str, int]],
    *,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
) -> list[str]:
    """Sign many tags (tag → (digest, size)) in one publish; returns the roles signed."""
    return _sign_entries(as_services(settings), gun, tags, keystore, expiries, None)


def _sign_entries(
    services: Services,
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
    keys = keystore if keystore is not None else services.keys
    if _on_notary(services, gun):  # Notary's wire format: its own writer
        from trustkit.notary import writer

        return writer.sign_tags(
            services,
            gun,
            keys,
            {t: (f"sha256:{e.hashes['sha256']}", e.length) for t, e in entries.items()},
        )

    def edit(collection: Collection) -> list[str]:
        signed: dict[str, None] = {}
        for tag, entry in entries.items():
            for role in signable_roles(collection, keys, tag):
                collection.edit_role(role).targets[tag] = entry
                signed[role] = None
        return list(signed)

    return _write(
        services, gun, edit, keystore=keys, create=True, expiries=expiries, outcome=outcome
    )


def revoke(
    settings: Settings | Services,
    ref: ImageRef,
    *,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
) -> list[str]:
    """Remove one tag's signature (or every tag's when ``ref.tag`` is None) from the roles we
    can sign; returns the roles changed."""
    return _revoke(as_services(settings), ref, keystore, expiries, None)


def revoke_or_propose(
    settings: Settings | Services,
    ref: ImageRef,
    *,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
) -> SignOutcome:
    """``revoke``, becoming a pending change when other signers must co-sign it."""
    outcome = SignOutcome([])
    outcome.roles = _revoke(as_services(settings), ref, keystore, expiries, outcome)
    return outcome


def _revoke(
    services: Services,
    ref: ImageRef,
    keystore: KeyStore | None,
    expiries: Expiries | None,
    outcome: SignOutcome | None,
) -> list[str]:
    keys = keystore if keystore is not None else services.keys
    if _on_notary(services, ref.gun):  # Notary's wire format: its own writer
        from trustkit.notary import writer

        return writer.revoke(services, ref.gun, keys, ref.tag)

    def edit(collection: Collection) -> list[str]:
        changed: list[str] = []
        for role in signable_roles(collection, keys, ref.tag):
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

    return _write(
        services, ref.gun, edit, keystore=keys, create=False, expiries=expiries, outcome=outcome
    )


# --- signers ------------------------------------------------------------------------------
@dataclass
class SignerChange:
    """What ``add_signer`` did, and what a person should know about it."""

    warnings: list[str] = field(default_factory=list)


def add_signer(
    settings: Settings | Services,
    gun: str,
    name: str,
    keys: Sequence[Key],
    *,
    threshold: int | None = None,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
) -> SignerChange:
    """Add ``keys`` to the signer's role and let them sign releases (creating the collection).

    A key this key store holds as a scanner key is refused: keys keep their roles. A key that
    is already the signer's, or another signer's, is allowed but warned about: signers are
    counted by distinct key, so such a key does not make two signers.
    """
    services = as_services(settings)
    check_signer_name(name)
    if not keys:
        raise BadInputError("give at least one --key")
    store_keys = keystore if keystore is not None else services.keys
    _refuse_scanner_keys(store_keys, keys)
    if _on_notary(services, gun):  # Notary's wire format: its own writer
        from trustkit.notary import writer

        return SignerChange(
            writer.add_signer(services, gun, store_keys, name, list(keys), threshold=threshold)
        )

    def edit(collection: Collection) -> SignerChange:
        change = SignerChange()
        layout = _layout(collection)
        targets = collection.edit_targets()
        if targets.delegations is None:
            targets.delegations = Delegations(keys={}, roles={})
        delegated = dict(targets.delegations.roles or {})
        signers = layout.signer_roles(targets.delegations)
        for key in keys:
            if name in signers and key.keyid in delegated[signers[name]].keyids:
                change.warnings.append(f"key {key.keyid[:12]} already belongs to signer {name}")
            for other, role in signers.items():
                if other != name and key.keyid in delegated[role].keyids:
                    change.warnings.append(
                        f"key {key.keyid[:12]} is already held by signer {other}: it counts as "
                        f"one key, not as a signature of both {other} and {name}"
                    )
        try:
            if isinstance(layout, BinsLayout):  # its delegating roles change too
                add_signer_binned(collection, layout.bits, name, keys, threshold)
            else:
                layout.add_signer(targets.delegations, name, keys, threshold)
        except BadInputError as exc:
            raise BadInputError(f"{exc} ({gun})", hint=exc.hint) from None
        return change

    return _write(services, gun, edit, keystore=store_keys, create=True, expiries=expiries)


def _refuse_scanner_keys(keystore: KeyStore, keys: Sequence[Key]) -> None:
    for key in keys:
        try:
            record = keystore.get(key.keyid)
        except KeyStoreError:
            continue  # not ours: nothing says what else it signs
        if record.role == SCANNER_ROLE:
            raise BadInputError(
                f"key {key.keyid[:12]} is a scanner key in this key store: keys keep their "
                "roles, and a scanner key never signs tags",
                hint="generate a signer key with 'trustkit trust key generate NAME'",
            )


@dataclass(frozen=True)
class UntrustedTag:
    """A tag that lost its trust when a signer was removed (it may need signing again)."""

    tag: str
    digest: str
    size: int
    #: whether a remaining signer recorded the same digest (re-signing restores it)
    vouched_by_remaining: bool


@dataclass
class RemovalResult:
    warnings: list[str] = field(default_factory=list)
    #: tags no remaining key vouches for any more: removed from releases, or the releases
    #: role lost its valid signatures; each must be signed again if it should stay trusted
    untrusted: list[UntrustedTag] = field(default_factory=list)


def remove_signer(
    settings: Settings | Services,
    gun: str,
    name: str,
    *,
    force: bool = False,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
) -> RemovalResult:
    """Remove a signer's role and its keys from the release roles, as the response to a stolen
    key must: tags the removed keys alone vouched for lose their trust.

    A release role's tags are kept only when a remaining signer's own role records the same
    digest; the others are dropped before the role is re-signed by the remaining keys held
    here. Without enough of those keys, the role keeps only the signatures it has: when none of
    them counts any more every one of its tags loses trust, and when remaining signatures still
    cover tags that only the removed signer vouched for, the removal is refused (those tags
    would stay trusted) unless ``force``.
    """
    services = as_services(settings)
    check_signer_name(name)
    keys = keystore if keystore is not None else services.keys
    if _on_notary(services, gun):  # Notary's wire format: its own writer
        from trustkit.notary import writer

        warnings, lost = writer.remove_signer(services, gun, keys, name, force=force)
        return RemovalResult(warnings, [UntrustedTag(t, d, n, False) for t, d, n in lost])

    def edit(collection: Collection) -> RemovalResult:
        layout = _layout(collection)
        if name not in layout.signer_roles(collection.delegations):
            raise BadInputError(f"{name} is not a signer of {gun}")
        published = {
            r: collection.delegated(r) for r in layout.release_roles(collection.delegations)
        }
        targets = collection.edit_targets()
        assert targets.delegations is not None
        try:
            if isinstance(layout, BinsLayout):  # its delegating roles change too
                removal = remove_signer_binned(collection, layout.bits, name, force=force)
            else:
                removal = layout.remove_signer(targets.delegations, name, force=force)
        except BadInputError as exc:
            raise BadInputError(f"{exc} ({gun})", hint=exc.hint) from None
        result = RemovalResult(warnings=list(removal.warnings))
        if not targets.delegations.roles:
            targets.delegations = None
        for role in removal.release_roles:
            _drop_unvouched(collection, layout, role, published.get(role), keys, force, result)
        return result

    return _write(services, gun, edit, keystore=keys, create=False, expiries=expiries)


def _drop_unvouched(
    collection: Collection,
    layout: DelegationLayout,
    role: str,
    old: Any,
    keys: KeyStore,
    force: bool,
    result: RemovalResult,
) -> None:
    """After keys left release role ``role``: keep only tags a remaining signer vouched for."""
    if old is None:
        return
    gun = collection.gun
    delegations = collection.delegations
    try:  # a bin is delegated by its family's role, not by targets
        delegated = collection.delegation_of(role)
        still_delegated = True
    except KeyError:
        still_delegated = False
    kept: dict[str, TargetFile] = {}
    dropped: dict[str, TargetFile] = {}
    for tag, entry in old.signed.targets.items():
        vouched = still_delegated and any(
            _records(collection, record_role, tag, entry)
            for record_role in layout.record_roles(delegations, tag).values()
        )
        (kept if vouched else dropped)[tag] = entry
    if not still_delegated:
        result.untrusted.extend(_untrusted(kept, True) + _untrusted(dropped, False))
        return
    assert delegations is not None
    still_valid = collection.delegator_targets(role).get_verification_result(
        role, old.signed_bytes, old.signatures
    )
    if len(local_keyids(keys, delegated.keyids)) >= delegated.threshold:
        if dropped or not still_valid.verified:
            edited = collection.edit_role(role)
            for tag in dropped:
                edited.targets.pop(tag, None)
        result.untrusted.extend(_untrusted(dropped, False))
        return
    if not still_valid.verified:
        # nobody here can re-sign: the role's signatures no longer count, so neither do its tags
        result.untrusted.extend(_untrusted(kept, True) + _untrusted(dropped, False))
        result.warnings.append(
            f"{role} of {gun} has no valid signatures left: a remaining signer must sign its "
            "tags again"
        )
        return
    if dropped and not force:
        raise KeyStoreError(
            f"cannot remove the signer of {gun} safely here: tags {', '.join(sorted(dropped))} "
            f"were signed only by its keys, and {role} must be re-signed without them by "
            f"{delegated.threshold} key(s) of the remaining signers, which are not in this "
            "key store",
            hint="run the removal where those keys are, or pass --force and revoke those tags",
        )
    if dropped:
        result.warnings.append(
            f"tags {', '.join(sorted(dropped))} stay trusted through the remaining signatures "
            f"on {role} until a remaining signer revokes them"
        )


def _records(collection: Collection, role: str, tag: str, entry: TargetFile) -> bool:
    """Whether signer role ``role`` (as published) records ``tag`` at exactly ``entry``."""
    try:
        md = collection.delegated(role)
    except UntrustedError:
        return False
    if md is None or tag not in md.signed.targets:
        return False
    theirs = md.signed.targets[tag]
    return theirs.hashes == entry.hashes and theirs.length == entry.length


def _untrusted(entries: Mapping[str, TargetFile], vouched: bool) -> list[UntrustedTag]:
    return [
        UntrustedTag(tag, f"sha256:{entry.hashes.get('sha256', '')}", entry.length, vouched)
        for tag, entry in sorted(entries.items())
    ]


# --- keys ---------------------------------------------------------------------------------
def rotate_key(
    settings: Settings | Services,
    gun: str,
    role: str,
    *,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
    key: KeyRecord | None = None,
) -> KeyRecord:
    """Replace ``role``'s keys with a new one, or with ``key`` (a key already in the key store,
    such as an HSM or KMS key); the new root is signed by the old and new root."""
    if role not in ROTATABLE_ROLES:
        raise BadInputError(f"cannot rotate {role!r}: choose one of {', '.join(ROTATABLE_ROLES)}")
    services = as_services(settings)
    keys = keystore if keystore is not None else services.keys
    if _on_notary(services, gun):  # Notary's wire format: its own writer
        from trustkit.notary import writer

        return writer.rotate_key(services, gun, keys, role, key=key)
    generated: list[KeyRecord] = []

    def edit(collection: Collection) -> KeyRecord:
        if not local_keyids(keys, collection.keyids_of(ROOT)):
            raise KeyStoreError(
                f"the root key of {gun} is not in this key store: only its owner can rotate keys"
            )
        if not generated:  # one new key, even when a conflict makes us re-apply the change
            generated.append(key if key is not None else keys.generate(role=role, gun=gun))
        new = generated[0]
        root = collection.edit_root()
        for keyid in list(root.roles[role].keyids):
            root.revoke_key(keyid, role)
        root.add_key(new.public_key, role)
        root.roles[role].threshold = 1
        if role == TARGETS:
            collection.edit_targets()  # re-signed with the new key
        return new

    return _write(services, gun, edit, keystore=keys, create=False, expiries=expiries)


def renew(
    settings: Settings | Services,
    gun: str,
    roles: Sequence[str] = (),
    *,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
) -> list[str]:
    """New versions with fresh expiry dates for ``roles`` (snapshot and timestamp always)."""
    services = as_services(settings)
    if _on_notary(services, gun):  # Notary's wire format: its own writer
        from trustkit.notary import writer

        keys = keystore if keystore is not None else services.keys
        return sorted(writer.renew(services, gun, keys, roles))
    changed: list[str] = []

    def edit(collection: Collection) -> None:
        for role in roles:
            if role not in TOP_LEVEL_ROLES and role not in collection.delegated_roles():
                raise BadInputError(f"{gun} has no role {role!r}")
            collection.renew(role)

    _write(
        services,
        gun,
        edit,
        keystore=keystore,
        create=False,
        expiries=expiries,
        changed=changed,
    )
    return sorted(set(changed) | {SNAPSHOT, TIMESTAMP})


# --- reading (verified, through the client) ------------------------------------------------
def verify_tag(
    settings: Settings | Services, ref: ImageRef, *, root_file: Path | None = None
) -> TrustedTarget:
    """The digest the collection trusts for ``ref``'s tag, or an UntrustedError."""
    from trustkit.collections.client import verify_cached
    from trustkit.stores.notary import is_notary_store

    services = as_services(settings)
    if is_notary_store(services.store, ref.gun):  # Notary's wire format: its own verifier
        from trustkit.notary import reader

        found = reader.verify_tag(services, ref.gun, _tag_of(ref), root_file=root_file)
        return TrustedTarget(
            ref.gun, found.tag, found.digest, found.size, found.role, found.signers
        )
    return verify_cached(services, services.store, ref.gun, _tag_of(ref), root_file)


def trust_data_version(settings: Settings | Services, gun: str) -> str | None:
    """An unverified token that changes with every publish of ``gun``: for cache keys (the
    webhook's verdict cache), never for trust decisions."""
    return as_services(settings).store.generation(gun)


def list_signed_tags(settings: Settings | Services, gun: str) -> list[TrustedTarget]:
    """Every trusted tag of ``gun`` (releases first, then targets), verified."""
    from trustkit.collections.client import session_for

    services = as_services(settings)
    if _on_notary(services, gun):  # Notary's wire format: its own verifier
        from trustkit.notary import reader

        return [
            TrustedTarget(gun, t.tag, t.digest, t.size, t.role, t.signers)
            for t in reader.verified(services, gun).signed_tags()
        ]
    return session_for(services, services.store, gun).signed_tags()


def trust_evidence(
    settings: Settings | Services,
    ref: ImageRef,
    *,
    root_file: Path | None = None,
    every_tag: bool = True,
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
    the answer depends on. ``every_tag=False``: for a reference naming a tag, that tag's own
    evidence only (``complete`` False), read without the other tags' roles or bins.
    """
    from trustkit.collections.client import session_for
    from trustkit.stores.notary import is_notary_store

    services = as_services(settings)
    if is_notary_store(services.store, ref.gun):  # Notary's wire format: its own verifier
        from trustkit.notary import reader

        return reader.evidence(services, ref, root_file=root_file, every_tag=every_tag)
    return session_evidence(
        ref,
        lambda: session_for(services, services.store, ref.gun, root_file),
        every_tag=every_tag,
    )


def session_evidence(
    ref: ImageRef, verified: Callable[[], TrustSession], *, every_tag: bool
) -> TrustEvidence:
    """``ref``'s evidence from the verified TUF session ``verified()`` makes (its refusals
    become evidence)."""
    from trustkit.model import EvidenceSource
    from trustkit.model.evidence import collection_evidence

    return collection_evidence(
        EvidenceSource.TUF_COLLECTION,
        ref,
        verified=verified,
        find=lambda session, tag: session.find(tag),
        tags_at=lambda session, digest: session.tags_at(digest),
        signers_of=lambda session, target: session.signer_identities(target),
        expires_of=lambda session, target: session.expires(target.role),
        every_tag=every_tag,
    )


def _signer_keyids(session: Any, role: str, roles: Mapping[str, Any]) -> list[str]:
    """A signer's keys: its role's, or in a binned collection those of its bins (its
    delegating role carries the repository key)."""
    if isinstance(session.layout, BinsLayout):
        md = session.role(role)
        if md is not None and md.delegations is not None and md.delegations.succinct_roles:
            return list(md.delegations.succinct_roles.keyids)
    return list(roles[role].keyids)


def inspect(settings: Settings | Services, ref: ImageRef) -> dict[str, Any]:
    """``docker trust inspect`` for one repository (one tag when ``ref.tag`` is set)."""
    from trustkit.collections.client import session_for
    from trustkit.errors import NotSignedError
    from trustkit.stores.notary import is_notary_store

    services = as_services(settings)
    if is_notary_store(services.store, ref.gun):  # Notary's wire format: its own verifier
        from trustkit.notary import reader

        return reader.inspect(services, ref)
    session = session_for(services, services.store, ref.gun)
    if ref.tag is not None:
        try:
            tags = [session.find(ref.tag)]
        except NotSignedError:
            tags = []
    else:
        tags = session.signed_tags()
    delegations = session.delegations
    roles = (delegations.roles or {}) if delegations is not None else {}
    signers = [
        {"Name": signer, "Keys": [{"ID": k} for k in _signer_keyids(session, role, roles)]}
        for signer, role in sorted(session.layout.signer_roles(delegations).items())
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
        # when each role's metadata expires (UTC): what 'trust renew' must refresh before then
        "Expires": {role: iso(when) for role, when in session.expiry_dates().items()},
    }


def use_bins(
    settings: Settings | Services,
    gun: str,
    *,
    bits: int = DEFAULT_BITS,
    keystore: KeyStore | None = None,
) -> int:
    """Move a DCT collection onto hashed bins in one publish; returns how many tags moved.

    Every DCT role (``targets/releases``, each ``targets/<signer>``) becomes a delegating role
    signed by the repository key, and its tags move into its bins, signed by the keys that
    signed the role: so this needs the repository key and, for each role, its threshold of
    keys (refused, nothing published, otherwise). Versions continue, so a client that trusted
    the DCT-era metadata walks forward to the binned set like any other update."""
    from trustkit.services import as_services

    check_bits(bits)
    services = as_services(settings)
    keys = keystore if keystore is not None else services.keys

    def edit(collection: Collection) -> int:
        delegations = collection.delegations
        if binned_bits(delegations) is not None:
            raise BadInputError(f"{gun} already uses hashed bins")
        if delegations is None or not delegations.roles:
            raise BadInputError(
                f"{gun} has no signers: add one first ('trustkit trust signer add')"
            )
        root = collection.root.signed
        targets_role = root.roles[TARGETS]
        published = {
            family: dict(current.targets) if (current := collection.current_targets(family)) else {}
            for family in delegations.roles
        }
        old_roles = dict(delegations.roles)
        targets = collection.edit_targets()
        assert targets.delegations is not None
        new_roles = {}
        for family, old in old_roles.items():
            new_roles[family] = binned_delegation(
                family, targets_role.keyids, targets_role.threshold, bits
            )
            for keyid in targets_role.keyids:
                targets.delegations.keys[keyid] = root.keys[keyid]
            delegating = collection.edit_role(family)
            delegating.targets.clear()
            delegating.delegations = Delegations(
                keys={k: delegations.keys[k] for k in old.keyids},
                roles=None,
                succinct_roles=SuccinctRoles(
                    list(old.keyids), old.threshold, bits, bins_prefix(family)
                ),
            )
        targets.delegations.roles = new_roles
        moved = 0
        for family, tags in published.items():
            for tag, entry in tags.items():
                collection.edit_role(bin_for(family, bits, tag)).targets[tag] = entry
                moved += 1
        return moved

    return _write(services, gun, edit, keystore=keys, create=False, expiries=None)
