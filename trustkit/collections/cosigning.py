"""Co-signing: changes to a role whose threshold one key store cannot meet alone.

A signer holding fewer keys than a role's threshold does not publish. The new role versions,
signed with the keys at hand, wait in the store as a *pending change* (with the versions they
build on) until other signers approve them; the approval that meets every threshold publishes
the set exactly like a normal write (new role versions, snapshot, timestamp) and drops the entry.

A pending entry is unpublished and untrusted: clients never read it, and every writer checks it
against the published, verified collection first: it must build on the current versions, each
signature must verify with a key the role lists today, and only the role's own threshold counts.
"""

from __future__ import annotations

import copy
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from securesystemslib.exceptions import UnverifiedSignatureError

from trustkit.collections._retry import MAX_WRITE_ATTEMPTS, back_off
from trustkit.collections._tuf import Metadata, TargetFile, Targets
from trustkit.collections.bins import BinsLayout, bin_for, is_bin
from trustkit.collections.layouts import layout_for
from trustkit.collections.model import (
    MAX_DELEGATIONS,
    SIGNER_NAME_MAX,
    SIGNER_NAME_RE,
    SIGNER_PREFIX,
    TARGETS,
    TARGETS_MAX_BYTES,
    TOP_LEVEL_ROLES,
    Expiries,
    expiries_for,
    utcnow,
)
from trustkit.collections.repository import Collection, local_keyids
from trustkit.errors import (
    BadInputError,
    ConflictError,
    KeyStoreError,
    MalformedPendingError,
    SignatureError,
    StalePendingError,
    UnknownRepositoryError,
    UntrustedError,
)
from trustkit.services import as_services
from trustkit.stores.interface import MetadataStore, check_pending_id

if TYPE_CHECKING:
    from trustkit.config import Settings
    from trustkit.keys import KeyStore
    from trustkit.services import Services

PENDING_TYPE = "trustkit/pending-change"
PENDING_FORMAT = 1
#: a pending change holds a few targets roles: bound it like two full targets files
PENDING_MAX_BYTES = 2 * TARGETS_MAX_BYTES
_MAX_PROPOSERS = 64


@dataclass(frozen=True)
class TagChange:
    """One tag a pending change adds, moves or removes (digests as ``sha256:<hex>``)."""

    tag: str
    before: str | None
    after: str | None
    size: int | None = None

    @property
    def kind(self) -> str:
        if self.after is None:
            return "remove"
        return "add" if self.before is None else "change"


@dataclass(frozen=True)
class RoleStatus:
    """How far one role of a pending change got: valid signatures against its threshold."""

    role: str
    signatures: int
    threshold: int
    signers: tuple[str, ...]  # who signed (signer names, else short key ids)

    @property
    def complete(self) -> bool:
        return self.signatures >= self.threshold


@dataclass
class PendingView:
    """A pending change as checked against the published collection."""

    id: str
    gun: str
    created: datetime | None = None
    proposer: tuple[str, ...] = ()
    roles: list[RoleStatus] = field(default_factory=list)
    changes: list[TagChange] = field(default_factory=list)
    #: why it cannot be approved (stale, tampered, malformed); None when it can
    problem: str | None = None

    @property
    def ready(self) -> bool:
        """Every role has reached its threshold: the next approve publishes it."""
        return self.problem is None and bool(self.roles) and all(r.complete for r in self.roles)

    def shortfall(self) -> list[RoleStatus]:
        return [r for r in self.roles if not r.complete]

    def to_json(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Repository": self.gun,
            "Created": _iso(self.created) if self.created else None,
            "Proposer": list(self.proposer),
            "Roles": [
                {
                    "Role": r.role,
                    "Signatures": r.signatures,
                    "Threshold": r.threshold,
                    "Signers": list(r.signers),
                }
                for r in self.roles
            ],
            "Changes": [
                {"Tag": c.tag, "Change": c.kind, "Before": c.before, "After": c.after}
                for c in self.changes
            ],
            "Ready": self.ready,
            "Problem": self.problem,
        }


