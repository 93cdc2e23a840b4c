"""Changing a Notary v1 collection on its notary-server, as the notary CLI does.

A change starts from the whole collection verified (``reader.verified``), edits copies of the
targets roles, signs each changed role with the keys this key store holds (Notary key ids,
raw r||s ECDSA), signs snapshot only when this key store holds the snapshot key, and publishes
in one multipart POST; the server checks everything against what it holds and signs a new
timestamp (and snapshot, when it manages that key). A concurrent publish is retried from a fresh
read. Keys are any securesystemslib ``Signer`` (files, HSM, KMS), so the key ids that count are
Notary's: the sha256 of the key's Notary JSON (``notary_key``).
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from trustkit.errors import BadInputError, ConflictError, KeyStoreError, UnknownRepositoryError
from trustkit.notary import codec
from trustkit.notary.verifier import RELEASES, VerifiedCollection
from trustkit.stores.interface import MetadataFile

if TYPE_CHECKING:
    from trustkit.keys import KeyRecord, KeyStore
    from trustkit.keys._sslib import Key
    from trustkit.services import Services
    from trustkit.stores.notary import NotaryServerStore

T = TypeVar("T")
#: writers racing on one collection: each conflict re-reads and re-applies the change (four
#: writers at one moment exhausted 8 attempts about once in five runs; backing off up to a
#: second each, 16 leave a writer that keeps losing for ~10 s before it reports the conflict)
ATTEMPTS = 16
#: notary's defaults: targets and delegations three years, snapshot three years
TARGETS_LIFETIME = timedelta(days=3 * 365)
SNAPSHOT_LIFETIME = timedelta(days=3 * 365)
#: notary's root metadata and root certificates: ten years
ROOT_LIFETIME = timedelta(days=10 * 365)
_SIGNER_PREFIX = "targets/"


def notary_key(key: Key) -> dict[str, Any]:
    """A securesystemslib public key as Notary writes it (keytype ``ecdsa`` + base64 DER SPKI,
    or ``ed25519`` + base64 raw bytes)."""
    public = key.keyval.get("public")
    if key.keytype == "ed25519" and isinstance(public, str):
        raw = bytes.fromhex(public)
        return {"keytype": "ed25519", "keyval": {"private": None, "public": _b64(raw)}}
    if key.keytype == "ecdsa" and isinstance(public, str):
        loaded = serialization.load_pem_public_key(public.encode())
        der = loaded.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {"keytype": "ecdsa", "keyval": {"private": None, "public": _b64(der)}}
    raise BadInputError(f"a {key.keytype} key cannot sign Notary metadata (ecdsa or ed25519)")


def notary_keyid(key: Key) -> str:
    """The key id notary, ``docker trust inspect`` and ``notary delegation list`` show."""
    doc = notary_key(key)
    return codec.key_id(doc["keytype"], doc["keyval"]["public"])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _raw_signature(record: KeyRecord, hex_signature: str) -> bytes:
    """securesystemslib's ECDSA signature is hex DER; Notary's is raw r||s."""
    data = bytes.fromhex(hex_signature)
    if record.keytype != "ecdsa":
        return data
    r, s = decode_dss_signature(data)
    size = 32 if "256" in record.scheme else 48 if "384" in record.scheme else 66
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


@dataclass
class HeldKeys:
    """This key store's keys by their Notary key id."""

    keys: KeyStore
    by_notary_id: dict[str, KeyRecord] = field(default_factory=dict)

    @classmethod
    def of(cls, keys: KeyStore) -> HeldKeys:
        held = cls(keys)
        for record in keys.records():
            try:
                held.by_notary_id[notary_keyid(record.public_key)] = record
            except BadInputError:
                continue
        return held

    def holding(self, keyids: Iterable[str]) -> list[str]:
        return [k for k in keyids if k in self.by_notary_id and self._has_private(k)]

    def learn_certificates(self, keys: Iterable[codec.NotaryKey]) -> None:
        """Root keys are certificates (``ecdsa-x509``): a held key signs for the certificate
        of its public key (notary's "canonical" root key id is the plain key's)."""
        for key in keys:
            if key.certificate is None or key.keyid in self.by_notary_id:
                continue
            plain = key.certificate.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            record = self.by_notary_id.get(codec.key_id("ecdsa", _b64(plain)))
            if record is not None:
                self.by_notary_id[key.keyid] = record

    def _has_private(self, notary_id: str) -> bool:
        return self.keys.has_private(self.by_notary_id[notary_id].keyid)

    def sign(self, notary_id: str, message: bytes) -> dict[str, str]:
        record = self.by_notary_id[notary_id]
        signature = self.keys.signer(record.keyid).sign(message)
        method = "ecdsa" if record.keytype == "ecdsa" else "eddsa"
        raw = _raw_signature(record, signature.signature)
        return {"keyid": notary_id, "method": method, "sig": _b64(raw)}


