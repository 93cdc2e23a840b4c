"""The warm fast path of ``trust verify`` (ADR 0017): a verified answer, remembered per tag.

A client whose cache already holds a verified answer for a tag needs neither python-tuf nor the
metadata again when nothing changed: TUF's client workflow would conclude the same answer
exactly when

- the store has no root newer than the one this client trusts (root N+1 absent, in the store
  and in the client's own root history),
- the timestamp the store serves now is byte-identical to the one this client verified and
  still trusts (so snapshot and every targets role it pins are the versions already verified),
- nothing the answer depends on (root, timestamp, snapshot, targets, the delegated roles and
  bins read) has expired by now.

So each verified answer is kept in the client cache of its collection (``warm-answers``, next
to python-tuf's files, written atomically) with the SHA-256 of the trusted timestamp bytes, the
trusted root version and the earliest expiry. A warm verify reads the store's timestamp and
asks for root N+1; it answers from the file only when every condition holds, and otherwise
takes the full path (python-tuf), which refreshes the file. The file has the trust of the
client cache it lives in (like the pinned root): a corrupt, oversized or foreign file is only a
miss, never an answer and never a crash.

This module imports nothing heavy (no python-tuf, no cryptography) until the full path runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustkit._fs import atomic_write, read_bounded
from trustkit.collections.model import (
    ROOT,
    ROOT_MAX_BYTES,
    TIMESTAMP,
    TIMESTAMP_MAX_BYTES,
    TrustedTarget,
)
from trustkit.errors import TrustkitError
from trustkit.stores.interface import (
    MetadataNotFoundError,
    MetadataReader,
    MetadataStore,
    escape_gun,
)

if TYPE_CHECKING:
    from trustkit.collections.client import TrustSession
    from trustkit.model import TrustEvidence
    from trustkit.refs import ImageRef
    from trustkit.services import Services

#: the file in a collection's client cache: python-tuf names its files ``<role>.json`` (and a
#: ``root_history/`` directory), so no role's file can be this one
WARM_FILE = "warm-answers"
FORMAT = "trustkit-warm/1"
#: bounds: the file is read on every warm verify, so it stays small
MAX_WARM_BYTES = 256 * 1024
MAX_ANSWERS = 256
MAX_SIGNERS = 64
_SHA256_HEX = re.compile(r"\A[0-9a-f]{64}\Z")
_DIGEST = re.compile(r"\Asha256:[0-9a-f]{64}\Z")
_ROOT_LINK = re.compile(r"\Aroot_history/([0-9]{1,12})\.root\.json\Z")
_TOP_LEVEL = ("root", "timestamp", "snapshot", "targets")
#: what reading a damaged or foreign warm file can raise: each only means "take the full path"
_UNUSABLE = (
    TrustkitError,
    OSError,
    ValueError,
    KeyError,
    TypeError,
    OverflowError,
    RecursionError,
)


def verify_tag(
    services: Services, ref: ImageRef, *, root_file: Path | None = None
) -> TrustedTarget:
    """``collections.verify_tag`` with the warm fast path in front of it.

    On a miss, the full path is the engine's own for a TUF store (a verified session's
    ``find``), and its answer is remembered. With ``root_file`` (a pinned first root) or a
    Notary store, always the engine's full path, remembering nothing."""
    store = services.store
    if root_file is None and ref.tag is not None and _is_tuf_store(store, ref.gun):
        cache = services.settings.client_cache_dir / escape_gun(ref.gun)
        found = warm_answer(store, ref.gun, ref.tag, cache, now=services.clock())
        if found is not None:
            return found
        from trustkit.collections.client import session_for

        session = session_for(services, store, ref.gun)
        target = session.find(ref.tag)
        remember(session, target, cache, store)
        return target
    from trustkit.collections.engine import verify_tag as full_verify

    return full_verify(services, ref, root_file=root_file)


def remembered(services: Services, ref: ImageRef) -> TrustedTarget | None:
    """The warm answer alone: what ``verify_tag`` returns without python-tuf, or None where
    it would take the full path (no tag, a Notary store, nothing remembered, anything changed
    since). Reads and checks exactly what the warm path does; never raises for what it reads."""
    store = services.store
    if ref.tag is None or not _is_tuf_store(store, ref.gun):
        return None
    cache = services.settings.client_cache_dir / escape_gun(ref.gun)
    return warm_answer(store, ref.gun, ref.tag, cache, now=services.clock())