@dataclass
class PendingChange:
    """The stored form: new versions of delegated roles, partly signed (unverified)."""

    id: str
    gun: str
    created: datetime
    proposer: tuple[str, ...]
    base_targets: int
    base: dict[str, int]
    roles: dict[str, Metadata[Targets]]

    def to_bytes(self) -> bytes:
        doc = {
            "type": PENDING_TYPE,
            "format": PENDING_FORMAT,
            "id": self.id,
            "gun": self.gun,
            "created": _iso(self.created),
            "proposer": list(self.proposer),
            "base": {"targets": self.base_targets, "roles": dict(sorted(self.base.items()))},
            "roles": {name: md.to_dict() for name, md in sorted(self.roles.items())},
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, pending_id: str, gun: str) -> PendingChange:
        """Parse an untrusted entry; structure only (signatures are checked by ``examine``)."""
        try:
            doc = json.loads(raw)
            change = cls._from_doc(doc)
        except MalformedPendingError as exc:
            raise MalformedPendingError(
                f"pending change {pending_id} of {gun} is malformed: {exc}"
            ) from None
        except UntrustedError:
            raise
        except Exception as exc:  # anything a hostile file provokes in the parsers
            raise UntrustedError(
                f"pending change {pending_id} of {gun} is malformed: {exc}"
            ) from None
        if change.id != pending_id or change.gun != gun:
            raise UntrustedError(
                f"pending change {pending_id} of {gun} names another change or repository"
            )
        return change

    @classmethod
    def _from_doc(cls, doc: Any) -> PendingChange:
        if not isinstance(doc, dict) or doc.get("type") != PENDING_TYPE:
            raise MalformedPendingError("not a trustkit pending change")
        if doc.get("format") != PENDING_FORMAT:
            raise MalformedPendingError(f"unsupported format {doc.get('format')!r}")
        proposer = doc["proposer"]
        if not isinstance(proposer, list) or len(proposer) > _MAX_PROPOSERS:
            raise MalformedPendingError("bad proposer list")
        for name in proposer:
            if not isinstance(name, str) or len(name) > SIGNER_NAME_MAX:
                raise MalformedPendingError("bad proposer name")
            if not SIGNER_NAME_RE.match(name):
                raise MalformedPendingError(f"bad proposer name {name!r}")
        base = doc["base"]
        base_roles = base["roles"]
        roles = doc["roles"]
        if not isinstance(roles, dict) or not roles or len(roles) > MAX_DELEGATIONS:
            raise MalformedPendingError("bad role list")
        if not isinstance(base_roles, dict) or set(base_roles) != set(roles):
            raise MalformedPendingError("base versions do not match the roles")
        parsed: dict[str, Metadata[Targets]] = {}
        for name, body in roles.items():
            if not isinstance(name, str) or not name.startswith(SIGNER_PREFIX):
                raise MalformedPendingError(f"{name!r} is not a delegated role")
            md = Metadata.from_dict(copy.deepcopy(body))
            if not isinstance(md.signed, Targets):
                raise MalformedPendingError(f"{name} is not targets metadata")
            parsed[name] = md
        created = datetime.fromisoformat(_str(doc["created"]))
        if created.tzinfo is None:
            raise MalformedPendingError("created has no time zone")
        return cls(
            id=check_pending_id(_str(doc["id"])),
            gun=_str(doc["gun"]),
            created=created,
            proposer=tuple(proposer),
            base_targets=_version(base["targets"]),
            base={name: _version(v) for name, v in base_roles.items()},
            roles=parsed,
        )


@dataclass
class Approval:
    """What ``approve`` did."""

    view: PendingView
    signed_roles: list[str]  # roles this key store added signatures to
    published: bool
    #: every threshold is met but this key store cannot sign snapshot and timestamp
    needs_publisher: bool = False


# --- proposing ----------------------------------------------------------------------------
def propose(
    collection: Collection,
    keystore: KeyStore,
    expiries: Expiries,
    store: MetadataStore,
    *,
    now: datetime | None = None,
) -> PendingView:
    """Store ``collection``'s edited delegated roles as a pending change (under the writer lock),
    signed with the local keys, instead of publishing them."""
    now = now or utcnow()
    roles = collection.dirty_roles()
    top = [r for r in roles if r in TOP_LEVEL_ROLES]
    if top:
        raise BadInputError(f"only delegated roles can be co-signed, not {top}")
    before = {role: _targets_of(collection, role) for role in roles}
    signed = {role: collection.sign_proposal(role, keystore, expiries, now) for role in roles}
    change = PendingChange(
        id=secrets.token_hex(8),
        gun=collection.gun,
        created=now.replace(microsecond=0),
        proposer=_local_signer_names(collection, keystore),
        base_targets=collection.published_version(TARGETS),
        base={role: collection.published_version(role) for role in roles},
        roles={role: copy.deepcopy(md) for role, md in signed.items()},
    )
    view = _view(collection, change, before)
    store.pending.write(collection.gun, change.id, change.to_bytes())
    return view