@dataclass
class Draft:
    """Editable copies of a verified collection's targets roles."""

    collection: VerifiedCollection
    now: datetime
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    #: a new root (key rotation): signed by the current root keys, published with the rest
    root: dict[str, Any] | None = None

    @property
    def gun(self) -> str:
        return self.collection.gun

    def current(self, role: str) -> dict[str, Any] | None:
        if role in self.roles:
            return self.roles[role]
        published = self.collection.targets.get(role)
        return None if published is None else published.signed

    def edit(self, role: str) -> dict[str, Any]:
        if role not in self.roles:
            published = self.collection.targets.get(role)
            if published is not None:
                self.roles[role] = copy.deepcopy(published.signed)
            else:  # delegated but never published: notary starts it at version 1
                self.roles[role] = {
                    "_type": "Targets",
                    "delegations": {"keys": {}, "roles": []},
                    "expires": "",
                    "targets": {},
                    "version": 0,
                }
        if role not in self.changed:
            self.changed.append(role)
        return self.roles[role]

    def delegations(self) -> dict[str, Any]:
        targets = self.edit("targets")
        found = targets.setdefault("delegations", {"keys": {}, "roles": []})
        found.setdefault("keys", {})
        found.setdefault("roles", [])
        assert isinstance(found, dict)
        return found

    def delegated_role(self, name: str) -> dict[str, Any] | None:
        parent = self.current(name.rpartition("/")[0])
        if parent is None:
            return None
        for role in (parent.get("delegations") or {}).get("roles", []):
            if role.get("name") == name:
                return dict(role)
        return None

    def signer_names(self) -> list[str]:
        roles = (self.current("targets") or {}).get("delegations", {}).get("roles", [])
        return [
            r["name"][len(_SIGNER_PREFIX) :]
            for r in roles
            if r.get("name", "").count("/") == 1 and r["name"] != RELEASES
        ]

    # --- signing -------------------------------------------------------------------------
    def edit_root(self) -> dict[str, Any]:
        if self.root is None:
            self.root = copy.deepcopy(self.collection.root.signed)
        return self.root

    def _role_keys(self, role: str) -> tuple[list[str], int]:
        if role == "targets":
            if self.root is not None:
                top = self.root["roles"]["targets"]
                return list(top["keyids"]), int(top["threshold"])
            targets = self.collection.roles["targets"]
            return list(targets.keyids), targets.threshold
        delegated = self.delegated_role(role)
        if delegated is None:
            raise BadInputError(f"{role} is not delegated in {self.gun}")
        return list(delegated["keyids"]), int(delegated["threshold"])

    def _signed_root(self, held: HeldKeys) -> MetadataFile:
        """The new root, signed as notary signs a rotation: by a threshold of the current root
        keys (clients that trust the old root follow it) and of the new root's own."""
        assert self.root is not None
        old_role = self.collection.roles["root"]
        new_top = self.root["roles"]["root"]
        new_role = codec.Role("root", tuple(new_top["keyids"]), int(new_top["threshold"]))
        new_keys = [
            codec.parse_key(k, self.root["keys"][k], f"new root of {self.gun}")
            for k in new_role.keyids
            if k in self.root["keys"]
        ]
        held.learn_certificates([*self.collection.root.keys.values(), *new_keys])
        old_signing = held.holding(old_role.keyids)
        if len(old_signing) < old_role.threshold:
            raise KeyStoreError(
                f"changing the root of {self.gun} needs {old_role.threshold} of its root "
                f"keys; this key store holds {len(old_signing)}",
                hint="import the root key: trustkit trust key load "
                "~/.docker/trust/private/<root key>.key",
            )
        new_signing = held.holding(new_role.keyids)
        if len(new_signing) < new_role.threshold:
            raise KeyStoreError(
                f"the new root of {self.gun} needs {new_role.threshold} signatures by its own "
                f"root keys; this key store holds {len(new_signing)}"
            )
        self.root["version"] = int(self.root["version"]) + 1
        self.root["expires"] = codec.format_time(self.now + ROOT_LIFETIME)
        message = codec.canonical(self.root)
        signing = sorted(set(old_signing) | set(new_signing))
        data = serialise(self.root, [held.sign(k, message) for k in signing])
        return MetadataFile("root", self.root["version"], data)

    def signed_files(self, held: HeldKeys) -> list[MetadataFile]:
        files: list[MetadataFile] = []
        new_meta: dict[str, dict[str, Any]] = {}
        if self.root is not None:
            files.append(self._signed_root(held))
            new_meta["root"] = _meta(files[-1].data)
        # children before parents does not matter: the snapshot lists them all at once
        for role in self.changed:
            signed = self.roles[role]
            signed["version"] = int(signed["version"]) + 1
            signed["expires"] = codec.format_time(self.now + TARGETS_LIFETIME)
            keyids, threshold = self._role_keys(role)
            signing = held.holding(keyids)
            if len(signing) < threshold:
                holder = "repository (targets)" if role == "targets" else role
                raise KeyStoreError(
                    f"signing {role} of {self.gun} needs {threshold} of its keys; this key "
                    f"store holds {len(signing)}",
                    hint=f"import the {holder} key: trustkit trust key load FILE --role "
                    f"{'targets' if role == 'targets' else 'delegation'}",
                )
            message = codec.canonical(signed)
            data = serialise(signed, [held.sign(k, message) for k in signing])
            files.append(MetadataFile(role, signed["version"], data))
            new_meta[role] = _meta(data)
        if self.root is not None:  # the snapshot key the new root names
            top = self.root["roles"]["snapshot"]
            snapshot_keyids, snapshot_threshold = list(top["keyids"]), int(top["threshold"])
        else:
            current = self.collection.roles["snapshot"]
            snapshot_keyids, snapshot_threshold = list(current.keyids), current.threshold
        signing = held.holding(snapshot_keyids)
        if len(signing) >= snapshot_threshold:  # else notary-server signs it
            snap = copy.deepcopy(self.collection.snapshot.signed)
            snap["meta"].update(new_meta)
            snap["version"] = int(snap["version"]) + 1
            snap["expires"] = codec.format_time(self.now + SNAPSHOT_LIFETIME)
            message = codec.canonical(snap)
            data = serialise(snap, [held.sign(k, message) for k in signing])
            files.append(MetadataFile("snapshot", snap["version"], data))
        return files