def trust_evidence(
    services: Services,
    ref: ImageRef,
    *,
    root_file: Path | None = None,
    every_tag: bool = True,
) -> TrustEvidence:
    """``collections.trust_evidence`` with the warm fast path in front of it, for the one
    case it can answer: a tag's own evidence (``every_tag=False``, as a pull of a tag checks
    it, ADR 0016) from a TUF store, without a pinned first root. Its signers (names, the key
    ids that vouched, their roles) and the expiry of what it depends on are remembered with
    the answer; every other reference takes the engine's full path unchanged."""
    store = services.store
    tag = ref.tag
    if every_tag or root_file is not None or tag is None or not _is_tuf_store(store, ref.gun):
        from trustkit.collections.engine import trust_evidence as full_evidence

        return full_evidence(services, ref, root_file=root_file, every_tag=every_tag)
    cache = services.settings.client_cache_dir / escape_gun(ref.gun)
    found = _warm_entry(store, ref.gun, tag, cache, now=services.clock())
    if found is not None:
        evidence = _evidence_of(ref, *found)
        if evidence is not None:
            return evidence
    from trustkit.collections.client import session_for

    sessions: list[TrustSession] = []

    def verified() -> TrustSession:
        sessions.append(session_for(services, store, ref.gun))
        return sessions[-1]

    from trustkit.collections.engine import session_evidence

    evidence = session_evidence(ref, verified, every_tag=False)
    if evidence.verified and sessions:
        try:
            target = sessions[-1].find(tag)
        except TrustkitError:
            return evidence
        remember(sessions[-1], target, cache, store, evidence=evidence)
    return evidence


def _evidence_of(
    ref: ImageRef, target: TrustedTarget, entry: dict[str, Any]
) -> TrustEvidence | None:
    """The tag's own evidence from a remembered entry (None when it kept none, or it is
    malformed: the full path then answers)."""
    from trustkit.model import EvidenceSource, SignerIdentity, TrustEvidence

    kept = entry.get("evidence")
    if not isinstance(kept, dict):
        return None
    try:
        signers = kept["signers"]
        if not isinstance(signers, list) or len(signers) > MAX_SIGNERS:
            return None
        identities = []
        for item in signers:
            name, keyids, role = item["name"], item["keyids"], item["role"]
            if not isinstance(name, str) or not isinstance(role, str):
                return None
            if not isinstance(keyids, list) or not all(
                isinstance(k, str) and _SHA256_HEX.match(k) for k in keyids
            ):
                return None
            identities.append(SignerIdentity(name, tuple(keyids), role))
        expires = _when(kept["expires"])
    except _UNUSABLE:
        return None
    source = EvidenceSource.TUF_COLLECTION
    if ref.digest is not None and ref.digest != target.digest:
        assert ref.tag is not None
        return TrustEvidence.digest_not_of_tag(
            source, ref.familiar, ref.tag, ref.digest, target.digest
        )
    return TrustEvidence(
        source=source,
        checked=True,
        verified=True,
        digest=target.digest,
        size=target.size,
        signers=tuple(identities),
        tags=(target.tag,),
        expires=expires,
        complete=False,
    )


def _is_tuf_store(store: MetadataStore, gun: str) -> bool:
    from trustkit.stores.notary import is_notary_store

    return not is_notary_store(store, gun)


# --- the warm check ----------------------------------------------------------------------
def warm_answer(
    store: MetadataReader, gun: str, tag: str, cache: Path, *, now: datetime
) -> TrustedTarget | None:
    """The remembered answer for ``tag`` when a full refresh would conclude the same, else
    None (then the caller takes the full path). Never raises for anything it reads."""
    found = _warm_entry(store, gun, tag, cache, now=now)
    return None if found is None else found[0]


def _warm_entry(
    store: MetadataReader, gun: str, tag: str, cache: Path, *, now: datetime
) -> tuple[TrustedTarget, dict[str, Any]] | None:
    """``warm_answer`` with the remembered entry itself (its signer identities, if kept)."""
    try:
        doc = _load(cache, store)
        if doc is None:
            return None
        entry = doc["answers"].get(tag)
        if entry is None:
            return None
        answer = _answer(gun, tag, entry)
        if answer is None:
            return None
        target, expires = answer
        if now >= expires:  # exactly TUF's is_expired: the full path refuses, with its message
            return None
        root_version = doc["root_version"]
        if _trusted_root_version(cache) != root_version:
            return None
        if _sha256_file(cache / f"{TIMESTAMP}.json") != doc["timestamp_sha256"]:
            return None  # this client has trusted something else since
        served = store.read(gun, TIMESTAMP, None, limit=TIMESTAMP_MAX_BYTES)
        if hashlib.sha256(served).hexdigest() != doc["timestamp_sha256"]:
            return None
        if not _root_absent(store, gun, root_version + 1):
            return None
    except _UNUSABLE:
        return None  # whatever went wrong, the full path says it properly
    _warn_if_expiring(gun, doc["top_level_expiry"], now)
    return target, entry


def _root_absent(store: MetadataReader, gun: str, version: int) -> bool:
    try:
        store.read(gun, ROOT, version, limit=ROOT_MAX_BYTES)
    except MetadataNotFoundError:
        return True
    return False


def _trusted_root_version(cache: Path) -> int | None:
    """The root version python-tuf's cache trusts (``root.json`` links into ``root_history``),
    or None when unknown or when a newer root waits in the history (python-tuf would load it)."""
    match = _ROOT_LINK.match(os.readlink(cache / "root.json"))
    if match is None:
        return None
    version = int(match.group(1))
    if (cache / "root_history" / f"{version + 1}.root.json").exists():
        return None
    return version


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(
        read_bounded(path, TIMESTAMP_MAX_BYTES, what="cached timestamp")
    ).hexdigest()