# --- reading, approving, discarding --------------------------------------------------------
def list_pending(settings: Settings | Services, gun: str) -> list[PendingView]:
    """Every pending change of ``gun``, each checked against the published collection (a
    broken or stale entry is listed with its problem, never trusted)."""
    services = as_services(settings)
    store = services.store
    collection = Collection.load(store, gun)
    if collection is None:
        raise UnknownRepositoryError(f"no trust data for {gun}")
    views = []
    for pending_id in store.pending.list(gun):
        try:
            raw = store.pending.read(gun, pending_id, limit=PENDING_MAX_BYTES)
            change = PendingChange.from_bytes(raw, pending_id, gun)
        except (UntrustedError, BadInputError) as exc:
            views.append(PendingView(pending_id, gun, problem=str(exc)))
            continue
        try:
            views.append(examine(collection, change, now=services.clock()))
        except UntrustedError as exc:
            view = PendingView(pending_id, gun, change.created, change.proposer)
            view.problem = str(exc)
            views.append(view)
    return sorted(views, key=lambda v: (v.created or datetime.min.replace(tzinfo=UTC), v.id))


def show_pending(settings: Settings | Services, gun: str, pending_id: str) -> PendingView:
    """One pending change, checked (raises when it is stale, tampered or malformed)."""
    check_pending_id(pending_id)
    services = as_services(settings)
    store = services.store
    collection = Collection.load(store, gun)
    if collection is None:
        raise UnknownRepositoryError(f"no trust data for {gun}")
    return examine(collection, _read(store, gun, pending_id), now=services.clock())


def approve(
    settings: Settings | Services,
    gun: str,
    pending_id: str,
    *,
    keystore: KeyStore | None = None,
    expiries: Expiries | None = None,
) -> Approval:
    """Add this key store's signatures to a pending change; publish it once every role's
    threshold is met (and this key store can sign snapshot and timestamp).

    When another writer publishes first, the approval starts again from the new collection
    (where the change may now be stale, and is then refused as such)."""
    check_pending_id(pending_id)
    services = as_services(settings)
    expiries = expiries or expiries_for(services.settings)
    keys = keystore if keystore is not None else services.keys
    store = services.store
    if not store.exists(gun):
        raise UnknownRepositoryError(f"no trust data for {gun}")
    for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
        with store.writing(gun):  # two approvals queue where the store can lock
            collection = Collection.load(store, gun)
            if collection is None:
                raise UnknownRepositoryError(f"no trust data for {gun}")
            change = _read(store, gun, pending_id)
            before = {role: _targets_of(collection, role) for role in change.roles}
            now = services.clock()
            view = examine(collection, change, before, now=now)
            signed_roles = _add_signatures(collection, change, keys)
            signed_roles += _add_own_roles(collection, change, keys, expiries, before, now)
            view = _view(collection, change, before)
            if not signed_roles and not view.ready:
                _refuse_useless_approval(collection, change, keys, view)
            if not view.ready:
                store.pending.write(gun, pending_id, change.to_bytes())
                return Approval(view, signed_roles, published=False)
            if not collection.can_publish(keys):
                store.pending.write(gun, pending_id, change.to_bytes())
                return Approval(view, signed_roles, published=False, needs_publisher=True)
            for role, md in change.roles.items():
                collection.set_presigned(role, md)
            try:
                collection.publish(keys, expiries, store)
            except ConflictError:
                if attempt == MAX_WRITE_ATTEMPTS:
                    raise
                back_off(attempt)
                continue
            store.pending.remove(gun, pending_id)
            return Approval(view, signed_roles, published=True)
    raise AssertionError("unreachable")  # pragma: no cover


def discard(settings: Settings | Services, gun: str, pending_id: str) -> None:
    """Drop a pending change (nothing was published, so nothing else changes)."""
    check_pending_id(pending_id)
    store = as_services(settings).store
    if not store.exists(gun):
        raise UnknownRepositoryError(f"no trust data for {gun}")
    with store.writing(gun):
        if pending_id not in store.pending.list(gun):
            raise BadInputError(f"no pending change {pending_id} of {gun}")
        store.pending.remove(gun, pending_id)