def serialise(signed: dict[str, Any], signatures: list[dict[str, str]]) -> bytes:
    """The bytes notary-server would write itself: it hashes its own Go re-serialisation
    (``signed`` before ``signatures``, struct order) when it generates the snapshot, so any
    other layout leaves a snapshot that names other bytes than the ones it serves."""
    return (
        b'{"signed":'
        + codec.canonical(signed)
        + b',"signatures":'
        + codec.canonical(signatures)
        + b"}"
    )


def _meta(data: bytes) -> dict[str, Any]:
    import hashlib

    return {
        "hashes": {
            "sha256": _b64(hashlib.sha256(data).digest()),
            "sha512": _b64(hashlib.sha512(data).digest()),
        },
        "length": len(data),
    }


def change(
    services: Services,
    gun: str,
    keys: KeyStore,
    edit: Callable[[Draft], T],
    *,
    create: bool = False,
) -> T:
    """Apply ``edit`` to a freshly verified copy of ``gun`` and publish it; retried from a new
    read when another writer got in first. With ``create``, a collection the server does not
    know yet is created first, as ``docker trust sign`` / ``docker trust signer add`` do."""
    from trustkit.notary.reader import verified
    from trustkit.stores.notary import notary_store_for

    store = notary_store_for(services.store, gun)
    if store is None:
        raise BadInputError(f"the trust data of {gun} is not on a notary-server")
    held = HeldKeys.of(keys)
    for attempt in range(1, ATTEMPTS + 1):
        generation = store.generation(gun)
        if generation is None and create:
            try:
                create_collection(services, store, gun, keys)
            except ConflictError:
                if store.generation(gun) is None:  # not another writer's: ours was refused
                    raise
            held = HeldKeys.of(keys)  # the new root and targets keys
            generation = store.generation(gun)
        try:
            collection = verified(services, gun, store=store)
        except UnknownRepositoryError as exc:
            raise UnknownRepositoryError(
                str(exc),
                hint=f"create it with 'trustkit trust signer add --key KEY.pub NAME {gun}' or "
                f"'trustkit trust sign {gun}:TAG'",
            ) from None
        draft = Draft(collection, services.clock().replace(microsecond=0))
        result = edit(draft)
        if not draft.changed and draft.root is None:
            return result
        files = draft.signed_files(held)
        try:
            store.publish(gun, files, expected=generation)
        except ConflictError:
            if attempt == ATTEMPTS:
                raise
            _back_off(attempt)
            continue
        return result
    raise AssertionError("unreachable")


