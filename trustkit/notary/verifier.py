"""Verify a whole Notary v1 collection over the bytes as served, as the notary client does.

Order: root (trust on first use, or the cached/pinned root; rotations walked one version at a
time, each new root signed by a threshold of the old root keys *and* of its own, root keys being
certificates whose CN is the GUN), then timestamp -> snapshot -> targets -> delegations, each
file checked against the length and hashes its parent signed, its signatures against its
delegator's keys and threshold, its expiry, and its version against the client's cache
(rollback; the same version with other bytes is a fork). Only a fully verified set updates the
cache. The server signs timestamp (and usually snapshot) itself: their keys come from root like
any other.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from trustkit._fs import atomic_write, make_private_dirs
from trustkit.errors import (
    ExpiredMetadataError,
    ForkError,
    InputTooLargeError,
    MetadataNotFoundError,
    NotSignedError,
    RollbackError,
    SignatureError,
    TamperedMetadataError,
    UnknownRepositoryError,
    UntrustedError,
)
from trustkit.notary import codec
from trustkit.notary.codec import MetaEntry, NotaryKey, Role, Signed
from trustkit.stores.interface import MetadataReader, escape_gun

RELEASES = "targets/releases"
REPO_ADMIN = "Repo Admin"
MAX_ROOT_WALK = 256
MAX_ROLES = 1024
ROOT_LIMIT = 512 * 1024
TIMESTAMP_LIMIT = 64 * 1024


@dataclass(frozen=True)
class SignedTag:
    tag: str
    digest: str  # sha256:<hex>
    size: int
    role: str  # where the lookup found it
    signers: tuple[str, ...]  # docker's names: delegation names, or "Repo Admin"
    signer_roles: tuple[tuple[str, str, tuple[str, ...]], ...]  # (name, role, keyids)
    expires: datetime


@dataclass
class VerifiedCollection:
    gun: str
    root: Signed
    roles: dict[str, Role]  # top-level roles of root
    timestamp: Signed
    snapshot: Signed
    #: targets and every published delegated role, in lookup-walk order
    targets: dict[str, Signed] = field(default_factory=dict)
    #: delegated role -> (its Role as delegated, the keys its delegator lists)
    delegations: dict[str, tuple[Role, dict[str, NotaryKey]]] = field(default_factory=dict)
    #: role -> the key ids whose valid signatures count
    signed_by: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: role -> effective path prefixes (restricted by every delegator on the way)
    paths: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _parsed: dict[str, dict[str, MetaEntry]] = field(default_factory=dict, repr=False)

    def _entries(self, role: str) -> dict[str, MetaEntry]:
        """The tags ``role`` records within its delegated paths (parsed once per role)."""
        cached = self._parsed.get(role)
        if cached is None:
            entries = codec.targets_of(self.targets[role])
            prefixes = self.paths.get(role, ("",))
            cached = {t: e for t, e in entries.items() if any(t.startswith(p) for p in prefixes)}
            self._parsed[role] = cached
        return cached

    def lookup_order(self) -> Iterator[str]:
        """As docker: targets/releases first, then targets, then the other delegations."""
        if RELEASES in self.targets:
            yield RELEASES
        yield "targets"
        yield from (r for r in self.targets if r not in (RELEASES, "targets"))

    def find(self, tag: str) -> SignedTag:
        for role in self.lookup_order():
            entry = self._entries(role).get(tag)
            if entry is not None:
                return self._signed_tag(tag, entry, role)
        raise NotSignedError(f"tag {tag} is not signed in {self.gun}")

    def signed_tags(self) -> list[SignedTag]:
        found: dict[str, SignedTag] = {}
        for role in self.lookup_order():
            for tag, entry in self._entries(role).items():
                if tag not in found:
                    found[tag] = self._signed_tag(tag, entry, role)
        return [found[t] for t in sorted(found)]

    def tags_at(self, digest: str) -> list[SignedTag]:
        return [t for t in self.signed_tags() if t.digest == digest]

    def _signed_tag(self, tag: str, entry: MetaEntry, role: str) -> SignedTag:
        sha256 = entry.hashes.get("sha256")
        if sha256 is None:
            raise UntrustedError(f"tag {tag} of {self.gun} has no sha256 digest")
        signers: dict[str, tuple[str, str, tuple[str, ...]]] = {}
        if role == "targets":
            signers[REPO_ADMIN] = (REPO_ADMIN, "targets", self.signed_by["targets"])
        # named signers: the delegations whose own role records the same entry (docker trust
        # sign writes the tag into releases and the signer's role); a tag only in releases is
        # attributed, as docker trust inspect does, to the signers whose keys signed releases
        release_keys = set(self.signed_by.get(RELEASES, ())) if role == RELEASES else set()
        by_release_keys: dict[str, tuple[str, str, tuple[str, ...]]] = {}
        for name, (delegated, _) in self.delegations.items():
            if name == RELEASES:
                continue
            short = name.rpartition("/")[2]
            own = self._entries(name).get(tag) if name in self.targets else None
            if own == entry:
                signers[short] = (short, name, self.signed_by[name])
            elif release_keys & set(delegated.keyids):
                keys = tuple(sorted(release_keys & set(delegated.keyids)))
                by_release_keys[short] = (short, RELEASES, keys)
        if not signers:
            signers = by_release_keys
        return SignedTag(
            tag=tag,
            digest=f"sha256:{sha256.hex()}",
            size=entry.length,
            role=role,
            signers=tuple(sorted(signers)),
            signer_roles=tuple(signers[n] for n in sorted(signers)),
            expires=self.expires(role),
        )

    def earliest_expiry(self) -> datetime:
        """When the first file of this collection expires (a reused verification ends then)."""
        return min(
            [self.root.expires, self.timestamp.expires, self.snapshot.expires]
            + [t.expires for t in self.targets.values()]
        )

    def expires(self, role: str) -> datetime:
        dates = [self.root.expires, self.timestamp.expires, self.snapshot.expires]
        name = role
        while name.startswith("targets"):
            dates.append(self.targets[name].expires)
            name = name.rpartition("/")[0]
        return min(dates)


class ClientCache:
    """What the client trusted last time, per server and collection: the root, and each role's
    version and hash (rollback and fork detection)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def under(cls, base: Path, server: str, gun: str) -> ClientCache:
        return cls(base / "notary" / escape_gun(server) / escape_gun(gun))

    def root(self) -> bytes | None:
        try:
            return (self.directory / "root.json").read_bytes()
        except FileNotFoundError:
            return None

    def versions(self) -> dict[str, tuple[int, str]]:
        try:
            raw = json.loads((self.directory / "versions.json").read_bytes())
        except (FileNotFoundError, ValueError):
            return {}
        if not isinstance(raw, dict):
            return {}
        return {
            k: (int(v[0]), str(v[1]))
            for k, v in raw.items()
            if isinstance(v, list) and len(v) == 2 and isinstance(v[0], int)
        }

    def save(self, root: bytes, versions: dict[str, tuple[int, str]]) -> None:
        make_private_dirs(self.directory)
        atomic_write(self.directory / "root.json", root)
        doc = {k: [v, h] for k, (v, h) in sorted(versions.items())}
        atomic_write(self.directory / "versions.json", json.dumps(doc).encode())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Verifier:
    """One verification of one collection from one reader (a notary-server, or bytes an
    adversary controls), against one client cache."""

    def __init__(
        self,
        reader: MetadataReader,
        gun: str,
        cache: ClientCache | None,
        *,
        now: datetime | None = None,
        pinned_root: bytes | None = None,
        metadata_limit: int = 32 * 1024 * 1024,
    ) -> None:
        self.reader = reader
        self.gun = gun
        self.cache = cache
        self.now = now or datetime.now(UTC)
        self.pinned_root = pinned_root
        self.metadata_limit = metadata_limit
        self.seen = cache.versions() if cache is not None else {}
        self.trusted: dict[str, tuple[int, str]] = {}

    def _read(
        self, role: str, version: int | None, limit: int, *, sha256: bytes | None = None
    ) -> bytes:
        by_hash = getattr(self.reader, "read_by_hash", None)
        try:
            if sha256 is not None and by_hash is not None:
                data: bytes = by_hash(self.gun, role, sha256, limit=limit)
                return data
            return self.reader.read(self.gun, role, version, limit=limit)
        except MetadataNotFoundError:
            if role == "root" and version is None:
                raise UnknownRepositoryError(
                    f"no trust data for {self.gun} on {self.reader.description}"
                ) from None
            # the server lost a file its own metadata names: a store fault (exit 3), as for
            # every store; nothing is trusted either way
            raise MetadataNotFoundError(
                f"{role} of {self.gun} is missing on {self.reader.description}"
            ) from None
        except InputTooLargeError as exc:  # a reader that reports it as bad input
            raise UntrustedError(
                f"{role} of {self.gun} is too large (over the {limit}-byte limit)"
            ) from exc

    def _check_version(self, signed: Signed) -> None:
        """Never older than what the client trusted; the same version must be the same file."""
        digest = _sha256(codec.canonical(signed.signed))
        seen = self.seen.get(signed.role)
        if seen is not None:
            version, known = seen
            if signed.version < version:
                raise RollbackError(
                    f"{signed.role} of {self.gun} is version {signed.version}, older than "
                    f"version {version} this client already trusted (a rollback)"
                )
            if signed.version == version and digest != known:
                raise ForkError(
                    f"{signed.role} of {self.gun} version {version} differs from the one this "
                    "client already trusted"
                )
        self.trusted[signed.role] = (signed.version, digest)

    # --- root ----------------------------------------------------------------------------
    def _check_root_keys(self, root: Signed, roles: dict[str, Role]) -> dict[str, NotaryKey]:
        """Root keys a notary client accepts: certificates naming this GUN, still valid."""
        usable: dict[str, NotaryKey] = {}
        for keyid in roles["root"].keyids:
            key = root.keys.get(keyid)
            if key is None:
                continue
            cn = key.certificate_cn()
            if key.certificate is None or cn != self.gun:
                signed_with_it = keyid in codec.valid_signers(
                    root, Role("root", (keyid,), 1), root.keys
                )
                if signed_with_it:
                    raise SignatureError(
                        f"root v{root.version} of {self.gun} is signed by key {keyid[:12]} "
                        f"whose certificate is for {cn!r}, not {self.gun!r}"
                    )
                continue
            if key.certificate.not_valid_after_utc <= self.now:
                raise ExpiredMetadataError(
                    f"root key {keyid[:12]} of {self.gun}: its certificate expired at "
                    f"{key.certificate.not_valid_after_utc:%Y-%m-%d}"
                )
            usable[keyid] = key
        return usable

    def _self_signed(self, root: Signed) -> dict[str, Role]:
        roles = codec.root_roles(root)
        codec.check_signatures(root, roles["root"], self._check_root_keys(root, roles))
        return roles

    def _root(self) -> tuple[Signed, dict[str, Role]]:
        served_raw = self._read("root", None, ROOT_LIMIT)
        served = codec.parse(served_raw, "root", what=f"root of {self.gun}", gun=self.gun)
        anchor = self.pinned_root or (self.cache.root() if self.cache is not None else None)
        if anchor is None:  # trust on first use, as notary and docker do
            roles = self._self_signed(served)
            current = served
        else:
            current = codec.parse(anchor, "root", what=f"trusted root of {self.gun}", gun=self.gun)
            roles = codec.root_roles(current)
            if served.version < current.version:
                raise RollbackError(
                    f"root of {self.gun} is version {served.version}, older than version "
                    f"{current.version} this client already trusted (a rollback)"
                )
            if served.version - current.version > MAX_ROOT_WALK:
                raise UntrustedError(
                    f"root of {self.gun} jumped more than {MAX_ROOT_WALK} versions"
                )
            for version in range(current.version + 1, served.version + 1):
                raw = served_raw if version == served.version else None
                if raw is None:
                    raw = self._read("root", version, ROOT_LIMIT)
                new = codec.parse(raw, "root", what=f"root v{version} of {self.gun}", gun=self.gun)
                if new.version != version:
                    raise UntrustedError(f"root v{version} of {self.gun} says v{new.version}")
                # rotation: the old root keys vouch for the new root, which vouches for itself
                codec.check_signatures(new, roles["root"], current.keys)
                roles = self._self_signed(new)
                current = new
            if codec.canonical(current.signed) != codec.canonical(served.signed):
                raise ForkError(
                    f"root v{served.version} of {self.gun} differs from the one this client trusts"
                )
            current = served  # the bytes as served: the snapshot hashes them
        codec.check_expiry(current, self.now)
        return current, roles

    # --- the rest ------------------------------------------------------------------------
    def verify(self) -> VerifiedCollection:
        root, roles = self._root()
        self.trusted["root"] = (root.version, _sha256(codec.canonical(root.signed)))

        ts = codec.parse(
            self._read("timestamp", None, TIMESTAMP_LIMIT),
            "timestamp",
            what=f"timestamp of {self.gun}",
            gun=self.gun,
        )
        codec.check_signatures(ts, roles["timestamp"], root.keys)
        self._check_version(ts)
        codec.check_expiry(ts, self.now)

        snap_entry = codec.meta_entries(ts).get("snapshot")
        if snap_entry is None:
            raise codec.malformed(ts.what, "no snapshot entry")
        snap = self._fetch("snapshot", snap_entry)
        codec.check_signatures(snap, roles["snapshot"], root.keys)
        self._check_version(snap)
        codec.check_expiry(snap, self.now)
        meta = codec.meta_entries(snap)
        root_entry = meta.get("root")
        if root_entry is None:
            raise codec.malformed(snap.what, "no root entry")
        # mix-and-match: the snapshot must name the very root this client verified
        root_entry.check(root.raw, f"root v{root.version} of {self.gun} (per snapshot)")

        collection = VerifiedCollection(self.gun, root, roles, ts, snap)
        targets_entry = meta.get("targets")
        if targets_entry is None:
            raise codec.malformed(snap.what, "no targets entry")
        targets = self._fetch("targets", targets_entry)
        collection.signed_by["targets"] = codec.check_signatures(
            targets, roles["targets"], root.keys
        )
        self._check_version(targets)
        codec.check_expiry(targets, self.now)
        collection.targets["targets"] = targets
        collection.paths["targets"] = ("",)

        queue: deque[Signed] = deque([targets])
        while queue:
            parent = queue.popleft()
            parent_paths = collection.paths[parent.role]
            for role in codec.delegated_roles(parent):
                if role.name in collection.delegations:
                    continue  # a role delegated twice is walked once, as notary does
                if len(collection.delegations) >= MAX_ROLES:
                    raise UntrustedError(f"{self.gun} delegates to more than {MAX_ROLES} roles")
                collection.delegations[role.name] = (role, parent.keys)
                collection.paths[role.name] = tuple(
                    p for p in role.paths if any(p.startswith(pp) for pp in parent_paths)
                )
                entry = meta.get(role.name)
                if entry is None:
                    continue  # delegated but never published: no tags
                child = self._fetch(role.name, entry)
                collection.signed_by[role.name] = codec.check_signatures(child, role, parent.keys)
                self._check_version(child)
                codec.check_expiry(child, self.now)
                collection.targets[role.name] = child
                queue.append(child)
        if self.cache is not None:
            self.cache.save(root.raw, {**self.seen, **self.trusted})
        return collection

    def _fetch(self, role: str, entry: MetaEntry) -> Signed:
        if entry.length > self.metadata_limit:
            raise UntrustedError(
                f"{role} of {self.gun} is {entry.length} bytes, over the "
                f"{self.metadata_limit}-byte limit"
            )
        try:
            raw = self._read(role, None, entry.length, sha256=entry.hashes.get("sha256"))
        except UntrustedError as exc:
            if not isinstance(exc.__cause__, InputTooLargeError):
                raise
            raise TamperedMetadataError(
                f"{role} of {self.gun} does not match the hash or length its parent signed: "
                f"longer than {entry.length} bytes"
            ) from None
        entry.check(raw, f"{role} of {self.gun}")
        return codec.parse(raw, role, what=f"{role} of {self.gun}", gun=self.gun)


def verify_collection(
    reader: MetadataReader,
    gun: str,
    *,
    cache_dir: Path | None,
    now: datetime | None = None,
    pinned_root: bytes | None = None,
) -> VerifiedCollection:
    cache = ClientCache.under(cache_dir, reader.description, gun) if cache_dir else None
    return Verifier(reader, gun, cache, now=now, pinned_root=pinned_root).verify()


__all__ = ["ClientCache", "SignedTag", "VerifiedCollection", "Verifier", "verify_collection"]
