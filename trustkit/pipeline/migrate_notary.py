"""``trust migrate --from https://notary:4443``: a Notary v1 collection into a TUF store.

Notary metadata cannot be copied (it is not TUF 1.0), so the collection is rebuilt:

1. the whole Notary collection is verified first (``trustkit.notary``; this machine's Notary
   client cache guards against rollback) and nothing unverifiable is carried;
2. the destination collection gets a new TUF root, targets, snapshot and timestamp key made in
   this key store (docs/adr/0010-notary.md: the Notary root key is not reused), and one signer
   per Notary signer (``targets/<name>``) with the signer's own public keys and threshold, so
   people keep signing with the keys they have;
3. each tag is signed into the destination by the signers that signed it in Notary, with their
   keys (imported into this key store: ``trustkit trust key load``); a tag whose signers' keys
   are not here is reported, not signed by someone else;
4. a fresh client verifies every carried tag from the destination (same digest and size).

Running it again signs only what is still missing, so it is idempotent; ``--dry-run`` verifies
the Notary side and reports what would be carried.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustkit.errors import BadInputError, KeyStoreError, UntrustedError
from trustkit.keys import KeyStore
from trustkit.notary.codec import NotaryKey
from trustkit.notary.verifier import RELEASES, REPO_ADMIN, SignedTag, VerifiedCollection
from trustkit.services import Services
from trustkit.stores.interface import MetadataStore

_SIGNER_PREFIX = "targets/"


@dataclass
class NotaryMigrationReport:
    gun: str
    source: str
    destination: str
    action: str  # "copied", "would copy", "unchanged"
    signers: dict[str, dict[str, Any]] = field(default_factory=dict)
    carried: dict[str, dict[str, Any]] = field(default_factory=dict)  # tag -> digest, size, by
    not_carried: dict[str, str] = field(default_factory=dict)  # tag or role -> why
    notary_root_version: int = 0

    # the fields ``trust migrate``'s text line prints for store-to-store copies
    @property
    def tags(self) -> dict[str, str]:
        return {t: c["digest"] for t, c in self.carried.items()}

    @property
    def root_version(self) -> int:
        return self.notary_root_version

    @property
    def timestamp_version(self) -> int:
        return 0

    @property
    def files(self) -> int:
        return 0

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.gun,
            "source": self.source,
            "destination": self.destination,
            "action": self.action,
            "notary_root_version": self.notary_root_version,
            "signers": self.signers,
            "carried": self.carried,
            "not_carried": self.not_carried,
        }


class _OnlyKeys(KeyStore):
    """The key store, holding (for signing) only some of its signer keys: a tag is signed by
    exactly the signers who signed it in Notary."""

    def __init__(self, base: KeyStore, keyids: Iterable[str]) -> None:
        self.__dict__.update(base.__dict__)
        self._only = frozenset(keyids)
        self._held: dict[str, bool] = {}  # asked once per key and tag: remembered per key

    def has_private(self, keyid: str) -> bool:
        known = self._held.get(keyid)
        if known is None:
            known = self._holds(keyid)
            self._held[keyid] = known
        return known

    def _holds(self, keyid: str) -> bool:
        if keyid in self._only:
            return super().has_private(keyid)
        try:  # the collection's own keys (snapshot, timestamp...) still sign
            return self.get(keyid).role != "delegation" and super().has_private(keyid)
        except KeyStoreError:
            return False


def _sslib_key(key: NotaryKey) -> Any:
    from trustkit.keys.pem import sslib_key

    return sslib_key(key.verifier, f"Notary key {key.keyid[:12]}")


def _signers(collection: VerifiedCollection, report: NotaryMigrationReport) -> dict[str, Any]:
    """name -> (Notary role, [sslib keys], {notary keyid: tuf keyid}, threshold)."""
    found: dict[str, Any] = {}
    for name, (role, keys) in collection.delegations.items():
        if name == RELEASES:
            continue
        if name.count("/") != 1:
            report.not_carried[name] = "nested delegations have no place in the DCT layout"
            continue
        if role.paths != ("",):
            report.not_carried[name] = f"path-restricted delegation {list(role.paths)}"
            continue
        try:
            pairs = [(kid, _sslib_key(keys[kid])) for kid in role.keyids if kid in keys]
        except BadInputError as exc:
            report.not_carried[name] = str(exc)
            continue
        short = name[len(_SIGNER_PREFIX) :]
        found[short] = (name, [p[1] for p in pairs], {k: p.keyid for k, p in pairs}, role)
        report.signers[short] = {
            "notary_keyids": [k for k, _ in pairs],
            "keyids": [p.keyid for _, p in pairs],
            "threshold": role.threshold,
        }
    return found


def migrate_from_notary(
    services: Services, gun: str, source_url: str, dest_url: str, *, dry_run: bool
) -> NotaryMigrationReport:
    from trustkit.collections import add_signer, list_signed_tags, sign_tags
    from trustkit.notary import reader

    source = services.store_at(source_url)
    dest = services.store_at(dest_url)
    report = NotaryMigrationReport(gun, source.description, dest.description, "would copy")
    collection = reader.verified(services, gun, store=source)  # refuses unverifiable data
    report.notary_root_version = collection.root.version
    signers = _signers(collection, report)
    tags = collection.signed_tags()

    target = Services(
        services.settings,
        clock=services.clock,
        bounds=services.bounds,
        store=dest,
        keys=services.keys,
        registries=services.registries,
    )
    existing = {t.tag: t for t in list_signed_tags(target, gun)} if dest.exists(gun) else {}
    todo: dict[str, list[SignedTag]] = {}
    for tag in tags:
        names = [n for n in tag.signers if n != REPO_ADMIN and n in signers]
        if not names:
            why = "signed only by the repository key (no signer to carry it)"
            if any(n not in signers for n in tag.signers if n != REPO_ADMIN):
                why = "its signers could not be carried"
            report.not_carried[tag.tag] = why
            continue
        have = existing.get(tag.tag)
        if have is not None and (have.digest, have.size) == (tag.digest, tag.size):
            report.carried[tag.tag] = _carried(tag, names)
            continue
        for name in names:
            todo.setdefault(name, []).append(tag)
    if dry_run:
        for name, pending in todo.items():
            for tag in pending:
                report.carried.setdefault(tag.tag, _carried(tag, []))["by"].append(name)
        return report
    if not todo:
        report.action = "unchanged"
        _write_report(services, report)
        return report

    if not existing:
        for name, (_, keys, _, role) in signers.items():
            add_signer(target, gun, name, keys, threshold=role.threshold)
    for name, pending in todo.items():
        _, _, tuf_ids, _ = signers[name]
        only = _OnlyKeys(services.keys, tuf_ids.values())
        if not any(only.has_private(k) for k in tuf_ids.values()):
            for tag in pending:
                report.not_carried.setdefault(
                    tag.tag,
                    f"the private key of signer {name} is not in this key store (import it: "
                    f"trustkit trust key load KEYFILE --name {name}; then migrate again)",
                )
            continue
        try:
            sign_tags(target, gun, {t.tag: (t.digest, t.size) for t in pending}, keystore=only)
        except KeyStoreError as exc:
            for tag in pending:
                report.not_carried.setdefault(tag.tag, f"signer {name}: {exc}")
            continue
        for tag in pending:
            report.not_carried.pop(tag.tag, None)
            report.carried.setdefault(tag.tag, _carried(tag, []))["by"].append(name)
    _check_fresh_client(services, dest, gun, report)
    report.action = "copied"
    _write_report(services, report)
    return report


def _write_report(services: Services, report: NotaryMigrationReport) -> None:
    """Kept beside the key store: what was carried, what not and why (``trust migrate``
    prints it too)."""
    import json

    from trustkit._fs import atomic_write, make_private_dirs
    from trustkit.stores.interface import escape_gun

    directory = make_private_dirs(services.settings.trust_dir / "migrations")
    data = json.dumps(report.to_json(), indent=2, sort_keys=True).encode()
    atomic_write(directory / f"{escape_gun(report.gun)}.json", data)


def _carried(tag: SignedTag, names: list[str]) -> dict[str, Any]:
    return {"digest": tag.digest, "size": tag.size, "by": list(names)}


def _check_fresh_client(
    services: Services, dest: MetadataStore, gun: str, report: NotaryMigrationReport
) -> None:
    """A client with an empty cache verifies every carried tag from the destination."""
    from trustkit.collections import list_signed_tags

    with tempfile.TemporaryDirectory(prefix="trustkit-migrate-") as scratch:
        settings = services.settings.with_changes(trust_dir=Path(scratch))
        fresh = Services(settings, clock=services.clock, store=dest, registries=services.registries)
        seen = {t.tag: (t.digest, t.size) for t in list_signed_tags(fresh, gun)}
    for tag, carried in report.carried.items():
        if seen.get(tag) != (carried["digest"], carried["size"]):
            raise UntrustedError(
                f"{gun}:{tag} does not verify from {report.destination} as it did from Notary"
            )


def is_notary_url(url: str) -> bool:
    return url.startswith(("https://", "http://"))