def _back_off(attempt: int) -> None:
    """Writers that lost a race spread out before reading again (jittered, growing)."""
    import random
    import time

    time.sleep(random.uniform(0, min(1.0, 0.02 * 2**attempt)))  # jitter, not a secret


def create_collection(
    services: Services, store: NotaryServerStore, gun: str, keys: KeyStore
) -> None:
    """A new collection as ``docker trust`` initialises one: root and repository (targets)
    keys made in this key store, the root key published as a certificate naming the GUN,
    snapshot and timestamp keys the server's (docker's default); root v1 and an empty
    targets v1 in one publish, the server signing snapshot and timestamp."""
    from trustkit.notary.certificate import certificate_key, root_certificate

    now = services.clock().replace(microsecond=0)
    root_key = keys.generate(role="root", gun=gun)
    targets_key = keys.generate(role="targets", gun=gun)
    root_doc = certificate_key(root_certificate(keys, root_key, gun, now, ROOT_LIFETIME))
    docs: dict[str, dict[str, Any]] = {
        "root": root_doc,
        "targets": notary_key(targets_key.public_key),
        "snapshot": json_key(store.server_key(gun, "snapshot")),
        "timestamp": json_key(store.server_key(gun, "timestamp")),
    }
    ids = {role: codec.key_id(d["keytype"], d["keyval"]["public"]) for role, d in docs.items()}
    root = {
        "_type": "Root",
        "consistent_snapshot": False,
        "expires": codec.format_time(now + ROOT_LIFETIME),
        "keys": {ids[role]: doc for role, doc in docs.items()},
        "roles": {role: {"keyids": [ids[role]], "threshold": 1} for role in docs},
        "version": 1,
    }
    targets = {
        "_type": "Targets",
        "delegations": {"keys": {}, "roles": []},
        "expires": codec.format_time(now + TARGETS_LIFETIME),
        "targets": {},
        "version": 1,
    }
    held = HeldKeys.of(keys)
    held.learn_certificates([codec.parse_key(ids["root"], root_doc, f"new root of {gun}")])
    files = [
        MetadataFile("root", 1, serialise(root, [held.sign(ids["root"], codec.canonical(root))])),
        MetadataFile(
            "targets",
            1,
            serialise(targets, [held.sign(ids["targets"], codec.canonical(targets))]),
        ),
    ]
    store.publish(gun, files, expected=None)


# --- the operations ---------------------------------------------------------------------
def signable_roles(draft: Draft, held: HeldKeys) -> list[str]:
    """Where a tag goes, as docker: the release role and this signer's own roles when the key
    store holds one of their keys; the targets role only when there are no delegations."""
    roles: list[str] = []
    delegated = (draft.current("targets") or {}).get("delegations", {}).get("roles", [])
    for role in delegated:
        name = role.get("name", "")
        if name.count("/") == 1 and held.holding(role.get("keyids", [])):
            roles.append(name)
    if not delegated and held.holding(draft.collection.roles["targets"].keyids):
        roles.append("targets")
    return sorted(roles, key=lambda r: (r != RELEASES, r))