def _load(cache: Path, store: MetadataReader) -> dict[str, Any] | None:
    """The warm file when it is well formed and belongs to ``store``, else None."""
    try:
        raw = read_bounded(cache / WARM_FILE, MAX_WARM_BYTES, what="warm answers")
    except FileNotFoundError:
        return None
    doc = json.loads(raw)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return None
    if doc.get("store") != store.description:
        return None
    digest, root_version = doc.get("timestamp_sha256"), doc.get("root_version")
    if not isinstance(digest, str) or not _SHA256_HEX.match(digest):
        return None
    if type(root_version) is not int or root_version < 1:
        return None
    answers, top = doc.get("answers"), doc.get("top_level_expiry")
    if not isinstance(answers, dict) or len(answers) > MAX_ANSWERS:
        return None
    if not isinstance(top, dict) or set(top) - set(_TOP_LEVEL):
        return None
    doc["top_level_expiry"] = {role: _when(value) for role, value in top.items()}
    return doc


def _answer(gun: str, tag: str, entry: Any) -> tuple[TrustedTarget, datetime] | None:
    if not isinstance(entry, dict):
        return None
    digest, size, role, signers = (
        entry.get("digest"),
        entry.get("size"),
        entry.get("role"),
        entry.get("signers"),
    )
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        return None
    if type(size) is not int or size < 0 or not isinstance(role, str):
        return None
    if not isinstance(signers, list) or len(signers) > MAX_SIGNERS:
        return None
    if not all(isinstance(name, str) for name in signers):
        return None
    target = TrustedTarget(
        gun=gun, tag=tag, digest=digest, size=size, role=role, signers=tuple(signers)
    )
    return target, _when(entry.get("expires"))


def _when(value: Any) -> datetime:
    if type(value) is not int:
        raise TypeError("expiry is not whole seconds")
    return datetime.fromtimestamp(value, UTC)


def _warn_if_expiring(gun: str, dates: dict[str, datetime], now: datetime) -> None:
    from trustkit.collections.expiry import warn_if_expiring

    warn_if_expiring(gun, dates, now)  # as a refresh would: once per process


# --- remembering -------------------------------------------------------------------------
def remember(
    session: TrustSession,
    target: TrustedTarget,
    cache: Path,
    store: MetadataReader,
    *,
    evidence: TrustEvidence | None = None,
) -> None:
    """Keep ``target`` (just verified by ``session``) for later warm verifies.

    Only when the timestamp the session was served is the one the client cache now trusts:
    if another process has moved the cache on since, the answer is not tied to a state that
    can be checked later, and is simply not kept. A write that fails is only a miss later."""
    state = session.trusted_state()
    if state is None or len(target.signers) > MAX_SIGNERS:
        return
    if evidence is not None and len(evidence.signers) > MAX_SIGNERS:
        evidence = None
    try:
        if _sha256_file(cache / f"{TIMESTAMP}.json") != state.timestamp_sha256:
            return
        if _trusted_root_version(cache) != state.root_version:
            return
        try:
            doc = _load(cache, store)
        except _UNUSABLE:
            doc = None
        same_state = (
            doc is not None
            and doc["timestamp_sha256"] == state.timestamp_sha256
            and doc["root_version"] == state.root_version
        )
        answers: dict[str, Any] = dict(doc["answers"]) if doc is not None and same_state else {}
        kept = answers.pop(target.tag, None)
        entry: dict[str, Any] = {
            "digest": target.digest,
            "size": target.size,
            "role": target.role,
            "signers": list(target.signers),
            "expires": _seconds(state.earliest_expiry),
        }
        if evidence is not None and evidence.expires is not None:
            entry["evidence"] = {
                "signers": [
                    {"name": i.name, "keyids": list(i.keyids), "role": i.role}
                    for i in evidence.signers
                ],
                "expires": _seconds(evidence.expires),
            }
        elif (
            isinstance(kept, dict)
            and kept.get("digest") == target.digest
            and same_state
            and "evidence" in kept
        ):  # a verify of a tag whose evidence was kept under this state: keep it
            entry["evidence"] = kept["evidence"]
        answers[target.tag] = entry
        while len(answers) > MAX_ANSWERS:  # the oldest answers go first
            answers.pop(next(iter(answers)))
        header = {
            "format": FORMAT,
            "store": store.description,
            "timestamp_sha256": state.timestamp_sha256,
            "root_version": state.root_version,
            "top_level_expiry": {
                role: _seconds(when) for role, when in state.top_level_expiry.items()
            },
        }
        data = json.dumps({**header, "answers": answers}, separators=(",", ":")).encode()
        while len(data) > MAX_WARM_BYTES and len(answers) > 1:  # long signer lists: fewer
            answers.pop(next(iter(answers)))
            data = json.dumps({**header, "answers": answers}, separators=(",", ":")).encode()
        if len(data) <= MAX_WARM_BYTES:
            atomic_write(cache / WARM_FILE, data)
    except _UNUSABLE:  # a file that cannot be written is only a miss later
        return


def _seconds(when: datetime) -> int:
    """Whole seconds, rounded down: a remembered expiry is never later than the real one."""
    return int(when.timestamp() // 1)