# --- checks -------------------------------------------------------------------------------
def examine(
    collection: Collection,
    change: PendingChange,
    before: dict[str, dict[str, TargetFile]] | None = None,
    *,
    now: datetime | None = None,
) -> PendingView:
    """Check a pending change against the published collection; raise when it is stale or
    any signature on it does not verify with a key its role lists today."""
    gun, pid = collection.gun, change.id
    delegated = collection.delegated_roles()
    if change.base_targets != collection.published_version(TARGETS):
        raise StalePendingError(
            f"pending change {pid} of {gun} is stale: the signers of {gun} changed since it "
            "was proposed",
            hint="discard it and sign again",
        )
    now = now or utcnow()
    for role, md in change.roles.items():
        if role not in delegated and not _is_bin_of(collection, role):
            raise StalePendingError(f"pending change {pid}: {gun} no longer delegates to {role}")
        published = collection.published_version(role)
        if change.base[role] != published or md.signed.version != published + 1:
            raise StalePendingError(
                f"pending change {pid} of {gun} is stale: {role} was published meanwhile "
                f"(version {published}; the change builds on {change.base[role]})",
                hint="rebuild it by signing again, then discard the old one",
            )
        if md.signed.expires <= now:
            raise StalePendingError(
                f"pending change {pid}: its {role} expired on {_iso(md.signed.expires)}",
                hint="discard it and sign again",
            )
        if md.signed.delegations is not None or md.signed.unrecognized_fields:
            raise UntrustedError(f"pending change {pid}: {role} carries more than tags")
        _verify_signatures(collection, pid, role, md)
    return _view(collection, change, before)


def _verify_signatures(collection: Collection, pid: str, role: str, md: Metadata[Targets]) -> None:
    # a bin's keys are listed by its delegating role, every other role's by targets
    delegations = collection.delegator_targets(role).delegations
    assert delegations is not None
    listed = set(collection.keyids_of(role))
    if not md.signatures:
        raise SignatureError(f"pending change {pid}: {role} carries no signature")
    for keyid, signature in md.signatures.items():
        if keyid not in listed or keyid not in delegations.keys:
            raise SignatureError(
                f"pending change {pid}: {role} carries a signature by key {keyid[:12]}, "
                f"which is not a key of {role}"
            )
        try:
            delegations.keys[keyid].verify_signature(signature, md.signed_bytes)
        except UnverifiedSignatureError:
            raise SignatureError(
                f"pending change {pid}: the signature by key {keyid[:12]} on {role} does not "
                "verify: the change was altered after it was signed",
                hint="discard it",
            ) from None


def _view(
    collection: Collection,
    change: PendingChange,
    before: dict[str, dict[str, TargetFile]] | None = None,
) -> PendingView:
    if before is None:
        before = {role: _targets_of(collection, role) for role in change.roles}
    releases = layout_for(collection.delegations).release_roles(collection.delegations)
    roles = [
        RoleStatus(
            role=role,
            signatures=len(md.signatures),
            threshold=collection.threshold_of(role),
            signers=tuple(_who(collection, keyid) for keyid in md.signatures),
        )
        for role, md in sorted(change.roles.items(), key=lambda i: (i[0] not in releases, i[0]))
    ]
    changes: dict[str, TagChange] = {}
    for role, md in change.roles.items():
        for tag_change in _diff(before.get(role, {}), md.signed.targets):
            changes.setdefault(tag_change.tag, tag_change)
            if changes[tag_change.tag] != tag_change:
                raise UntrustedError(
                    f"pending change {change.id}: its roles disagree about tag {tag_change.tag}"
                )
    return PendingView(
        id=change.id,
        gun=change.gun,
        created=change.created,
        proposer=change.proposer,
        roles=roles,
        changes=[changes[t] for t in sorted(changes)],
    )


def _diff(before: dict[str, TargetFile], after: dict[str, TargetFile]) -> list[TagChange]:
    changes = []
    for tag in sorted(set(before) | set(after)):
        old, new = before.get(tag), after.get(tag)
        if old == new:
            continue
        # a new entry is exactly what trustkit signs: a sha256 digest and a size
        if new is not None and (
            set(new.hashes) != {"sha256"} or new.unrecognized_fields or new.path != tag
        ):
            raise UntrustedError(f"tag {tag} in a pending change is not a plain signed tag")
        changes.append(
            TagChange(
                tag,
                _digest(old),
                _digest(new),
                None if new is None else int(new.length),
            )
        )
    return changes


# --- approving ----------------------------------------------------------------------------
def _add_signatures(collection: Collection, change: PendingChange, keys: KeyStore) -> list[str]:
    signed = []
    for role, md in change.roles.items():
        held = local_keyids(keys, collection.keyids_of(role))
        missing = [k for k in held if k not in md.signatures]
        for keyid in missing:
            md.sign(keys.signer(keyid), append=True)
        if missing:
            signed.append(role)
    return signed