def sign_tags(
    services: Services, gun: str, keys: KeyStore, tags: dict[str, tuple[str, int]]
) -> list[str]:

    def edit(draft: Draft) -> list[str]:
        # read per attempt: creating the collection adds its repository key to the key store
        roles = signable_roles(draft, HeldKeys.of(keys))
        if not roles:
            raise KeyStoreError(
                f"no key in this key store may sign tags of {gun}",
                hint=f"import your signer key (trustkit trust key load FILE) or ask the "
                f"owner of {gun} to run: trustkit trust signer add --key KEY.pub NAME {gun}",
            )
        for tag, (digest, size) in tags.items():
            hex_digest = digest.removeprefix("sha256:")
            entry = {"hashes": {"sha256": _b64(bytes.fromhex(hex_digest))}, "length": size}
            for role in roles:
                draft.edit(role)["targets"][tag] = entry
        return roles

    return change(services, gun, keys, edit, create=True)


def revoke(services: Services, gun: str, keys: KeyStore, tag: str | None) -> list[str]:
    held = HeldKeys.of(keys)

    def edit(draft: Draft) -> list[str]:
        changed: list[str] = []
        for role in signable_roles(draft, held):
            current = draft.current(role)
            recorded = (current or {}).get("targets", {})
            names = list(recorded) if tag is None else [tag]
            if any(t in recorded for t in names):
                edited = draft.edit(role)
                for name in names:
                    edited["targets"].pop(name, None)
                changed.append(role)
        if not changed:
            what = "no tags" if tag is None else f"tag {tag}"
            raise BadInputError(f"{what} of {gun} signed by a role you can sign")
        return changed

    return change(services, gun, keys, edit)


def add_signer(
    services: Services,
    gun: str,
    keys: KeyStore,
    name: str,
    public_keys: list[Key],
    *,
    threshold: int | None = None,
) -> list[str]:
    """``docker trust signer add``: the signer's keys go into ``targets/<name>`` (with
    ``threshold``, default 1) and ``targets/releases`` (created with all paths and threshold 1
    when missing)."""
    if threshold is not None and not 1 <= threshold <= len(public_keys):
        raise BadInputError(f"threshold {threshold} needs between 1 and {len(public_keys)} keys")
    docs = [notary_key(k) for k in public_keys]
    ids = [codec.key_id(d["keytype"], d["keyval"]["public"]) for d in docs]

    def edit(draft: Draft) -> list[str]:
        warnings: list[str] = []
        delegations = draft.delegations()
        for keyid, doc in zip(ids, docs, strict=True):
            delegations["keys"][keyid] = doc
        for role_name in (RELEASES, f"{_SIGNER_PREFIX}{name}"):
            role = next((r for r in delegations["roles"] if r["name"] == role_name), None)
            own = role_name != RELEASES
            if role is None:
                wanted = threshold if own and threshold else 1
                delegations["roles"].append(
                    {"keyids": list(ids), "name": role_name, "paths": [""], "threshold": wanted}
                )
                continue
            if own and threshold:
                role["threshold"] = threshold
            for keyid in ids:
                if keyid in role["keyids"]:
                    warnings.append(f"key {keyid[:12]} already belongs to {role_name}")
                else:
                    role["keyids"].append(keyid)
        return warnings

    return change(services, gun, keys, edit, create=True)


