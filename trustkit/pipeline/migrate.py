"""``trust migrate``: copy collections between trust stores (the local directory to the registry).

The current set is copied verbatim (every root version, the current timestamp, snapshot, targets
and every delegated role the snapshot lists), so every signature stays valid and tags, digests,
signers, keys and thresholds are kept. Nothing is trusted on the way: the exact bytes to be copied
are first verified as a client would (from the root this machine already trusts for the
collection, or the first root), then published, then verified again as read back from the
destination by a fresh client, whose signed tags must equal the source's. A destination already
holding the same set is left alone, so migrating twice changes nothing; one holding another set
is refused.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuf.api import exceptions as tuf_exc

from trustkit.collections._tuf import Metadata, MetaFile
from trustkit.collections.client import TrustSession, cache_dir_for
from trustkit.collections.model import (
    ROOT_MAX_BYTES,
    SNAPSHOT_MAX_BYTES,
    TARGETS_MAX_BYTES,
    TIMESTAMP_MAX_BYTES,
)
from trustkit.errors import BadInputError, ConflictError, TamperedMetadataError, UntrustedError
from trustkit.services import Services
from trustkit.stores.interface import MetadataFile, MetadataReader, MetadataStore
from trustkit.stores.memory import MemoryStore

if TYPE_CHECKING:
    from trustkit.pipeline.migrate_notary import NotaryMigrationReport


@dataclass
class MigrationReport:
    """What ``migrate`` did (or, dry run, would do) for one collection."""

    gun: str
    source: str
    destination: str
    #: "copied", "would copy" (dry run) or "unchanged" (the destination holds this set already)
    action: str
    root_version: int
    timestamp_version: int
    roles: list[str] = field(default_factory=list)
    files: int = 0
    tags: dict[str, str] = field(default_factory=dict)  # tag -> digest

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.gun,
            "source": self.source,
            "destination": self.destination,
            "action": self.action,
            "root_version": self.root_version,
            "timestamp_version": self.timestamp_version,
            "roles": self.roles,
            "files": self.files,
            "tags": self.tags,
        }


def store_url(services: Services, spec: str) -> str:
    """A store as the user names it: ``local``, ``registry`` or a store URL."""
    return services.settings.with_changes(trust_server=spec).trust_store_url


def migrate(
    services: Services, gun: str, source_spec: str, dest_spec: str | None, *, dry_run: bool
) -> MigrationReport | NotaryMigrationReport:
    """Copy ``gun``'s current set from ``source_spec`` to ``dest_spec`` (None: the configured
    store). See the module docstring. A Notary v1 source (``https://notary:4443``) is rebuilt
    in the destination instead: ``trustkit.pipeline.migrate_notary``."""
    source_url = store_url(services, source_spec)
    dest_url = store_url(services, dest_spec) if dest_spec else services.settings.trust_store_url
    if source_url == dest_url:
        raise BadInputError(f"source and destination are the same store ({source_url})")
    if source_url.startswith(("https://", "http://")):  # a notary-server: rebuilt, not copied
        from trustkit.pipeline.migrate_notary import migrate_from_notary

        return migrate_from_notary(services, gun, source_url, dest_url, dry_run=dry_run)
    source = services.store_at(source_url)
    dest = services.store_at(dest_url) if dest_spec else services.store
    files = read_current_set(source, gun)
    trusted_root = cache_dir_for(services.settings, gun) / "root.json"
    tags = _verified_tags(services, gun, files, trusted_root if trusted_root.exists() else None)
    timestamp = next(f for f in files if f.role == "timestamp")
    report = MigrationReport(
        gun,
        source.description,
        dest.description,
        "would copy",
        max(f.version for f in files if f.role == "root"),
        timestamp.version,
        sorted({f.role for f in files}),
        len(files),
        tags,
    )
    if dest.exists(gun):
        if _same_set(dest, gun, files):
            report.action = "unchanged"
            return report
        raise ConflictError(
            f"{dest.description} already holds other trust data for {gun}",
            hint="migrate into a store without this collection (or delete it there first)",
        )
    if dry_run:
        return report
    dest.publish(gun, files, expected=None)
    copied = _verified_tags(services, gun, read_current_set(dest, gun), None)
    if copied != tags:
        raise UntrustedError(f"{gun} in {dest.description} does not verify as the source did")
    report.action = "copied"
    return report


def read_current_set(store: MetadataReader, gun: str) -> list[MetadataFile]:
    """The current set's files, bytes as stored: roots 1..N, then every role the snapshot
    lists at its version (hash- and length-checked against the snapshot), snapshot, timestamp.
    Signatures are checked afterwards, by ``_verified_tags``."""
    if not store.exists(gun):
        raise BadInputError(f"no trust data for {gun} in {store.description}")
    raw_timestamp = store.read(gun, "timestamp", None, limit=TIMESTAMP_MAX_BYTES)
    roots = [
        MetadataFile("root", v, store.read(gun, "root", v, limit=ROOT_MAX_BYTES))
        for v in range(1, store.root_version(gun) + 1)
    ]
    try:
        timestamp = Metadata.from_bytes(raw_timestamp)
        snap_meta: MetaFile = timestamp.signed.snapshot_meta  # type: ignore[attr-defined]
        raw_snapshot = store.read(gun, "snapshot", snap_meta.version, limit=SNAPSHOT_MAX_BYTES)
        snap_meta.verify_length_and_hashes(raw_snapshot)
        snapshot = Metadata.from_bytes(raw_snapshot)
        listed: dict[str, MetaFile] = snapshot.signed.meta  # type: ignore[attr-defined]
        roles = []
        for name, meta in sorted(listed.items()):
            role = name.removesuffix(".json")
            raw = store.read(gun, role, meta.version, limit=meta.length or TARGETS_MAX_BYTES)
            meta.verify_length_and_hashes(raw)
            roles.append(MetadataFile(role, meta.version, raw))
    except (tuf_exc.RepositoryError, ValueError, AttributeError) as exc:
        raise TamperedMetadataError(
            f"trust data of {gun} in {store.description} is inconsistent: {exc}"
        ) from None
    return [
        *roots,
        *roles,
        MetadataFile("snapshot", snap_meta.version, raw_snapshot),
        MetadataFile("timestamp", timestamp.signed.version, raw_timestamp),
    ]


def _verified_tags(
    services: Services, gun: str, files: list[MetadataFile], root_file: Path | None
) -> dict[str, str]:
    """Verify exactly ``files`` as a fresh client would; the signed tags and their digests."""
    staging = MemoryStore(f"migrate-{uuid.uuid4().hex}")
    staging.publish(gun, files, expected=None)
    with tempfile.TemporaryDirectory(prefix="trustkit-migrate-") as scratch:
        settings = services.settings.with_changes(trust_dir=Path(scratch))
        session = TrustSession(
            Services(settings, clock=services.clock), staging, gun, root_file=root_file
        )
        return {t.tag: t.digest for t in session.signed_tags()}


def _same_set(store: MetadataStore, gun: str, files: list[MetadataFile]) -> bool:
    try:
        current = read_current_set(store, gun)
    except (BadInputError, UntrustedError):
        return False
    return _key(current) == _key(files)


def _key(files: list[MetadataFile]) -> str:
    return json.dumps(sorted((f.role, f.version, f.data.hex()) for f in files))