def _add_own_roles(
    collection: Collection,
    change: PendingChange,
    keys: KeyStore,
    expiries: Expiries,
    before: dict[str, dict[str, TargetFile]],
    now: datetime,
) -> list[str]:
    """An approver of a release role also records the tags in their own signer role, as
    ``sign`` does, so the published tag names every signer who vouched for it. Which roles
    those are is the layout's decision."""
    layout = layout_for(collection.delegations)
    # record role -> tag -> the entry to record (None: the tag is revoked)
    records: dict[str, dict[str, TargetFile | None]] = {}
    for release in layout.release_roles(collection.delegations):
        md = change.roles.get(release)
        if md is None:
            continue
        for tag_change in _diff(before.get(release, {}), md.signed.targets):
            entry = md.signed.targets.get(tag_change.tag)
            for role in layout.record_roles(collection.delegations, tag_change.tag).values():
                if role in change.roles:
                    continue
                if len(local_keyids(keys, collection.keyids_of(role))) < collection.threshold_of(
                    role
                ):
                    continue
                records.setdefault(role, {})[tag_change.tag] = entry
    added = []
    for role, tags in records.items():
        before[role] = _targets_of(collection, role)
        edited = collection.edit_role(role)
        for tag, entry in tags.items():
            if entry is None:
                edited.targets.pop(tag, None)
            else:
                edited.targets[tag] = copy.deepcopy(entry)
        signed = collection.sign_proposal(role, keys, expiries, now)
        change.roles[role] = copy.deepcopy(signed)
        change.base[role] = collection.published_version(role)
        added.append(role)
    return added


def _refuse_useless_approval(
    collection: Collection, change: PendingChange, keys: KeyStore, view: PendingView
) -> None:
    short = ", ".join(f"{r.role} ({r.signatures} of {r.threshold})" for r in view.shortfall())
    mine = [r for r in change.roles if local_keyids(keys, collection.keyids_of(r))]
    if mine:
        raise BadInputError(
            f"you already signed pending change {change.id} of {collection.gun}; it still "
            f"needs signatures from other signers: {short}"
        )
    raise KeyStoreError(
        f"you are not a signer of {short} of {collection.gun}: no key of those roles is in "
        "this key store",
        hint="only a signer listed in 'trustkit trust inspect' can approve",
    )


# --- helpers ------------------------------------------------------------------------------
def _read(store: MetadataStore, gun: str, pending_id: str) -> PendingChange:
    from trustkit.stores.interface import PendingNotFoundError

    try:
        raw = store.pending.read(gun, pending_id, limit=PENDING_MAX_BYTES)
    except PendingNotFoundError:
        raise BadInputError(
            f"no pending change {pending_id} of {gun}",
            hint=f"list them with 'trustkit trust pending {gun}'",
        ) from None
    return PendingChange.from_bytes(raw, pending_id, gun)


def _targets_of(collection: Collection, role: str) -> dict[str, TargetFile]:
    return collection.published_tags(role)


def _local_signer_names(collection: Collection, keys: KeyStore) -> tuple[str, ...]:
    signers = layout_for(collection.delegations).signer_roles(collection.delegations)
    return tuple(
        name
        for name, role in signers.items()
        if local_keyids(keys, _signer_keyids(collection, role))
    )


def _who(collection: Collection, keyid: str) -> str:
    signers = layout_for(collection.delegations).signer_roles(collection.delegations)
    names = [name for name, role in signers.items() if keyid in _signer_keyids(collection, role)]
    return "/".join(names) if names else keyid[:12]


def _signer_keyids(collection: Collection, role: str) -> list[str]:
    """A signer's keys: its role's, or in a binned collection its bins' (the delegating role
    itself carries the repository key)."""
    layout = layout_for(collection.delegations)
    if isinstance(layout, BinsLayout):
        return collection.keyids_of(bin_for(role, layout.bits, ""))
    return list(collection.delegated_roles()[role].keyids)


def _is_bin_of(collection: Collection, role: str) -> bool:
    """Whether ``role`` is a bin its delegating role (as now edited) still delegates to."""
    try:
        collection.delegation_of(role)
    except KeyError:
        return False
    return is_bin(role)


def _digest(target: TargetFile | None) -> str | None:
    if target is None:
        return None
    sha = target.hashes.get("sha256")
    return f"sha256:{sha}" if sha else None


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _str(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 512:
        raise MalformedPendingError("expected a short string")
    return value


def _version(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 53:
        raise MalformedPendingError("bad version number")
    return value