def remove_signer(
    services: Services, gun: str, keys: KeyStore, name: str, *, force: bool = False
) -> tuple[list[str], list[tuple[str, str, int]]]:
    """``docker trust signer remove``: drop ``targets/<name>`` and its keys from releases.

    Releases is re-signed by a remaining key this store holds, keeping only the tags a
    remaining signer's own role records; without such a key the removal is refused (the
    release role would be left without valid signatures) unless ``force``.
    Returns (warnings, the tags no longer trusted as (tag, digest, size))."""
    role_name = f"{_SIGNER_PREFIX}{name}"
    held = HeldKeys.of(keys)

    def edit(draft: Draft) -> tuple[list[str], list[tuple[str, str, int]]]:
        if name not in draft.signer_names():
            raise BadInputError(f"{name} is not a signer of {gun}")
        delegations = draft.delegations()
        removed = next(r for r in delegations["roles"] if r["name"] == role_name)
        delegations["roles"].remove(removed)
        still_used = {k for r in delegations["roles"] if r["name"] != RELEASES for k in r["keyids"]}
        gone = [k for k in removed["keyids"] if k not in still_used]
        untrusted: list[tuple[str, str, int]] = []
        releases = next((r for r in delegations["roles"] if r["name"] == RELEASES), None)
        if releases is not None:
            releases["keyids"] = [k for k in releases["keyids"] if k not in gone]
            published = draft.current(RELEASES)
            if not releases["keyids"]:
                # the last signer: no key can sign releases any more, so it goes (its tags
                # lose their trust), as the role would otherwise fail every client's check
                delegations["roles"].remove(releases)
                untrusted.extend(
                    (tag, _digest_of(entry), int(entry.get("length", 0)))
                    for tag, entry in ((published or {}).get("targets") or {}).items()
                )
            elif published is not None:
                remaining = held.holding(releases["keyids"])
                if not remaining and not force:
                    raise BadInputError(
                        f"removing {name} leaves {RELEASES} of {gun} without a valid signature "
                        "this key store can make",
                        hint="run it where a remaining signer's key is imported, or pass --force",
                    )
                vouched = {
                    tag: entry
                    for r in delegations["roles"]
                    if r["name"] not in (RELEASES, role_name)
                    for tag, entry in (
                        (draft.current(r["name"]) or {}).get("targets") or {}
                    ).items()
                }
                edited = draft.edit(RELEASES) if remaining else None
                for tag, entry in list(published.get("targets", {}).items()):
                    if vouched.get(tag) != entry:
                        untrusted.append((tag, _digest_of(entry), int(entry.get("length", 0))))
                        if edited is not None:
                            edited["targets"].pop(tag, None)
        for keyid in gone:
            if not any(keyid in r["keyids"] for r in delegations["roles"]):
                delegations["keys"].pop(keyid, None)
        return [], untrusted

    return change(services, gun, keys, edit)


def _digest_of(entry: dict[str, Any]) -> str:
    sha256 = (entry.get("hashes") or {}).get("sha256", "")
    try:
        return "sha256:" + base64.b64decode(sha256).hex()
    except ValueError:
        return "sha256:?"


def rotate_key(
    services: Services, gun: str, keys: KeyStore, role: str, *, key: KeyRecord | None = None
) -> KeyRecord:
    """``notary key rotate GUN ROLE``: a new root naming the new key, signed by the current
    root keys (``trust key load`` of the docker root key) and, for ``root``, by the new root
    key too (its certificate names the GUN). ``targets`` and ``root`` get a key from this key
    store (or ``key``); ``timestamp``, and ``snapshot`` when the server holds it, are rotated
    by the server (``-r``); a snapshot key held here is replaced by a new one here.
    Returns the new key (for the server's, its public half only)."""
    if role not in ("root", "targets", "snapshot", "timestamp"):
        raise BadInputError(f"cannot rotate {role!r}: choose root, targets, snapshot or timestamp")
    from trustkit.notary.reader import verified
    from trustkit.stores.notary import notary_store_for

    store = notary_store_for(services.store, gun)
    if store is None:
        raise BadInputError(f"the trust data of {gun} is not on a notary-server")
    now = services.clock().replace(microsecond=0)
    collection = verified(services, gun, store=store)
    held = HeldKeys.of(keys)
    held.learn_certificates(collection.root.keys.values())
    root_role = collection.roles["root"]
    if len(held.holding(root_role.keyids)) < root_role.threshold:  # before the server acts
        raise KeyStoreError(
            f"rotating the {role} key of {gun} needs its root key; this key store holds none",
            hint="import the root key: trustkit trust key load "
            "~/.docker/trust/private/<root key>.key",
        )
    held_here = held.holding(collection.roles[role].keyids)
    if role == "timestamp" and key is not None:
        raise BadInputError(
            f"the timestamp of {gun} is signed by its notary-server, with the server's own key",
            hint=f"rotate it without --key: trustkit trust key rotate {gun} --role timestamp",
        )
    on_server = role == "timestamp" or (role == "snapshot" and not held_here and key is None)
    if on_server:
        doc = json_key(store.rotate_server_key(gun, role))
        new = server_key_record(doc, role, gun, now)
    else:
        new = key if key is not None else keys.generate(role=role, gun=gun)
        if role == "root":
            from trustkit.notary.certificate import certificate_key, root_certificate

            doc = certificate_key(root_certificate(keys, new, gun, now, ROOT_LIFETIME))
        else:
            doc = notary_key(new.public_key)
    keyid = codec.key_id(doc["keytype"], doc["keyval"]["public"])

    def edit(draft: Draft) -> None:
        root = draft.edit_root()
        for old in root["roles"][role]["keyids"]:
            if not any(old in r["keyids"] for n, r in root["roles"].items() if n != role):
                root["keys"].pop(old, None)
        root["keys"][keyid] = doc
        root["roles"][role] = {"keyids": [keyid], "threshold": 1}
        if role == "targets":
            draft.edit("targets")  # re-signed with the new key

    change(services, gun, keys, edit)
    return new


def server_key_record(doc: dict[str, Any], role: str, gun: str, now: datetime) -> KeyRecord:
    """A key the server holds, described like the key store's records (public half only)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from trustkit.keys import KeyRecord
    from trustkit.keys.pem import sslib_key

    raw = base64.b64decode(doc["keyval"]["public"])
    try:
        public: Any = (
            ed25519.Ed25519PublicKey.from_public_bytes(raw)
            if doc["keytype"] == "ed25519"
            else serialization.load_der_public_key(raw)
        )
    except ValueError:
        raise BadInputError("the notary-server sent a malformed key") from None
    key = sslib_key(public, what=f"the server's {role} key")
    return KeyRecord(key.keyid, role, gun, None, key, now)


def json_key(data: bytes) -> dict[str, Any]:
    """A key as the server hands it out (``GET .../snapshot.key``)."""
    from trustkit._json import decode_untrusted_json

    doc = decode_untrusted_json(data, what="the server's key")
    keytype = doc.get("keytype") if isinstance(doc, dict) else None
    public = (doc.get("keyval") or {}).get("public") if isinstance(doc, dict) else None
    if keytype not in codec.KEY_TYPES or not isinstance(public, str):
        raise BadInputError("the notary-server sent a malformed key")
    return {"keytype": keytype, "keyval": {"private": None, "public": public}}


def planned_signer_identities(
    services: Services, gun: str, keys: KeyStore
) -> list[tuple[str, str, tuple[str, ...]]]:
    """(signer name, role, Notary key ids held here) a ``sign_tags`` would sign as, without
    signing: the push path judges ``require_signed`` policies first. Raises as ``sign_tags``
    when no key here could sign."""
    from trustkit.notary.reader import verified
    from trustkit.stores.notary import notary_store_for

    store = notary_store_for(services.store, gun)
    if store is not None and store.generation(gun) is None:
        return []  # the first sign creates the collection: the repository key only
    held = HeldKeys.of(keys)
    draft = Draft(verified(services, gun, store=store), services.clock())
    roles = signable_roles(draft, held)
    if not roles:
        raise KeyStoreError(
            f"no key in this key store may sign tags of {gun}",
            hint="import your signer key: trustkit trust key load FILE",
        )
    found = []
    for role in roles:
        if role in ("targets", RELEASES):
            continue
        keyids, _ = draft._role_keys(role)
        found.append((role[len(_SIGNER_PREFIX) :], role, tuple(sorted(held.holding(keyids)))))
    return found


def renew(services: Services, gun: str, keys: KeyStore, roles: Iterable[str]) -> list[str]:
    """New versions with fresh expiry dates of the named targets roles and root (all the
    targets roles this key store can sign when none is named); the server renews snapshot and
    timestamp itself."""
    held = HeldKeys.of(keys)

    def edit(draft: Draft) -> list[str]:
        named = list(roles)
        wanted = named or [
            r for r in draft.collection.targets if held.holding(draft._role_keys(r)[0])
        ]
        for role in wanted:
            if role == "root":  # a new version, ten more years, signed by the root key
                draft.edit_root()
                continue
            if role in ("snapshot", "timestamp"):
                raise BadInputError(
                    f"the {role} of a notary-server collection is renewed by the server"
                )
            if draft.current(role) is None:
                raise BadInputError(f"{gun} has no published role {role!r}")
            draft.edit(role)
        if not wanted:
            raise KeyStoreError(f"no key in this key store signs a role of {gun}")
        return wanted

    return change(services, gun, keys, edit)
